//! The attention block composed from burn tensor ops: any backend, and the reference the fast paths
//! are tested against.

use burn::tensor::{
    Bool, Tensor, TensorData, backend::Backend, module::attention as sdpa,
    ops::AttentionModuleOptions,
};

use super::CausalMask;
use crate::rope::RopeTables;

pub fn rotary<B: Backend>(x: Tensor<B, 4>, rope: &RopeTables<B>) -> Tensor<B, 4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * rope.cos() + rotated * rope.sin()
}

pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: CausalMask<'_>,
) -> Tensor<B, 4> {
    let [b, q_len, heads, _] = q.dims();
    let kv_len = k.dims()[1];
    let (q, k, v) = (q.swap_dims(1, 2), k.swap_dims(1, 2), v.swap_dims(1, 2));
    let (k, v) = (repeat_kv(k, heads), repeat_kv(v, heads));
    // The kernel's own causal flag covers the square case; anything else gets an explicit mask so the
    // result does not depend on how a backend aligns a rectangular causal mask.
    let square = q_len == kv_len && mask.window.is_none_or(|w| w >= kv_len) && mask.pad.is_empty();
    let explicit = (!square).then(|| {
        visibility_mask::<B>(b, q_len, kv_len, mask, &q.device()).expand([b, heads, q_len, kv_len])
    });
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: square,
    };
    sdpa(q, k, v, explicit, None, options).swap_dims(1, 2)
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

/// `[rows, 1, q_len, kv_len]` (`rows` is 1 unless rows are padded), `true` where the key is hidden
/// from the query.
fn visibility_mask<B: Backend>(
    batch: usize,
    q_len: usize,
    kv_len: usize,
    mask: CausalMask<'_>,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let rows = if mask.pad.is_empty() { 1 } else { batch };
    let offset = kv_len - q_len;
    let mut hidden = vec![false; rows * q_len * kv_len];
    for (r, block) in hidden.chunks_exact_mut(q_len * kv_len).enumerate() {
        for i in 0..q_len {
            let p = offset + i;
            let first = mask.first_key(r, p);
            for (j, h) in block[i * kv_len..(i + 1) * kv_len].iter_mut().enumerate() {
                *h = j < first || j > p;
            }
        }
    }
    Tensor::<B, 3, Bool>::from_data(TensorData::new(hidden, [rows, q_len, kv_len]), device)
        .unsqueeze_dim::<4>(1)
}
