//! CPU (burn flex) kernels for the attention block, on raw slices, spread over cores with rayon.
//!
//! Arithmetic stays in f32 (f16 inputs are widened once), in the same order transformers uses
//! where it matters for parity: scores are `q·k` scaled, softmax subtracts the row maximum, and rope
//! adds `x·cos` and `rotate_half(x)·sin` as two rounded products. Attention over bf16 tensors runs
//! on the matrix units instead ([`super::bf16::attention`]), rounding as PyTorch's bf16 does.

use std::any::{Any, TypeId};

use burn::tensor::{Bytes, DType, Shape, Tensor, TensorPrimitive, backend::Backend, bf16, f16};
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

use super::CausalMask;
use crate::rope::RopeTables;

/// Queries per attention tile: enough rows for the GEMMs to run near peak, few enough that a
/// (batch, head) pair still splits into several tiles for the cores to share.
const QUERY_BLOCK: usize = 64;

pub fn rotary<B: Backend>(x: &Tensor<B, 4>, rope: &RopeTables<B>) -> Option<Tensor<B, 4>> {
    let t = as_flex(x)?;
    let [b, s, h, d] = dims4(&t)?;
    let (cos, sin) = rope.host_tables();
    let rows = rope.rows();
    if (rows != 1 && rows != b) || cos.len() != rows * s * d || d % 2 != 0 {
        return None;
    }
    let dtype = t.dtype();
    let x = Values::of(&t)?;
    let x = x.as_slice();
    let half = d / 2;
    let mut out = vec![0f32; b * s * h * d];
    // One task per (batch, position): its heads share one row of the tables.
    out.par_chunks_mut(h * d)
        .zip(x.par_chunks(h * d))
        .enumerate()
        .for_each(|(row, (out, x))| {
            // Shared tables have one row per position; per-row tables one per (batch, position).
            let pos = if rows == 1 { row % s } else { row };
            let (cos, sin) = (&cos[pos * d..(pos + 1) * d], &sin[pos * d..(pos + 1) * d]);
            for (out, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                for i in 0..half {
                    let (x1, x2) = (x[i], x[i + half]);
                    out[i] = x1 * cos[i] + (-x2) * sin[i];
                    out[i + half] = x2 * cos[i + half] + x1 * sin[i + half];
                }
            }
        });
    from_flex(tensor(out, [b, s, h, d], dtype))
}

pub fn attention<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    mask: CausalMask<'_>,
) -> Option<Tensor<B, 4>> {
    let (qt, kt, vt) = (as_flex(q)?, as_flex(k)?, as_flex(v)?);
    let [b, q_len, heads, d] = dims4(&qt)?;
    let [kb, kv_len, kv_heads, kd] = dims4(&kt)?;
    if dims4(&vt)? != [kb, kv_len, kv_heads, kd]
        || kb != b
        || kd != d
        || kv_heads == 0
        || heads % kv_heads != 0
        || kv_len < q_len
    {
        return None;
    }
    let dtype = qt.dtype();
    if [qt.dtype(), kt.dtype(), vt.dtype()] == [DType::BF16; 3] {
        let g = super::bf16::attention::Geometry {
            batch: b,
            q_len,
            kv_len,
            heads,
            kv_heads,
            d,
        };
        let (qs, ks, vs) = (
            Bf16Values::of(&qt)?,
            Bf16Values::of(&kt)?,
            Bf16Values::of(&vt)?,
        );
        let out = super::bf16::attention::attention(
            super::bf16::isa(),
            g,
            (qs.as_slice(), ks.as_slice(), vs.as_slice()),
            &mask,
        );
        let layout = Layout::contiguous(Shape::from(vec![b, q_len, heads, d]));
        return from_flex(FlexTensor::new(Bytes::from_elems(out), layout, dtype));
    }
    let (qv, kv, vv) = (Values::of(&qt)?, Values::of(&kt)?, Values::of(&vt)?);
    let shape = Geometry {
        q_len,
        kv_len,
        heads,
        kv_heads,
        d,
    };
    let mut out = vec![0f32; b * q_len * heads * d];
    // One tile per (batch, query head, query block). Stacking a whole query group into one tile
    // reads each key block once per group, but its products then vary in row count between a
    // padded batch and a shared-prefix one, and gemm's blocking (so its summation order over the
    // keys) with them: a sequence would no longer get the same bits alone and batched.
    let blocks = q_len.div_ceil(QUERY_BLOCK);
    let dst = SharedMut(out.as_mut_ptr());
    (0..b * heads * blocks).into_par_iter().for_each(|tile| {
        let (bh, at) = (tile / blocks, tile % blocks);
        let (batch, head) = (bh / heads, bh % heads);
        let rows = at * QUERY_BLOCK..((at + 1) * QUERY_BLOCK).min(q_len);
        // SAFETY: tiles write disjoint (batch, head, query rows) regions of `out`, which outlives
        // the parallel loop; `attention_tile` stays inside its own region.
        unsafe {
            attention_tile(
                &shape,
                mask,
                (batch, head..head + 1, rows),
                (qv.as_slice(), kv.as_slice(), vv.as_slice()),
                dst,
            )
        };
    });
    from_flex(tensor(out, [b, q_len, heads, d], dtype))
}

struct Geometry {
    q_len: usize,
    kv_len: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
}

#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used to hand disjoint output regions to parallel tiles.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer `offset` elements on (a method, so closures capture the `Sync` wrapper).
    ///
    /// # Safety
    /// `offset` must stay inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        unsafe { self.0.add(offset) }
    }
}

/// One (batch, query heads, query rows) tile — the heads all of one key/value group — with the
/// heads' rows stacked into one matrix: scores against the visible key range only, softmax, and the
/// weighted sum of values written into the `[batch, q_len, heads, d]` output.
///
/// # Safety
/// `out` must point to `batch * q_len * heads * d` floats, and no other thread may write the rows
/// `rows` of heads `heads` in batch `batch`.
unsafe fn attention_tile(
    g: &Geometry,
    mask: CausalMask<'_>,
    (batch, heads, rows): (usize, std::ops::Range<usize>, std::ops::Range<usize>),
    (q, k, v): (&[f32], &[f32], &[f32]),
    out: SharedMut,
) {
    let offset = g.kv_len - g.q_len;
    let (group, kv_head) = (heads.len(), heads.start / (g.heads / g.kv_heads));
    let (first_pos, last_pos) = (offset + rows.start, offset + rows.end - 1);
    let keys = mask.first_key(batch, first_pos)..last_pos + 1;
    let (m, n, d) = (rows.len(), keys.len(), g.d);
    let gm = group * m;
    let (q_stride, kv_stride) = (g.heads * d, g.kv_heads * d);
    let kv_at = (batch * g.kv_len + keys.start) * kv_stride + kv_head * d;
    // Row `j * m + r` of the stacked matrices is query row `rows.start + r` of head
    // `heads.start + j`.
    let q_row =
        |j: usize, r: usize| (batch * g.q_len + rows.start + r) * q_stride + (heads.start + j) * d;
    let scale = 1.0 / (d as f32).sqrt();
    TILE.with(|cell| {
        let (stacked, scores, sums) = &mut *cell.borrow_mut();
        stacked.clear();
        for j in 0..group {
            for r in 0..m {
                stacked.extend_from_slice(&q[q_row(j, r)..q_row(j, r) + d]);
            }
        }
        scores.clear();
        scores.resize(gm * n, 0.0);
        sums.clear();
        sums.resize(gm * d, 0.0);
        // SAFETY: every index the GEMMs touch lies inside the buffers: `stacked` (gm x d),
        // `scores` (gm x n), `sums` (gm x d), and keys `keys` of the key/value head.
        unsafe {
            gemm::gemm(
                gm,
                n,
                d,
                scores.as_mut_ptr(),
                1,
                n as isize,
                false,
                stacked.as_ptr(),
                1,
                d as isize,
                k.as_ptr().add(kv_at),
                kv_stride as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (i, row) in scores.chunks_exact_mut(n).enumerate() {
            let p = offset + rows.start + i % m;
            let visible = mask.first_key(batch, p) - keys.start..p + 1 - keys.start;
            let max = lane_max(&row[visible.clone()]);
            row[..visible.start].fill(0.0);
            row[visible.end..].fill(0.0);
            let seen = &mut row[visible.clone()];
            seen.iter_mut().for_each(|s| *s -= max);
            super::vexp::exp_in_place(seen);
            let inv = 1.0 / lane_sum(seen);
            seen.iter_mut().for_each(|s| *s *= inv);
        }
        // SAFETY: as above.
        unsafe {
            gemm::gemm(
                gm,
                d,
                n,
                sums.as_mut_ptr(),
                1,
                d as isize,
                false,
                scores.as_ptr(),
                1,
                n as isize,
                v.as_ptr().add(kv_at),
                1,
                kv_stride as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for j in 0..group {
            for r in 0..m {
                let src = &sums[(j * m + r) * d..(j * m + r + 1) * d];
                // SAFETY: row `rows.start + r` of head `heads.start + j` in batch `batch`: inside
                // `out`, and this tile's alone (the caller's contract).
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), out.at(q_row(j, r)), d) };
            }
        }
    });
}

type TileBuffers = (Vec<f32>, Vec<f32>, Vec<f32>);

thread_local! {
    /// A tile's stacked queries, scores and sums, kept per thread: allocating and zeroing them per
    /// tile cost 4% of a run.
    static TILE: std::cell::RefCell<TileBuffers> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// The maximum of `x`, in 16 lanes so it vectorizes (a plain `f32::max` fold does not).
pub(super) fn lane_max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// The sum of `x` in 16 lanes (a fixed order for a given length), then the lanes pairwise.
pub(super) fn lane_sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    chunks.remainder().iter().fold(lanes[0], |a, &b| a + b)
}

/// Rows up to which a product takes the few-rows kernel below (decoding steps, short chunks):
/// gemm would run it single-threaded (its threading starts near 192^3 multiply-adds).
const FEW_ROWS: usize = 64;

/// Output columns per task in the few-rows product: large enough that each task streams a
/// sizeable slab of the weight.
const COLUMN_BLOCK: usize = 256;

/// `x @ weight^T` for few rows, output columns split over the cores, each output a dot product
/// summed in one fixed order (16 lanes, then a fixed reduction) whatever the number of rows: a
/// row gets the same bits alone or in any batch. Decoding runs on it, so that a sequence decoded
/// beside others gets exactly the tokens it gets alone (with gemm, rounding would differ and a
/// sampled token could flip). Decoding is memory-bound: streaming each weight row once for all
/// rows keeps it about as fast as gemm (0.6x at 32 rows).
pub fn linear_row_stable<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    let [rows, k] = x.dims();
    let [n, wk] = weight.dims();
    if rows > FEW_ROWS || wk != k || k == 0 {
        return None;
    }
    let (xt, wt) = (as_flex(x)?, as_flex(weight)?);
    if xt.dtype() != DType::F32 || wt.dtype() != DType::F32 {
        return None;
    }
    let (xv, wv) = (Values::of(&xt)?, Values::of(&wt)?);
    let (xs, ws) = (xv.as_slice(), wv.as_slice());
    let mut out = vec![0f32; rows * n];
    let dst = SharedMut(out.as_mut_ptr());
    let kernels = DotKernels::detect();
    (0..n.div_ceil(COLUMN_BLOCK))
        .into_par_iter()
        .for_each(|block| {
            let cols = block * COLUMN_BLOCK..((block + 1) * COLUMN_BLOCK).min(n);
            for j in cols.clone().step_by(4) {
                let quad = (cols.end - j).min(4);
                // A short last quad repeats its last column (computed, not stored).
                let w = |c: usize| &ws[(j + c.min(quad - 1)) * k..(j + c.min(quad - 1) + 1) * k];
                let w = [w(0), w(1), w(2), w(3)];
                let x = |r: usize| &xs[r * k..(r + 1) * k];
                let store = |r: usize, sums: [f32; 4]| {
                    for (c, &sum) in sums.iter().enumerate().take(quad) {
                        // SAFETY: row `r` < rows, column `j + c` < `cols.end` <= n: inside the
                        // output, and the columns `cols` are this task's alone.
                        unsafe { *dst.at(r * n + j + c) = sum };
                    }
                };
                let mut r = 0;
                while r + 4 <= rows {
                    let tile = (kernels.four)([x(r), x(r + 1), x(r + 2), x(r + 3)], w);
                    for (i, sums) in tile.into_iter().enumerate() {
                        store(r + i, sums);
                    }
                    r += 4;
                }
                for r in r..rows {
                    let [sums] = (kernels.one)([x(r)], w);
                    store(r, sums);
                }
            }
        });
    let layout = Layout::contiguous(Shape::from(vec![rows, n]));
    from_flex(FlexTensor::new(Bytes::from_elems(out), layout, DType::F32))
}

/// `x @ weight^T` for few rows through gemm, output columns split over the cores: the fastest
/// few-rows product, but gemm picks its blocking from the matrix sizes, so a row's bits depend on
/// how many rows come with it (see [`linear_row_stable`]).
pub fn linear<B: Backend>(x: &Tensor<B, 2>, weight: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    let [rows, k] = x.dims();
    let [n, wk] = weight.dims();
    if rows > FEW_ROWS || wk != k || n < 2 * COLUMN_BLOCK {
        return None;
    }
    let (xt, wt) = (as_flex(x)?, as_flex(weight)?);
    if xt.dtype() != DType::F32 || wt.dtype() != DType::F32 {
        return None;
    }
    let (xv, wv) = (Values::of(&xt)?, Values::of(&wt)?);
    let (xs, ws) = (xv.as_slice(), wv.as_slice());
    let mut out = vec![0f32; rows * n];
    let dst = SharedMut(out.as_mut_ptr());
    (0..n.div_ceil(COLUMN_BLOCK))
        .into_par_iter()
        .for_each(|block| {
            let cols = block * COLUMN_BLOCK..((block + 1) * COLUMN_BLOCK).min(n);
            // SAFETY: each task writes only its own columns `cols` of the `rows x n` output, reads rows
            // `cols` of the `n x k` weight and the whole `rows x k` input, all in bounds.
            unsafe {
                gemm::gemm(
                    rows,
                    cols.len(),
                    k,
                    dst.at(cols.start),
                    1,
                    n as isize,
                    false,
                    xs.as_ptr(),
                    1,
                    k as isize,
                    ws.as_ptr().add(cols.start * k),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
    let layout = Layout::contiguous(Shape::from(vec![rows, n]));
    from_flex(FlexTensor::new(Bytes::from_elems(out), layout, DType::F32))
}

/// The weight packed for [`super::bf16`]'s products, when `B` is flex and the weight is bf16 (other
/// dtypes keep their exact paths).
pub fn pack_bf16<B: Backend>(weight: &Tensor<B, 2>) -> Option<super::bf16::PackedBf16> {
    if !super::fast_paths() {
        return None;
    }
    let t = as_flex(weight)?;
    if t.dtype() != DType::BF16 {
        return None;
    }
    let [n, k] = weight.dims();
    let t = t.to_contiguous();
    let (start, end) = t.layout().contiguous_offsets()?;
    Some(super::bf16::PackedBf16::pack(
        &t.storage::<bf16>()[start..end],
        n,
        k,
    ))
}

/// `x @ w^T` in bf16 on the packed weight (`x` bf16 `[rows, k]`).
pub fn linear_packed<B: Backend>(
    x: &Tensor<B, 2>,
    packed: &super::bf16::PackedBf16,
) -> Option<Tensor<B, 2>> {
    let [rows, k] = x.dims();
    let [n, wk] = packed.dims();
    let t = as_flex(x)?;
    if wk != k || t.dtype() != DType::BF16 {
        return None;
    }
    let t = t.to_contiguous();
    let (start, end) = t.layout().contiguous_offsets()?;
    let out = super::bf16::matmul(&t.storage::<bf16>()[start..end], rows, packed);
    let layout = Layout::contiguous(Shape::from(vec![rows, n]));
    from_flex(FlexTensor::new(Bytes::from_elems(out), layout, DType::BF16))
}

const LANES: usize = 16;

/// Dot products of `R` rows with four weight rows: `[R][4]` sums.
type DotTile<const R: usize> = fn([&[f32]; R], [&[f32]; 4]) -> [[f32; 4]; R];

/// The dot-product tiles for this CPU: AVX-512 or AVX2 fused multiply-adds where it has them
/// (detected at run time), plain multiply and add otherwise. One choice per product, so
/// every row of it is summed the same way.
struct DotKernels {
    four: DotTile<4>,
    one: DotTile<1>,
}

impl DotKernels {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            return Self {
                four: x86::tile_avx512::<4>,
                one: x86::tile_avx512::<1>,
            };
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Self {
                four: x86::tile_avx2::<4>,
                one: x86::tile_avx2::<1>,
            };
        }
        Self {
            four: tile_portable::<4>,
            one: tile_portable::<1>,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Selected only after `avx512f` was detected.
    pub fn tile_avx512<const R: usize>(x: [&[f32]; R], w: [&[f32]; 4]) -> [[f32; 4]; R] {
        // SAFETY: `DotKernels::detect` hands this out only on CPUs with avx512f.
        unsafe { avx512(x, w) }
    }

    /// 16 lanes of fused multiply-adds per step, the remainder through a masked load (zeros add
    /// nothing), then the lanes summed in the instruction's fixed order.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const R: usize>(x: [&[f32]; R], w: [&[f32]; 4]) -> [[f32; 4]; R] {
        let len = w[0].len();
        debug_assert!(x.iter().chain(&w).all(|s| s.len() == len));
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let mut at = 0;
        while at < len {
            let left = len - at;
            let mask: __mmask16 = if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            // SAFETY: the mask keeps every lane read inside the slices (all of length `len`).
            let wv: [__m512; 4] = std::array::from_fn(|c| unsafe {
                _mm512_maskz_loadu_ps(mask, w[c].as_ptr().add(at))
            });
            for (a, xr) in acc.iter_mut().zip(&x) {
                // SAFETY: as above.
                let xv = unsafe { _mm512_maskz_loadu_ps(mask, xr.as_ptr().add(at)) };
                for (ac, wc) in a.iter_mut().zip(&wv) {
                    *ac = _mm512_fmadd_ps(xv, *wc, *ac);
                }
            }
            at += 16;
        }
        acc.map(|a| a.map(|v| _mm512_reduce_add_ps(v)))
    }

    /// Selected only after `avx2` and `fma` were detected.
    pub fn tile_avx2<const R: usize>(x: [&[f32]; R], w: [&[f32]; 4]) -> [[f32; 4]; R] {
        // SAFETY: `DotKernels::detect` hands this out only on CPUs with avx2 and fma.
        unsafe { avx2(x, w) }
    }

    /// 8 lanes of fused multiply-adds per step, the remainder in scalar fused multiply-adds, then
    /// a fixed pairwise sum of the lanes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const R: usize>(x: [&[f32]; R], w: [&[f32]; 4]) -> [[f32; 4]; R] {
        let len = w[0].len();
        debug_assert!(x.iter().chain(&w).all(|s| s.len() == len));
        let body = len / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let mut at = 0;
        while at < body {
            // SAFETY: `at + 8 <= body <= len` for every slice.
            let wv: [__m256; 4] =
                std::array::from_fn(|c| unsafe { _mm256_loadu_ps(w[c].as_ptr().add(at)) });
            for (a, xr) in acc.iter_mut().zip(&x) {
                // SAFETY: as above.
                let xv = unsafe { _mm256_loadu_ps(xr.as_ptr().add(at)) };
                for (ac, wc) in a.iter_mut().zip(&wv) {
                    *ac = _mm256_fmadd_ps(xv, *wc, *ac);
                }
            }
            at += 8;
        }
        let mut out = [[0f32; 4]; R];
        for ((o, a), xr) in out.iter_mut().zip(&acc).zip(&x) {
            for ((oc, ac), wc) in o.iter_mut().zip(a).zip(&w) {
                let mut lanes = [0f32; 8];
                // SAFETY: `lanes` holds 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *ac) };
                let mut tail = 0f32;
                for i in body..len {
                    tail = xr[i].mul_add(wc[i], tail);
                }
                let pairs = [
                    lanes[0] + lanes[4],
                    lanes[1] + lanes[5],
                    lanes[2] + lanes[6],
                    lanes[3] + lanes[7],
                ];
                *oc = ((pairs[0] + pairs[2]) + (pairs[1] + pairs[3])) + tail;
            }
        }
        out
    }
}

/// `R x 4` dot products (every slice of one length) for CPUs without AVX2/AVX-512, each summed in
/// one fixed order whatever `R`: lane-wise over chunks of [`LANES`], then the remainder, then a
/// fixed pairwise reduction of the lanes.
fn tile_portable<const R: usize>(x: [&[f32]; R], w: [&[f32]; 4]) -> [[f32; 4]; R] {
    let len = w[0].len();
    let body = len / LANES * LANES;
    let mut acc = [[[0f32; LANES]; 4]; R];
    let mut at = 0;
    while at < body {
        // Fixed-size chunks: no bounds checks inside, so the lanes vectorize.
        let wc: [&[f32; LANES]; 4] = std::array::from_fn(|c| chunk(w[c], at));
        for (a, xr) in acc.iter_mut().zip(&x) {
            let xc = chunk(xr, at);
            for (ac, wcc) in a.iter_mut().zip(&wc) {
                for l in 0..LANES {
                    ac[l] += xc[l] * wcc[l];
                }
            }
        }
        at += LANES;
    }
    let mut out = [[0f32; 4]; R];
    for ((o, a), xr) in out.iter_mut().zip(&acc).zip(&x) {
        for ((oc, ac), wc) in o.iter_mut().zip(a).zip(&w) {
            let mut tail = 0f32;
            for i in body..len {
                tail += xr[i] * wc[i];
            }
            let mut lanes = *ac;
            let mut width = LANES;
            while width > 1 {
                width /= 2;
                for l in 0..width {
                    lanes[l] += lanes[l + width];
                }
            }
            *oc = lanes[0] + tail;
        }
    }
    out
}

#[inline(always)]
fn chunk(s: &[f32], at: usize) -> &[f32; LANES] {
    s[at..at + LANES].try_into().unwrap_or(&[0f32; LANES])
}

/// The flex tensor behind `t`, when `B` is flex.
pub(super) fn as_flex<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<FlexTensor> {
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<FlexTensor>() {
        return None;
    }
    let primitive = t.clone().into_primitive().tensor();
    (&primitive as &dyn Any)
        .downcast_ref::<FlexTensor>()
        .cloned()
}

pub(super) fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Option<Tensor<B, D>> {
    let mut slot = Some(t);
    let primitive = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<B::FloatTensorPrimitive>>()?
        .take()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(primitive)))
}

fn dims4(t: &FlexTensor) -> Option<[usize; 4]> {
    let shape = t.layout().shape();
    (shape.num_dims() == 4).then(|| [shape[0], shape[1], shape[2], shape[3]])
}

/// A tensor of `dtype` from f32 values.
fn tensor(values: Vec<f32>, shape: [usize; 4], dtype: DType) -> FlexTensor {
    let layout = Layout::contiguous(Shape::from(shape.to_vec()));
    match dtype {
        DType::BF16 => {
            let v: Vec<bf16> = values.into_iter().map(bf16::from_f32).collect();
            FlexTensor::new(Bytes::from_elems(v), layout, dtype)
        }
        DType::F16 => {
            let v: Vec<f16> = values.into_iter().map(f16::from_f32).collect();
            FlexTensor::new(Bytes::from_elems(v), layout, dtype)
        }
        _ => FlexTensor::new(Bytes::from_elems(values), layout, DType::F32),
    }
}

impl super::bf16::attention::Visibility for CausalMask<'_> {
    fn first_key(&self, batch: usize, position: usize) -> usize {
        CausalMask::first_key(self, batch, position)
    }

    fn start(&self, batch: usize) -> usize {
        self.pad.get(batch).copied().unwrap_or(0)
    }
}

/// A bf16 tensor's values, contiguous.
struct Bf16Values(FlexTensor, std::ops::Range<usize>);

impl Bf16Values {
    fn of(t: &FlexTensor) -> Option<Self> {
        let t = t.to_contiguous();
        let (start, end) = t.layout().contiguous_offsets()?;
        (t.dtype() == DType::BF16).then_some(Self(t, start..end))
    }

    fn as_slice(&self) -> &[bf16] {
        &self.0.storage::<bf16>()[self.1.clone()]
    }
}

/// A tensor's values as contiguous f32: borrowed when already so, widened otherwise.
enum Values {
    Borrowed(FlexTensor, std::ops::Range<usize>),
    Owned(Vec<f32>),
}

impl Values {
    fn of(t: &FlexTensor) -> Option<Self> {
        let t = t.to_contiguous();
        let (start, end) = t.layout().contiguous_offsets()?;
        match t.dtype() {
            DType::F32 => Some(Self::Borrowed(t, start..end)),
            DType::BF16 => Some(Self::Owned(
                t.storage::<bf16>()[start..end]
                    .iter()
                    .map(|x| x.to_f32())
                    .collect(),
            )),
            DType::F16 => Some(Self::Owned(
                t.storage::<f16>()[start..end]
                    .iter()
                    .map(|x| x.to_f32())
                    .collect(),
            )),
            _ => None,
        }
    }

    fn as_slice(&self) -> &[f32] {
        match self {
            Self::Borrowed(t, range) => &t.storage::<f32>()[range.clone()],
            Self::Owned(v) => v,
        }
    }
}
