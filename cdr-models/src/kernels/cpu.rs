//! CPU (burn flex) kernels for the attention block, on raw slices, spread over cores with rayon.
//!
//! Arithmetic stays in f32 (bf16/f16 inputs are widened once), in the same order transformers uses
//! where it matters for parity: scores are `q·k` scaled, softmax subtracts the row maximum, and rope
//! adds `x·cos` and `rotate_half(x)·sin` as two rounded products.

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
    let (qv, kv, vv) = (Values::of(&qt)?, Values::of(&kt)?, Values::of(&vt)?);
    let shape = Geometry {
        q_len,
        kv_len,
        heads,
        kv_heads,
        d,
    };
    let mut out = vec![0f32; b * q_len * heads * d];
    let blocks = q_len.div_ceil(QUERY_BLOCK);
    let dst = SharedMut(out.as_mut_ptr());
    (0..b * heads * blocks).into_par_iter().for_each(|tile| {
        let (bh, block) = (tile / blocks, tile % blocks);
        let (batch, head) = (bh / heads, bh % heads);
        let rows = block * QUERY_BLOCK..((block + 1) * QUERY_BLOCK).min(q_len);
        // SAFETY: tiles write disjoint (batch, head, query rows) regions of `out`, which outlives the
        // parallel loop; `attention_tile` stays inside its own region (see its bounds).
        unsafe {
            attention_tile(
                &shape,
                mask,
                (batch, head, rows),
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

/// One (batch, head, query rows) tile: scores against the visible key range only, softmax, and the
/// weighted sum of values written straight into the `[batch, q_len, heads, d]` output.
///
/// # Safety
/// `out` must point to `batch * q_len * heads * d` floats, and no other thread may write the rows
/// `rows` of head `head` in batch `batch`.
unsafe fn attention_tile(
    g: &Geometry,
    mask: CausalMask<'_>,
    (batch, head, rows): (usize, usize, std::ops::Range<usize>),
    (q, k, v): (&[f32], &[f32], &[f32]),
    out: SharedMut,
) {
    let offset = g.kv_len - g.q_len;
    let kv_head = head / (g.heads / g.kv_heads);
    let (first_pos, last_pos) = (offset + rows.start, offset + rows.end - 1);
    let keys = mask.first_key(batch, first_pos)..last_pos + 1;
    let (m, n) = (rows.len(), keys.len());
    let (q_stride, kv_stride) = (g.heads * g.d, g.kv_heads * g.d);
    let q_at = (batch * g.q_len + rows.start) * q_stride + head * g.d;
    let kv_at = (batch * g.kv_len + keys.start) * kv_stride + kv_head * g.d;
    let scale = 1.0 / (g.d as f32).sqrt();

    let mut scores = vec![0f32; m * n];
    // SAFETY: every index the GEMMs touch lies inside the slices: rows `rows` of the query head,
    // keys `keys` of the key/value head, and the tile's own `scores`/output rows.
    unsafe {
        gemm::gemm(
            m,
            n,
            g.d,
            scores.as_mut_ptr(),
            1,
            n as isize,
            false,
            q.as_ptr().add(q_at),
            1,
            q_stride as isize,
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
    for (r, row) in scores.chunks_exact_mut(n).enumerate() {
        let p = offset + rows.start + r;
        let visible = mask.first_key(batch, p) - keys.start..p + 1 - keys.start;
        let max = row[visible.clone()]
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0f32;
        for (j, s) in row.iter_mut().enumerate() {
            if visible.contains(&j) {
                *s = (*s - max).exp();
                sum += *s;
            } else {
                *s = 0.0;
            }
        }
        let inv = 1.0 / sum;
        row[visible].iter_mut().for_each(|s| *s *= inv);
    }
    // SAFETY: as above; the destination rows are this tile's alone.
    unsafe {
        gemm::gemm(
            m,
            g.d,
            n,
            out.0.add(q_at),
            1,
            q_stride as isize,
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
}

/// Rows below which gemm would run a product single-threaded (its threading starts near 192^3
/// multiply-adds), as in decoding steps: there, output columns are split over the cores instead.
const FEW_ROWS: usize = 64;

/// Output columns per task in the few-rows product: a multiple of the AVX-512 width, large enough
/// that each task streams a sizeable slab of the weight.
const COLUMN_BLOCK: usize = 256;

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

/// The flex tensor behind `t`, when `B` is flex.
fn as_flex<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<FlexTensor> {
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<FlexTensor>() {
        return None;
    }
    let primitive = t.clone().into_primitive().tensor();
    (&primitive as &dyn Any)
        .downcast_ref::<FlexTensor>()
        .cloned()
}

fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Option<Tensor<B, D>> {
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
