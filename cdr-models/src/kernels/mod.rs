//! The decoder's compute kernels behind one interface, with a fast path per backend: the attention
//! block (rotary embedding and causal attention), the projections, and the element-wise steps.
//!
//! burn's tensor ops are generic, which costs on the CPU: every head split is a strided copy, grouped
//! query attention repeats keys and values in memory, and flex's attention walks the heads on one
//! thread. The CPU path ([`cpu`]) instead reads the projections where they lie (`[batch, seq, heads,
//! head_dim]`), serves each key/value head to its query group without copying, computes only the
//! causal (and sliding-window) part of each score block, and spreads (batch, head, query block)
//! tiles over all cores. In bf16 the projections run on the CPU's matrix units with weights packed
//! at load ([`bf16`], [`Weight`]); RMSNorm, SwiGLU and the vocabulary log-softmax are single fused
//! passes ([`fused`]) with a vector `exp` ([`vexp`]). Other backends take the composed burn ops
//! ([`generic`]), which their fusion compilers handle.
//!
//! Dispatch is by the backend's type at run time (a `TypeId` check), so model code stays generic
//! over `B: Backend` and a backend without a fast path still works.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Tensor, backend::Backend};

#[cfg(feature = "cpu")]
pub mod bf16;
#[cfg(feature = "cpu")]
mod cpu;
#[cfg(feature = "cpu")]
mod fused;
mod generic;
#[cfg(feature = "cpu")]
pub mod vexp;
#[cfg(feature = "cpu")]
mod wide;

static COMPOSED_ONLY: AtomicBool = AtomicBool::new(false);

/// Sends every backend through the composed burn ops — the path GPU backends take — so that path
/// can be checked against transformers on the CPU. Process-wide; meant for tests and comparisons.
pub fn use_composed_ops(on: bool) {
    COMPOSED_ONLY.store(on, Ordering::Relaxed);
}

#[cfg(feature = "cpu")]
fn fast_paths() -> bool {
    !COMPOSED_ONLY.load(Ordering::Relaxed)
}

/// Which keys each query sees: causal, query `i` of `q_len` sits at absolute position
/// `kv_len - q_len + i` (so a query block can follow cached keys), optionally limited to the
/// `window` most recent keys (HF sliding-window semantics: position `p` sees `p - window + 1 ..= p`),
/// and never the first `pad[b]` keys of batch row `b` (left padding of rows that joined a batch
/// shorter than others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CausalMask<'a> {
    pub window: Option<usize>,
    /// Leading key columns hidden per batch row; empty: none.
    pub pad: &'a [usize],
}

impl CausalMask<'_> {
    /// First key (inclusive) batch row `batch` sees from column `p`.
    pub fn first_key(&self, batch: usize, p: usize) -> usize {
        let windowed = match self.window {
            Some(w) => (p + 1).saturating_sub(w),
            None => 0,
        };
        windowed.max(self.pad.get(batch).copied().unwrap_or(0))
    }
}

/// Rotates `x` of shape `[batch, seq, heads, head_dim]` by the tables' angles (one row per position
/// of `seq`), HF `rotate_half` convention.
pub fn rotary<B: Backend>(x: Tensor<B, 4>, rope: &crate::rope::RopeTables<B>) -> Tensor<B, 4> {
    #[cfg(feature = "cpu")]
    if fast_paths()
        && let Some(out) = cpu::rotary(&x, rope)
    {
        return out;
    }
    generic::rotary(x, rope)
}

/// Scaled dot-product attention over `q: [batch, q_len, heads, head_dim]` and
/// `k, v: [batch, kv_len, kv_heads, head_dim]` (`heads` a multiple of `kv_heads`: grouped-query
/// attention), returning `[batch, q_len, heads, head_dim]`.
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: CausalMask<'_>,
) -> Tensor<B, 4> {
    #[cfg(feature = "cpu")]
    if fast_paths()
        && let Some(out) = cpu::attention(&q, &k, &v, mask)
    {
        return out;
    }
    generic::attention(q, k, v, mask)
}

/// RMS normalization of `x: [batch, seq, hidden]` in f32, rounded to the dtype, times `weight`, as
/// transformers computes it; `None` where no fused path applies (the caller composes burn ops).
pub fn rms_norm<B: Backend>(
    x: &Tensor<B, 3>,
    weight: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, 3>> {
    #[cfg(feature = "cpu")]
    if fast_paths() {
        return fused::rms_norm(x, weight, eps);
    }
    let _ = (x, weight, eps);
    None
}

/// `silu(gate) * up` in one pass where a fused path applies.
pub fn swiglu<B: Backend>(gate: &Tensor<B, 3>, up: &Tensor<B, 3>) -> Option<Tensor<B, 3>> {
    #[cfg(feature = "cpu")]
    if fast_paths() {
        return fused::swiglu(gate, up);
    }
    let _ = (gate, up);
    None
}

/// `y + x · a_t · b_t` (a LoRA adapter's low-rank path; `a_t: [in, r]`, `b_t: [r, out]`, f32,
/// row-major) in one fused pass where a fused path applies.
pub fn lora_add<B: Backend>(
    x: &Tensor<B, 2>,
    y: &Tensor<B, 2>,
    a_t: &[f32],
    b_t: &[f32],
    rank: usize,
) -> Option<Tensor<B, 2>> {
    #[cfg(feature = "cpu")]
    if fast_paths() {
        return fused::lora_add(x, y, a_t, b_t, rank);
    }
    let _ = (x, y, a_t, b_t, rank);
    None
}

/// `log_softmax(logits)[row, targets[row]]` (f32) in one pass over `logits: [rows, vocab]` where a
/// fused path applies.
pub fn log_softmax_gather<B: Backend>(logits: &Tensor<B, 2>, targets: &[i32]) -> Option<Vec<f32>> {
    #[cfg(feature = "cpu")]
    if fast_paths() {
        return fused::log_softmax_gather(logits, targets);
    }
    let _ = (logits, targets);
    None
}

/// A weight matrix `[out, in]` (the checkpoint layout) ready for [`linear`]: a burn tensor, or on
/// the CPU in bf16 a copy packed for the matrix units ([`bf16::PackedBf16`]), in which case the
/// tensor is dropped (a 7B model would not fit twice) and rebuilt only if a composed path asks.
#[derive(Debug, Clone)]
pub struct Weight<B: Backend> {
    repr: Repr<B>,
    device: B::Device,
}

#[derive(Debug, Clone)]
enum Repr<B: Backend> {
    Tensor(Tensor<B, 2>),
    #[cfg(feature = "cpu")]
    Packed(std::sync::Arc<bf16::PackedBf16>),
}

impl<B: Backend> Weight<B> {
    /// Wraps `tensor`, packing it when the CPU's bf16 products apply (flex, bf16).
    pub fn new(tensor: Tensor<B, 2>) -> Self {
        let device = tensor.device();
        #[cfg(feature = "cpu")]
        if let Some(packed) = cpu::pack_bf16(&tensor) {
            return Self {
                repr: Repr::Packed(std::sync::Arc::new(packed)),
                device,
            };
        }
        Self {
            repr: Repr::Tensor(tensor),
            device,
        }
    }

    /// Loads weight `name` of `w` (`[out, in]`): packed straight from the checkpoint where the
    /// CPU's bf16 products apply, else as a tensor.
    pub fn load(
        w: &crate::weights::Weights<B>,
        name: &str,
        dims: [usize; 2],
    ) -> crate::error::Result<Self> {
        #[cfg(feature = "cpu")]
        if packs::<B>(w.dtype()) {
            return Ok(Self {
                repr: Repr::Packed(std::sync::Arc::new(w.get_packed(name, dims)?)),
                device: w.device().clone(),
            });
        }
        Ok(Self::new(w.get(name, dims)?))
    }

    /// `[out, in]`.
    pub fn dims(&self) -> [usize; 2] {
        match &self.repr {
            Repr::Tensor(t) => t.dims(),
            #[cfg(feature = "cpu")]
            Repr::Packed(p) => p.dims(),
        }
    }

    /// The plain matrix (unpacked anew when only the packed copy is held).
    pub fn tensor(&self) -> Tensor<B, 2> {
        match &self.repr {
            Repr::Tensor(t) => t.clone(),
            #[cfg(feature = "cpu")]
            Repr::Packed(p) => Tensor::from_data(
                burn::tensor::TensorData::new(p.unpack(), p.dims()),
                &self.device,
            ),
        }
    }

    #[cfg(feature = "cpu")]
    fn packed(&self) -> Option<&bf16::PackedBf16> {
        match &self.repr {
            Repr::Packed(p) => Some(p),
            Repr::Tensor(_) => None,
        }
    }

    /// Which product this weight takes, for `cdr info --load` and `-v` logs.
    pub fn kernel(&self) -> String {
        match &self.repr {
            Repr::Tensor(_) => "burn matmul".into(),
            #[cfg(feature = "cpu")]
            Repr::Packed(_) => format!("bf16 packed, {}", bf16::isa()),
        }
    }
}

/// The dtype a model computes in when none is asked for: bf16 for a GGUF file on a CPU with bf16
/// matrix units (AMX: there bf16 products run 4-7x faster than f32; without them bf16 is slower
/// than f32, so f32), f32 otherwise (the exact path).
pub fn default_dtype(gguf: bool, cpu: bool) -> crate::weights::ComputeDtype {
    #[cfg(feature = "cpu")]
    if gguf && cpu && bf16::isa() == bf16::Isa::Amx {
        return crate::weights::ComputeDtype::BF16;
    }
    let _ = (gguf, cpu);
    crate::weights::ComputeDtype::F32
}

/// Whether weights of backend `B` in `dtype` are packed for the CPU's bf16 products.
#[cfg(feature = "cpu")]
fn packs<B: Backend>(dtype: crate::weights::ComputeDtype) -> bool {
    use std::any::TypeId;
    fast_paths()
        && dtype == crate::weights::ComputeDtype::BF16
        && TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<burn_flex::FlexTensor>()
}

/// `x @ weight^T` for `x: [rows, in]` and `weight: [out, in]` (the checkpoint layout).
pub fn linear<B: Backend>(x: Tensor<B, 2>, weight: &Weight<B>) -> Tensor<B, 2> {
    #[cfg(feature = "cpu")]
    if fast_paths() {
        if let Some(packed) = weight.packed()
            && let Some(out) = cpu::linear_packed(&x, packed)
        {
            return out;
        }
        if let Repr::Tensor(w) = &weight.repr {
            let out = if row_stable() {
                row_stable_linear(&x, w)
            } else {
                cpu::linear(&x, w)
            };
            if let Some(out) = out {
                return out;
            }
        }
    }
    matmul_transposed(x, &weight.tensor())
}

/// `x @ weight^T` for a vocabulary projection: packed bf16 products as in [`linear`] (their sums do
/// not depend on the rows batched together), else burn's matmul, except in decoding steps, which
/// take the row-stable product.
pub fn vocab_linear<B: Backend>(x: Tensor<B, 2>, weight: &Weight<B>) -> Tensor<B, 2> {
    #[cfg(feature = "cpu")]
    if fast_paths()
        && let Some(packed) = weight.packed()
        && let Some(out) = cpu::linear_packed(&x, packed)
    {
        return out;
    }
    // Scoring keeps matmul: its vocabulary chunks vary in rows, and the few-rows gemm path
    // would round a chunk differently from a large one (cached log-probs must not depend on
    // their batch). Decoding steps take the row-stable product.
    if row_stable() {
        linear(x, weight)
    } else {
        matmul_transposed(x, &weight.tensor())
    }
}

/// `x @ weight^T` with burn's matmul. burn 0.21's fusion (wgpu, CUDA) reads a one-row product
/// wrongly once later ops fuse onto it: a Qwen2 decoding step's q/k/v bias (greedy tokens off
/// after 3 of 72), or the f32 cast of a half-precision vocabulary projection (4 nats off). A doubled
/// row is read right, so one row is computed as two.
pub fn matmul_transposed<B: Backend>(x: Tensor<B, 2>, weight: &Tensor<B, 2>) -> Tensor<B, 2> {
    if x.dims()[0] == 1 {
        return Tensor::cat(vec![x.clone(), x], 0)
            .matmul(weight.clone().transpose())
            .narrow(0, 0, 1);
    }
    x.matmul(weight.clone().transpose())
}

/// The row-stable product for any number of rows: groups of at most `ROW_GROUP` rows, each row's
/// result independent of its group.
#[cfg(feature = "cpu")]
fn row_stable_linear<B: Backend>(x: &Tensor<B, 2>, weight: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    const ROW_GROUP: usize = 64;
    let rows = x.dims()[0];
    if rows <= ROW_GROUP {
        return cpu::linear_row_stable(x, weight);
    }
    let parts = (0..rows)
        .step_by(ROW_GROUP)
        .map(|at| {
            cpu::linear_row_stable(&x.clone().narrow(0, at, ROW_GROUP.min(rows - at)), weight)
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Tensor::cat(parts, 0))
}

thread_local! {
    static ROW_STABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with products computed so that each row's result does not depend on the other rows:
/// decoding steps, where a sequence must get the same tokens alone or batched. Applies to this
/// thread's calls, in f32 on the CPU (`cpu::linear_row_stable`); other dtypes and backends keep
/// their matmul, whose rounding may depend on the batch.
pub fn row_stable_scope<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the previous setting however `f` ends (a caught panic included).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ROW_STABLE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(ROW_STABLE.with(|c| c.replace(true)));
    f()
}

/// Whether [`row_stable_scope`] is active on this thread.
pub fn row_stable() -> bool {
    ROW_STABLE.with(|c| c.get())
}

#[cfg(test)]
mod tests;
