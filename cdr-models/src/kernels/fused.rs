//! The CPU's element-wise steps of a layer as single passes over raw slices: RMS normalization,
//! the SwiGLU product, and the log-softmax read at one token per row. Composed from burn flex ops,
//! each was several passes with a fresh tensor per pass (a cast, a square, a mean, a product ...)
//! and a scalar `exp`; in bf16 they cost as much as the matrix products once those ran on AMX.
//!
//! Each computes in f32 and rounds where transformers rounds (to the compute dtype after the
//! normalization, after SiLU and after the gate-times-up product), so bf16 results match the
//! composed ops' to the bit or within one rounding of `exp`.

use burn::tensor::{Bytes, DType, Shape, Tensor, backend::Backend, bf16, f16};
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

use super::cpu::{as_flex, from_flex};
use super::vexp::exp_in_place;
use super::wide::wide;

/// An element type the compute dtype may be.
trait Elem: burn::tensor::Element + bytemuck::Pod {
    const DTYPE: DType;
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Elem for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

impl Elem for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

/// Rows processed per task: enough work to outweigh the scheduling.
const ROWS_PER_TASK: usize = 4;

/// Elements per `exp` batch (a stack buffer).
const LANE_BLOCK: usize = 256;

/// The contiguous values of `t` as `E`, or `None` when `t` is of another dtype.
fn values<E: Elem>(t: &FlexTensor) -> Option<(FlexTensor, std::ops::Range<usize>)> {
    if t.dtype() != E::DTYPE {
        return None;
    }
    let t = t.to_contiguous();
    let range = t.layout().contiguous_offsets()?;
    Some((t, range.0..range.1))
}

fn output<B: Backend, const D: usize, E: Elem>(
    data: Vec<E>,
    shape: [usize; D],
) -> Option<Tensor<B, D>> {
    let layout = Layout::contiguous(Shape::from(shape.to_vec()));
    from_flex(FlexTensor::new(Bytes::from_elems(data), layout, E::DTYPE))
}

/// `x / sqrt(mean(x^2) + eps)` per row in f32, rounded to the dtype, times `weight` (in the dtype).
pub fn rms_norm<B: Backend>(
    x: &Tensor<B, 3>,
    weight: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, 3>> {
    let (xt, wt) = (as_flex(x)?, as_flex(weight)?);
    match xt.dtype() {
        DType::F32 => rms_norm_typed::<B, f32>(&xt, &wt, x.dims(), eps),
        DType::BF16 => rms_norm_typed::<B, bf16>(&xt, &wt, x.dims(), eps),
        DType::F16 => rms_norm_typed::<B, f16>(&xt, &wt, x.dims(), eps),
        _ => None,
    }
}

fn rms_norm_typed<B: Backend, E: Elem>(
    xt: &FlexTensor,
    wt: &FlexTensor,
    shape: [usize; 3],
    eps: f64,
) -> Option<Tensor<B, 3>> {
    let h = shape[2];
    let (xt, xr) = values::<E>(xt)?;
    let (wt, wr) = values::<E>(wt)?;
    let (xs, ws) = (&xt.storage::<E>()[xr], &wt.storage::<E>()[wr]);
    if ws.len() != h || h == 0 {
        return None;
    }
    let eps = eps as f32;
    let mut out = vec![E::from_f32(0.0); xs.len()];
    out.par_chunks_mut(h * ROWS_PER_TASK)
        .zip(xs.par_chunks(h * ROWS_PER_TASK))
        .for_each(|(out, xs)| {
            wide(
                #[inline(always)]
                || {
                    for (out, x) in out.chunks_exact_mut(h).zip(xs.chunks_exact(h)) {
                        // The sum of squares in f32, as `x.float().pow(2).mean()` accumulates.
                        let sum: f32 = x.iter().map(|v| v.to_f32() * v.to_f32()).sum();
                        let inv = (sum / h as f32 + eps).sqrt().recip();
                        for ((o, v), w) in out.iter_mut().zip(x).zip(ws) {
                            let normed = E::from_f32(v.to_f32() * inv);
                            *o = E::from_f32(normed.to_f32() * w.to_f32());
                        }
                    }
                },
            )
        });
    output::<B, 3, E>(out, shape)
}

/// `silu(gate) * up`, each step rounded to the dtype as transformers' `act(gate) * up` rounds.
pub fn swiglu<B: Backend>(gate: &Tensor<B, 3>, up: &Tensor<B, 3>) -> Option<Tensor<B, 3>> {
    if gate.dims() != up.dims() {
        return None;
    }
    let (gt, ut) = (as_flex(gate)?, as_flex(up)?);
    match gt.dtype() {
        DType::F32 => swiglu_typed::<B, f32>(&gt, &ut, gate.dims()),
        DType::BF16 => swiglu_typed::<B, bf16>(&gt, &ut, gate.dims()),
        DType::F16 => swiglu_typed::<B, f16>(&gt, &ut, gate.dims()),
        _ => None,
    }
}

fn swiglu_typed<B: Backend, E: Elem>(
    gt: &FlexTensor,
    ut: &FlexTensor,
    shape: [usize; 3],
) -> Option<Tensor<B, 3>> {
    let (gt, gr) = values::<E>(gt)?;
    let (ut, ur) = values::<E>(ut)?;
    let (gs, us) = (&gt.storage::<E>()[gr], &ut.storage::<E>()[ur]);
    let mut out = vec![E::from_f32(0.0); gs.len()];
    out.par_chunks_mut(LANE_BLOCK * 16)
        .zip(
            gs.par_chunks(LANE_BLOCK * 16)
                .zip(us.par_chunks(LANE_BLOCK * 16)),
        )
        .for_each(|(out, (gs, us))| {
            wide(
                #[inline(always)]
                || swiglu_chunk(out, gs, us),
            )
        });
    output::<B, 3, E>(out, shape)
}

#[inline(always)]
fn swiglu_chunk<E: Elem>(out: &mut [E], gs: &[E], us: &[E]) {
    let mut e = [0f32; LANE_BLOCK];
    for ((out, gs), us) in out
        .chunks_mut(LANE_BLOCK)
        .zip(gs.chunks(LANE_BLOCK))
        .zip(us.chunks(LANE_BLOCK))
    {
        let e = &mut e[..gs.len()];
        for (e, g) in e.iter_mut().zip(gs) {
            *e = -g.to_f32();
        }
        exp_in_place(e);
        for (((o, g), u), e) in out.iter_mut().zip(gs).zip(us).zip(e.iter()) {
            let silu = E::from_f32(g.to_f32() / (1.0 + e));
            *o = E::from_f32(silu.to_f32() * u.to_f32());
        }
    }
}

/// `log_softmax(logits)[row, targets[row]]` in f32 for `logits: [rows, vocab]`.
pub fn log_softmax_gather<B: Backend>(logits: &Tensor<B, 2>, targets: &[i32]) -> Option<Vec<f32>> {
    let t = as_flex(logits)?;
    match t.dtype() {
        DType::F32 => log_softmax_typed::<f32>(&t, logits.dims(), targets),
        DType::BF16 => log_softmax_typed::<bf16>(&t, logits.dims(), targets),
        DType::F16 => log_softmax_typed::<f16>(&t, logits.dims(), targets),
        _ => None,
    }
}

fn log_softmax_typed<E: Elem>(
    t: &FlexTensor,
    [rows, vocab]: [usize; 2],
    targets: &[i32],
) -> Option<Vec<f32>> {
    let (t, range) = values::<E>(t)?;
    let xs = &t.storage::<E>()[range];
    if targets.len() != rows
        || vocab == 0
        || targets.iter().any(|&id| id < 0 || id as usize >= vocab)
    {
        return None;
    }
    Some(
        xs.par_chunks(vocab)
            .zip(targets.par_iter())
            .map(|(row, &target)| {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(v.to_f32()));
                let mut sum = 0f32;
                let mut e = [0f32; LANE_BLOCK];
                for chunk in row.chunks(LANE_BLOCK) {
                    let e = &mut e[..chunk.len()];
                    for (e, v) in e.iter_mut().zip(chunk) {
                        *e = v.to_f32() - max;
                    }
                    exp_in_place(e);
                    sum += e.iter().sum::<f32>();
                }
                row[target as usize].to_f32() - (sum.ln() + max)
            })
            .collect(),
    )
}

/// `y + x · a_t · b_t` for a LoRA adapter's low-rank path (`a_t: [in, r]`, `b_t: [r, out]`,
/// scaling folded into `b_t`, both f32, row-major), in one pass per row: the product in f32 and
/// the sum rounded once to the activations' dtype, as PEFT computes it. burn-flex would cast the
/// activations to f32 and back on one thread, which made the adapted pass 2.6x the base pass in
/// bf16 (measured on SmolLM2-135M); no library fuses a rank-r update into an existing output.
pub fn lora_add<B: Backend>(
    x: &Tensor<B, 2>,
    y: &Tensor<B, 2>,
    a_t: &[f32],
    b_t: &[f32],
    rank: usize,
) -> Option<Tensor<B, 2>> {
    let ([rows, d_in], [rows_y, d_out]) = (x.dims(), y.dims());
    if rows != rows_y || a_t.len() != d_in * rank || b_t.len() != rank * d_out {
        return None;
    }
    let (xt, yt) = (as_flex(x)?, as_flex(y)?);
    if xt.dtype() != yt.dtype() {
        return None;
    }
    let dims = LoraDims {
        rows,
        d_in,
        d_out,
        rank,
    };
    match xt.dtype() {
        DType::F32 => lora_typed::<B, f32>(&xt, &yt, a_t, b_t, dims),
        DType::BF16 => lora_typed::<B, bf16>(&xt, &yt, a_t, b_t, dims),
        DType::F16 => lora_typed::<B, f16>(&xt, &yt, a_t, b_t, dims),
        _ => None,
    }
}

#[derive(Clone, Copy)]
struct LoraDims {
    rows: usize,
    d_in: usize,
    d_out: usize,
    rank: usize,
}

fn lora_typed<B: Backend, E: Elem>(
    xt: &FlexTensor,
    yt: &FlexTensor,
    a_t: &[f32],
    b_t: &[f32],
    d: LoraDims,
) -> Option<Tensor<B, 2>> {
    let (xt, xr) = values::<E>(xt)?;
    let (yt, yr) = values::<E>(yt)?;
    let (xs, ys) = (&xt.storage::<E>()[xr], &yt.storage::<E>()[yr]);
    if xs.len() != d.rows * d.d_in || ys.len() != d.rows * d.d_out {
        return None;
    }
    let mut out = ys.to_vec();
    out.par_chunks_mut(d.d_out * ROWS_PER_TASK)
        .zip(xs.par_chunks(d.d_in * ROWS_PER_TASK))
        .for_each(|(out, xs)| {
            wide(
                #[inline(always)]
                || lora_rows(out, xs, a_t, b_t, d),
            )
        });
    output::<B, 2, E>(out, [d.rows, d.d_out])
}

#[inline(always)]
fn lora_rows<E: Elem>(out: &mut [E], xs: &[E], a_t: &[f32], b_t: &[f32], d: LoraDims) {
    let mut down = vec![0f32; d.rank];
    let mut delta = vec![0f32; d.d_out];
    for (out, x) in out.chunks_mut(d.d_out).zip(xs.chunks(d.d_in)) {
        down.fill(0.0);
        for (x, a) in x.iter().zip(a_t.chunks_exact(d.rank)) {
            let x = x.to_f32();
            for (dn, a) in down.iter_mut().zip(a) {
                *dn += x * a;
            }
        }
        delta.fill(0.0);
        for (dn, b) in down.iter().zip(b_t.chunks_exact(d.d_out)) {
            for (de, b) in delta.iter_mut().zip(b) {
                *de += dn * b;
            }
        }
        for (o, de) in out.iter_mut().zip(&delta) {
            *o = E::from_f32(o.to_f32() + de);
        }
    }
}
