//! The x86-64 micro-kernels: AMX tiles (inline `asm!`), AVX512-BF16 and AVX-512F, and the
//! detection that picks among them.

use std::arch::asm;
use std::arch::x86_64::*;

use super::{BLOCK_K, BLOCK_M, HALF, Isa, PANEL};

/// Linux's `arch_prctl` request for permission to use an extended state component, and AMX's
/// tile data component: a process must ask before its first tile instruction (else SIGILL).
const ARCH_REQ_XCOMP_PERM: libc::c_int = 0x1023;
const XFEATURE_XTILEDATA: libc::c_ulong = 18;

pub fn detect() -> Isa {
    if !avx512_core() {
        return Isa::Portable;
    }
    if amx_usable() {
        return Isa::Amx;
    }
    if std::is_x86_feature_detected!("avx512bf16") {
        return Isa::Avx512Bf16;
    }
    Isa::Avx512
}

/// AVX-512 F, BW, DQ and VL: every AVX-512 path needs F, and the element-wise loops compiled for
/// AVX-512 (`kernels::wide`) may use the others. Every AVX-512 Xeon since Skylake has all four.
fn avx512_core() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512vl")
}

/// AMX-TILE and AMX-BF16 in CPUID, tile state enabled by the OS (XCR0 bits 17-18), and the
/// kernel's permission granted to this process.
fn amx_usable() -> bool {
    // CPUID leaf 7 reports 0s where a feature is missing.
    let leaf7 = __cpuid_count(7, 0);
    let (bf16, tile) = (leaf7.edx >> 22 & 1 == 1, leaf7.edx >> 24 & 1 == 1);
    let osxsave = __cpuid(1).ecx >> 27 & 1 == 1;
    if !(bf16 && tile && osxsave) {
        return false;
    }
    // SAFETY: XGETBV with ECX=0 is valid once OSXSAVE is set (checked above).
    let xcr0 = unsafe { _xgetbv(0) };
    if xcr0 >> 17 & 3 != 3 {
        return false;
    }
    request_tile_permission()
}

#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM takes a feature number and touches no memory;
    // an old kernel answers EINVAL, which counts as "no AMX".
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if r != 0 {
        tracing::debug!("AMX: the kernel refused tile permission (arch_prctl returned {r})");
    }
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// The tile configuration (palette 1): all eight tiles 16 rows × 64 bytes. Tiles 0-3 hold the
/// 32×32 f32 sums, 4-5 two 16-row slices of activations, 6-7 two 16-column halves of a weight
/// block.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    const fn new() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64;
            c[48 + t] = 16;
            t += 1;
        }
        Self(c)
    }
}

static CONFIG: TileConfig = TileConfig::new();

/// Tiles configured on this thread for its lifetime, released on drop (a thread holding tile
/// state makes every context switch save 8 KiB more).
pub struct TileScope(());

impl TileScope {
    /// Only call where [`detect`] returned [`Isa::Amx`] (permission granted).
    pub fn enter() -> Self {
        // SAFETY: `CONFIG` is a valid palette-1 configuration (64 bytes, aligned); AMX is present
        // and permitted (callers hold `Isa::Amx`, which `detect` grants only then).
        unsafe { asm!("ldtilecfg [{0}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly)) };
        Self(())
    }
}

impl Drop for TileScope {
    fn drop(&mut self) {
        // SAFETY: tiles were configured by `enter` on this thread.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// 32×32 sums with four accumulator tiles: per k-block, two activation tiles (16 rows × 32 values)
/// and two weight tiles (16 pairs × 16 columns × 2), four `TDPBF16PS`. The k-blocks are summed in
/// order; padded rows and columns are zeros and cost nothing extra on AMX.
///
/// # Safety
/// See [`super::MicroKernel`]; the thread is inside a [`TileScope`].
pub unsafe fn amx_block(a: &[u16], stride: usize, _rows: usize, panel: &[u16], c: &mut [f32]) {
    let blocks = stride / BLOCK_K;
    debug_assert!(a.len() >= BLOCK_M * stride && panel.len() >= blocks * 2 * HALF);
    debug_assert!(c.len() >= BLOCK_M * PANEL && blocks > 0);
    let a_stride = stride * 2;
    let a0 = a.as_ptr();
    // SAFETY: row 16 of the block lies inside `a` (BLOCK_M = 32 rows).
    let a1 = unsafe { a0.add(16 * stride) };
    let c_stride = PANEL * 4;
    let c0 = c.as_mut_ptr();
    // SAFETY: row 16 of the 32×32 `c`.
    let c1 = unsafe { c0.add(16 * PANEL) };
    // SAFETY: the loop reads `blocks` 64-byte columns of 16 rows from each activation slice (inside
    // `a`: `stride` values per row) and `blocks` 2 KiB weight blocks (inside `panel`), and stores
    // 32 rows of 128 bytes into `c`; the tile configuration is loaded (caller's `TileScope`).
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tileloadd tmm5, [{a1} + {sa}*1]",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b} + {sb}*1 + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b}, 2048",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c0} + {sc}*1], tmm0",
            "tilestored [{c0} + {sc}*1 + 64], tmm1",
            "tilestored [{c1} + {sc}*1], tmm2",
            "tilestored [{c1} + {sc}*1 + 64], tmm3",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b = inout(reg) panel.as_ptr() => _,
            n = inout(reg) blocks => _,
            c0 = in(reg) c0,
            c1 = in(reg) c1,
            sa = in(reg) a_stride,
            sb = in(reg) 64usize,
            sc = in(reg) c_stride,
            options(nostack),
        );
    }
}

/// Rows per register block in the AVX-512 kernels: 8 rows × 2 halves = 16 accumulators.
const ROWS: usize = 8;

/// # Safety
/// See [`super::MicroKernel`]; the CPU has avx512f and avx512bf16.
pub unsafe fn avx512_bf16_block(
    a: &[u16],
    stride: usize,
    rows: usize,
    panel: &[u16],
    c: &mut [f32],
) {
    // SAFETY: forwarded.
    unsafe { avx512_bf16(a, stride, rows, panel, c) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn avx512_bf16(a: &[u16], stride: usize, rows: usize, panel: &[u16], c: &mut [f32]) {
    let blocks = stride / BLOCK_K;
    assert!(a.len() >= BLOCK_M * stride && panel.len() >= blocks * 2 * HALF);
    assert!(c.len() >= BLOCK_M * PANEL);
    for r0 in (0..rows.min(BLOCK_M)).step_by(ROWS) {
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        for b in 0..blocks {
            for pair in 0..BLOCK_K / 2 {
                let w = |half: usize| {
                    // SAFETY: 32 values at this offset lie inside `panel` (asserted length).
                    unsafe {
                        _mm512_loadu_si512(
                            panel.as_ptr().add((b * 2 + half) * HALF + pair * 32).cast(),
                        )
                    }
                };
                let (w0, w1): (__m512bh, __m512bh) = (w(0).into_bh(), w(1).into_bh());
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: row r0 + r < BLOCK_M and two values at `b * 32 + 2 * pair` < stride.
                    let x = unsafe {
                        (a.as_ptr().add((r0 + r) * stride + b * BLOCK_K + 2 * pair) as *const i32)
                            .read_unaligned()
                    };
                    let x = _mm512_set1_epi32(x).into_bh();
                    acc[0] = _mm512_dpbf16_ps(acc[0], x, w0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], x, w1);
                }
            }
        }
        store(&acc, r0, c);
    }
}

/// # Safety
/// See [`super::MicroKernel`]; the CPU has avx512f.
pub unsafe fn avx512_block(a: &[u16], stride: usize, rows: usize, panel: &[u16], c: &mut [f32]) {
    // SAFETY: forwarded.
    unsafe { avx512(a, stride, rows, panel, c) }
}

/// bf16 widened to f32 by shifting into the high half (exact), then two fused multiply-adds per
/// pair: even element, then odd.
#[target_feature(enable = "avx512f")]
unsafe fn avx512(a: &[u16], stride: usize, rows: usize, panel: &[u16], c: &mut [f32]) {
    let blocks = stride / BLOCK_K;
    assert!(a.len() >= BLOCK_M * stride && panel.len() >= blocks * 2 * HALF);
    assert!(c.len() >= BLOCK_M * PANEL);
    let high = _mm512_set1_epi32(0xffff_0000_u32 as i32);
    for r0 in (0..rows.min(BLOCK_M)).step_by(ROWS) {
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        for b in 0..blocks {
            for pair in 0..BLOCK_K / 2 {
                let w = |half: usize| {
                    // SAFETY: 32 values at this offset lie inside `panel` (asserted length).
                    let v = unsafe {
                        _mm512_loadu_si512(
                            panel.as_ptr().add((b * 2 + half) * HALF + pair * 32).cast(),
                        )
                    };
                    (
                        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v)),
                        _mm512_castsi512_ps(_mm512_and_si512(v, high)),
                    )
                };
                let (w0, w1) = (w(0), w(1));
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: as in `avx512_bf16`.
                    let x = unsafe {
                        (a.as_ptr().add((r0 + r) * stride + b * BLOCK_K + 2 * pair) as *const u32)
                            .read_unaligned()
                    };
                    let even = _mm512_set1_ps(f32::from_bits(x << 16));
                    let odd = _mm512_set1_ps(f32::from_bits(x & 0xffff_0000));
                    acc[0] = _mm512_fmadd_ps(odd, w0.1, _mm512_fmadd_ps(even, w0.0, acc[0]));
                    acc[1] = _mm512_fmadd_ps(odd, w1.1, _mm512_fmadd_ps(even, w1.0, acc[1]));
                }
            }
        }
        store(&acc, r0, c);
    }
}

#[target_feature(enable = "avx512f")]
fn store(acc: &[[__m512; 2]; ROWS], r0: usize, c: &mut [f32]) {
    for (r, acc) in acc.iter().enumerate() {
        if r0 + r >= BLOCK_M {
            break;
        }
        for (half, v) in acc.iter().enumerate() {
            let at = (r0 + r) * PANEL + half * 16;
            let dst = &mut c[at..at + 16];
            // SAFETY: `dst` holds 16 floats.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *v) };
        }
    }
}

trait IntoBh {
    fn into_bh(self) -> __m512bh;
}

impl IntoBh for __m512i {
    #[inline(always)]
    fn into_bh(self) -> __m512bh {
        // SAFETY: both are 512-bit vectors of plain bits; bf16 lanes are a reinterpretation.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(self) }
    }
}
