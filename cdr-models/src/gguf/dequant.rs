//! Dequantization of ggml block formats to f32.
//!
//! Each quantized format stores fixed-size blocks: a few f16 scales followed by packed small
//! integers. The layouts below are those of ggml (`ggml-common.h`); each decoder evaluates the same
//! f32 expression in the same order as ggml's reference `dequantize_row_*` (and gguf-py's
//! `dequantize`), e.g. `(d * sc) * q - (dmin * m)`, so results are bit-identical to theirs.
//!
//! Decoders are plain loops over blocks with no allocation, which the compiler vectorizes well
//! enough for load-time use (hundreds of MB/s per core).

use half::{bf16, f16};

use super::reader::GgmlType;

/// Why a buffer could not be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("cdr cannot dequantize {0} (supported: {SUPPORTED_NAMES})")]
    Unsupported(GgmlType),

    #[error("{n_elements} elements are not a whole number of {ty} blocks of {block}")]
    PartialBlock {
        ty: GgmlType,
        n_elements: usize,
        block: usize,
    },

    #[error("{ty} data for {n_elements} elements must be {expected} bytes, got {actual}")]
    SizeMismatch {
        ty: GgmlType,
        n_elements: usize,
        expected: usize,
        actual: usize,
    },
}

/// The types [`dequantize`] decodes.
pub const SUPPORTED: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

const SUPPORTED_NAMES: &str =
    "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";

/// Whether [`dequantize`] decodes `ty`.
pub fn is_supported(ty: GgmlType) -> bool {
    SUPPORTED.contains(&ty)
}

/// Decodes `src`, the stored bytes of `dst.len()` elements of type `ty`, into `dst`.
///
/// `dst.len()` must be a whole number of blocks and `src.len()` exactly the matching byte count.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    let (block, size) = ty
        .block_layout()
        .filter(|_| is_supported(ty))
        .ok_or(DequantError::Unsupported(ty))?;
    let n_elements = dst.len();
    if !n_elements.is_multiple_of(block) {
        return Err(DequantError::PartialBlock {
            ty,
            n_elements,
            block,
        });
    }
    let expected = n_elements / block * size;
    if src.len() != expected {
        return Err(DequantError::SizeMismatch {
            ty,
            n_elements,
            expected,
            actual: src.len(),
        });
    }
    match ty {
        GgmlType::F32 => each::<4, 1>(src, dst, |b, y| y[0] = f32::from_le_bytes(*b)),
        GgmlType::F16 => each::<2, 1>(src, dst, |b, y| y[0] = f16::from_le_bytes(*b).to_f32()),
        GgmlType::BF16 => each::<2, 1>(src, dst, |b, y| y[0] = bf16::from_le_bytes(*b).to_f32()),
        GgmlType::Q4_0 => each::<18, 32>(src, dst, q4_0),
        GgmlType::Q4_1 => each::<20, 32>(src, dst, q4_1),
        GgmlType::Q5_0 => each::<22, 32>(src, dst, q5_0),
        GgmlType::Q5_1 => each::<24, 32>(src, dst, q5_1),
        GgmlType::Q8_0 => each::<34, 32>(src, dst, q8_0),
        GgmlType::Q2_K => each::<84, 256>(src, dst, q2_k),
        GgmlType::Q3_K => each::<110, 256>(src, dst, q3_k),
        GgmlType::Q4_K => each::<144, 256>(src, dst, q4_k),
        GgmlType::Q5_K => each::<176, 256>(src, dst, q5_k),
        GgmlType::Q6_K => each::<210, 256>(src, dst, q6_k),
        other => return Err(DequantError::Unsupported(other)),
    }
    Ok(())
}

/// Runs `f` on every (block, output block) pair. The lengths were checked by the caller; the
/// fixed-size arrays let the decoders index without bounds checks.
fn each<const S: usize, const N: usize>(
    src: &[u8],
    dst: &mut [f32],
    f: impl Fn(&[u8; S], &mut [f32; N]),
) {
    for (b, y) in src.chunks_exact(S).zip(dst.chunks_exact_mut(N)) {
        if let (Ok(b), Ok(y)) = (<&[u8; S]>::try_from(b), <&mut [f32; N]>::try_from(y)) {
            f(b, y);
        }
    }
}

fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Q4_0 (18 bytes): d f16, qs[16]. Element j is the low nibble of qs[j], element j + 16 the high
/// nibble; value = (q - 8) * d.
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = half_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1 (20 bytes): d f16, m f16, qs[16]; value = q * d + m.
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0F) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// Q5_0 (22 bytes): d f16, qh u32 (bit j = fifth bit of element j), qs[16] as in Q4_0;
/// value = (q - 16) * d.
fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = half_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) as u32 | ((qh >> j) & 1) << 4;
        let hi = (qs[j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = (lo as i32 - 16) as f32 * d;
        y[j + 16] = (hi as i32 - 16) as f32 * d;
    }
}

/// Q5_1 (24 bytes): d f16, m f16, qh u32, qs[16]; value = q * d + m.
fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) as u32 | ((qh >> j) & 1) << 4;
        let hi = (qs[j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = lo as f32 * d + m;
        y[j + 16] = hi as f32 * d + m;
    }
}

/// Q8_0 (34 bytes): d f16, qs[32] i8; value = q * d.
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = half_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = q as i8 as f32 * d;
    }
}

/// Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min, per 16 elements), qs[64]
/// (2-bit values), d f16, dmin f16. Element e = 128 h + 32 k + l takes bits 2k..2k+2 of
/// qs[32 h + l]; value = (d * sc) * q - (dmin * m).
fn q2_k(b: &[u8; 84], y: &mut [f32; 256]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let (d, dmin) = (half_at(b, 80), half_at(b, 82));
    for (e, out) in y.iter_mut().enumerate() {
        let (h, k, l) = (e / 128, (e / 32) % 4, e % 32);
        let s = scales[e / 16];
        let dl = d * (s & 0x0F) as f32;
        let ml = dmin * (s >> 4) as f32;
        let q = (qs[32 * h + l] >> (2 * k)) & 3;
        *out = dl * q as f32 - ml;
    }
}

/// Q3_K (110 bytes): hmask[32], qs[64] (low 2 bits, laid out as in Q2_K), scales[12] (sixteen
/// 6-bit scales, offset by 32), d f16. Element e's third bit is bit e / 32 of hmask[e % 32]; a
/// clear bit subtracts 4. value = (d * (sc - 32)) * q.
fn q3_k(b: &[u8; 110], y: &mut [f32; 256]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let sc = &b[96..108];
    let d = half_at(b, 108);
    let mut scales = [0f32; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        let low = (sc[i % 8] >> (4 * (i / 8))) & 0x0F;
        let high = (sc[8 + i % 4] >> (2 * (i / 4))) & 0x03;
        *s = d * ((low | high << 4) as i32 - 32) as f32;
    }
    for (e, out) in y.iter_mut().enumerate() {
        let (h, k, l) = (e / 128, (e / 32) % 4, e % 32);
        let low = ((qs[32 * h + l] >> (2 * k)) & 3) as i32;
        let high_clear = ((hmask[l] >> (e / 32)) & 1) ^ 1;
        let q = low - 4 * high_clear as i32;
        *out = scales[e / 16] * q as f32;
    }
}

/// The eight 6-bit (scale, min) pairs packed into the 12 scale bytes of Q4_K and Q5_K: bytes 0..4
/// hold scales 0..4 and bytes 4..8 mins 0..4 in their low 6 bits; scales and mins 4..8 take their
/// low 4 bits from bytes 8..12 and their top 2 bits from the spare top bits of bytes 0..8.
fn k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K (144 bytes): d f16, dmin f16, scales[12], qs[128]. Eight sub-blocks of 32; each 32-byte
/// run of qs holds sub-block 2i in its low nibbles and 2i + 1 in its high nibbles.
/// value = (d * sc) * q - (dmin * m).
fn q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for i in 0..4 {
        let (sc0, m0) = k_scale_min(scales, 2 * i);
        let (sc1, m1) = k_scale_min(scales, 2 * i + 1);
        let (d0, min0) = (d * sc0 as f32, dmin * m0 as f32);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let q = &qs[32 * i..32 * i + 32];
        for l in 0..32 {
            y[64 * i + l] = d0 * (q[l] & 0x0F) as f32 - min0;
            y[64 * i + 32 + l] = d1 * (q[l] >> 4) as f32 - min1;
        }
    }
}

/// Q5_K (176 bytes): d f16, dmin f16, scales[12], qh[32], qs[128]. As Q4_K, plus a fifth bit:
/// bit s of qh[l] for element l of sub-block s.
fn q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for i in 0..4 {
        let (s0, s1) = (2 * i, 2 * i + 1);
        let (sc0, m0) = k_scale_min(scales, s0);
        let (sc1, m1) = k_scale_min(scales, s1);
        let (d0, min0) = (d * sc0 as f32, dmin * m0 as f32);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let q = &qs[32 * i..32 * i + 32];
        for l in 0..32 {
            let lo = (q[l] & 0x0F) | ((qh[l] >> s0) & 1) << 4;
            let hi = (q[l] >> 4) | ((qh[l] >> s1) & 1) << 4;
            y[64 * i + l] = d0 * lo as f32 - min0;
            y[64 * i + 32 + l] = d1 * hi as f32 - min1;
        }
    }
}

/// Q6_K (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] i8 (one per 16
/// elements), d f16. In each half n of 128 elements, l in 0..32 gives four elements: l and l + 64
/// from the low and high nibbles of ql[64 n + l], l + 32 and l + 96 from ql[64 n + 32 + l], with
/// their top bits at shifts 0, 4, 2, 6 of qh[32 n + l]. value = (d * sc) * (q - 32).
fn q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let sc = &b[192..208];
    let d = half_at(b, 208);
    let mut scales = [0f32; 16];
    for (s, &raw) in scales.iter_mut().zip(sc) {
        *s = d * raw as i8 as f32;
    }
    for n in 0..2 {
        let (ql, qh, y) = (&ql[64 * n..], &qh[32 * n..], &mut y[128 * n..]);
        let scales = &scales[8 * n..];
        for l in 0..32 {
            let h = qh[l];
            let q1 = ((ql[l] & 0x0F) | (h & 3) << 4) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | ((h >> 2) & 3) << 4) as i32 - 32;
            let q3 = ((ql[l] >> 4) | ((h >> 4) & 3) << 4) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | ((h >> 6) & 3) << 4) as i32 - 32;
            let is = l / 16;
            y[l] = scales[is] * q1 as f32;
            y[l + 32] = scales[is + 2] * q2 as f32;
            y[l + 64] = scales[is + 4] * q3 as f32;
            y[l + 96] = scales[is + 6] * q4 as f32;
        }
    }
}
