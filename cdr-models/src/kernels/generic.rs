//! The attention block composed from burn tensor ops: any backend, and the reference the fast paths
//! are tested against.

use burn::tensor::{Bool, DType, Int, Tensor, TensorData, activation::softmax, backend::Backend};

use super::CausalMask;
use crate::rope::RopeTables;

pub fn rotary<B: Backend>(x: Tensor<B, 4>, rope: &RopeTables<B>) -> Tensor<B, 4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * rope.cos() + rotated * rope.sin()
}

/// Bytes of f32 attention scores held at once: queries are taken in blocks so that
/// `[batch, heads, block, keys]` stays under it, whatever the batch. Without a bound a long padded
/// batch asks for one buffer per layer larger than some devices allocate (wgpu caps a buffer at
/// 128-256 MiB), and burn's attention autotune then falls back to a flash kernel that scored a
/// 5 x 1,383-token batch up to 0.1 nats off on Mesa's Vulkan device.
pub const SCORE_BUDGET: usize = 64 << 20;

/// Key counts are padded to a multiple of this (zero keys, masked out) before the product of the
/// probabilities with `v`, whose inner dimension is the key count. burn 0.21's matmul autotune may
/// pick a double-buffered unit kernel (`matmul_double_unit_max_tile_size`) that returns wrong sums
/// when the inner dimension is a multiple of 8 but not of 16 (found on Mesa's Vulkan device: every
/// `[4, m, k] x [4, k, 32]` product with such a `k` near 1,000-2,000 was off by 15-20). Model
/// dimensions are multiples of 64 in every released checkpoint; the key count is the one inner
/// dimension that comes from the data. Fewer distinct shapes also means fewer kernels to compile.
pub const KEY_ALIGN: usize = 64;

/// Causal attention composed from matmuls and a softmax, as HF's eager attention computes it:
/// scores in the compute dtype, softmax in f32, probabilities cast back for the product with `v`.
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: CausalMask<'_>,
) -> Tensor<B, 4> {
    attention_in_blocks(q, k, v, mask, SCORE_BUDGET)
}

/// [`attention`] with the score budget as a parameter, so tests can force many query blocks.
pub fn attention_in_blocks<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: CausalMask<'_>,
    score_budget: usize,
) -> Tensor<B, 4> {
    let [b, q_len, heads, head_dim] = q.dims();
    let kv_len = k.dims()[1];
    let dtype = q.dtype();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let padded = kv_len.next_multiple_of(KEY_ALIGN);
    let (k, v) = (pad_keys(k, padded), pad_keys(v, padded));
    let (q, k, v) = (q.swap_dims(1, 2), k.swap_dims(1, 2), v.swap_dims(1, 2));
    let (k, v) = (repeat_kv(k, heads), repeat_kv(v, heads));
    let per_query = b * heads * padded * std::mem::size_of::<f32>();
    let block = (score_budget / per_query.max(1)).clamp(1, q_len.max(1));
    let offset = kv_len - q_len;
    let mut outputs = Vec::with_capacity(q_len.div_ceil(block));
    for q0 in (0..q_len).step_by(block) {
        let rows = block.min(q_len - q0);
        // Keys this block can see (none after its last query, none before the window of its
        // first), widened to whole multiples of KEY_ALIGN; the mask hides the extra ones.
        let hi = (offset + q0 + rows).next_multiple_of(KEY_ALIGN);
        let lo = match mask.window {
            Some(w) => (offset + q0 + 1).saturating_sub(w),
            None => 0,
        };
        let lo = lo - lo % KEY_ALIGN;
        let scores = q
            .clone()
            .narrow(2, q0, rows)
            .matmul(k.clone().narrow(2, lo, hi - lo).swap_dims(2, 3))
            .cast(DType::F32)
            * scale;
        let hidden = hidden_keys::<B>(b, offset + q0, rows, lo, hi, mask, &scores.device());
        // A finite floor, not -inf: a query that sees no key at all (left padding) then gets a
        // uniform row instead of NaN, which the product with `v` would spread to every row.
        let dims = scores.dims();
        let scores = scores.mask_fill(hidden.expand(dims), f32::MIN);
        let probs = softmax(scores, 3).cast(dtype);
        outputs.push(probs.matmul(v.clone().narrow(2, lo, hi - lo)));
    }
    Tensor::cat(outputs, 2).swap_dims(1, 2)
}

/// `x: [batch, keys, heads, head_dim]` with zero keys appended up to `len`.
fn pad_keys<B: Backend>(x: Tensor<B, 4>, len: usize) -> Tensor<B, 4> {
    let [b, keys, heads, d] = x.dims();
    if keys == len {
        return x;
    }
    let zeros = Tensor::zeros([b, len - keys, heads, d], (&x.device(), x.dtype()));
    Tensor::cat(vec![x, zeros], 1)
}

/// Grouped-query attention: each key/value head serves `heads / kv_heads` query heads.
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, heads: usize) -> Tensor<B, 4> {
    let [b, kv_heads, s, d] = x.dims();
    let groups = heads / kv_heads;
    if groups == 1 {
        return x;
    }
    x.unsqueeze_dim::<5>(2)
        .expand([b, kv_heads, groups, s, d])
        .reshape([b, heads, s, d])
}

/// `[rows, 1, queries, hi - lo]`, `true` where key `lo + j` is hidden from the query at absolute
/// position `first + i`: after it, outside its window, or in its row's left padding (`rows` is 1
/// unless rows are padded). Built from index ranges on the device, so no mask crosses the bus.
fn hidden_keys<B: Backend>(
    batch: usize,
    first: usize,
    queries: usize,
    lo: usize,
    hi: usize,
    mask: CausalMask<'_>,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let shape = [1, 1, queries, hi - lo];
    let position = Tensor::<B, 1, Int>::arange(first as i64..(first + queries) as i64, device)
        .reshape([1, 1, queries, 1])
        .expand(shape);
    let key = Tensor::<B, 1, Int>::arange(lo as i64..hi as i64, device)
        .reshape([1, 1, 1, hi - lo])
        .expand(shape);
    let mut hidden = key.clone().greater(position.clone());
    if let Some(w) = mask.window {
        // Key `j` is outside the window of position `p` when `j + w <= p`.
        hidden = hidden.bool_or(key.clone().add_scalar(w as i64).lower_equal(position));
    }
    if mask.pad.is_empty() {
        return hidden;
    }
    let shape = [batch, 1, queries, hi - lo];
    let pad: Vec<i64> = mask.pad.iter().map(|&p| p as i64).collect();
    let pad = Tensor::<B, 1, Int>::from_data(TensorData::new(pad, [batch]), device)
        .reshape([batch, 1, 1, 1])
        .expand(shape);
    hidden.expand(shape).bool_or(key.expand(shape).lower(pad))
}
