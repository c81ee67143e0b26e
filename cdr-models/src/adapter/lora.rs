//! The low-rank path of one adapted module: `y + scaling · (x Aᵀ) Bᵀ`.

use burn::tensor::{DType, Int, Tensor, backend::Backend};

/// One module's LoRA factors in f32, kept transposed for `x · Aᵀ · Bᵀ`.
#[derive(Debug, Clone)]
pub struct LoraDelta<B: Backend> {
    /// `Aᵀ`: `[in, r]`.
    a_t: Tensor<B, 2>,
    /// `scaling · Bᵀ`: `[r, out]` (the scaling folded in: one pass less over each output).
    b_t: Tensor<B, 2>,
    /// The same two matrices in host memory, for the CPU's fused kernel.
    host: Option<(Vec<f32>, Vec<f32>)>,
    rank: usize,
}

impl<B: Backend> LoraDelta<B> {
    /// From PEFT's `A: [r, in]` and `B: [out, r]` (f32).
    pub fn new(a: Tensor<B, 2>, b: Tensor<B, 2>, scaling: f64) -> Self {
        // Stored row-major as used: a transposed view sends burn-flex's matmul down a strided path
        // on every call.
        let contiguous = |t: Tensor<B, 2>| {
            let device = t.device();
            Tensor::from_data(t.into_data(), &device)
        };
        let rank = a.dims()[0];
        let (a_t, b_t) = (
            contiguous(a.transpose()),
            contiguous(b.transpose() * scaling),
        );
        let host = |t: &Tensor<B, 2>| t.clone().into_data().to_vec::<f32>().ok();
        let host = host(&a_t).zip(host(&b_t));
        Self {
            a_t,
            b_t,
            host,
            rank,
        }
    }

    /// Checks the factors fit a module of `in_features → out_features`.
    pub fn check_dims(&self, in_features: usize, out_features: usize) -> Result<(), String> {
        let [a_in, r] = self.a_t.dims();
        let [_, b_out] = self.b_t.dims();
        if a_in != in_features || b_out != out_features {
            return Err(format!(
                "LoRA factors A [{r}, {a_in}] and B [{b_out}, {r}] do not fit a module of \
                 {in_features} inputs and {out_features} outputs"
            ));
        }
        Ok(())
    }

    /// `y + scaling · (x Aᵀ) Bᵀ` for `x: [rows, in]`, `y: [rows, out]`. The low-rank product runs
    /// in f32, as PEFT runs it with its f32 adapter weights.
    pub fn add(&self, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Some((a, b)) = &self.host
            && let Some(out) = crate::kernels::lora_add(&x, &y, a, b, self.rank)
        {
            return out;
        }
        let down = to_f32(x).matmul(self.a_t.clone());
        self.add_down(down, y)
    }

    /// The embedding form: `y + scaling · Aᵀ[ids] Bᵀ`, `ids: [rows]`, `y: [rows, hidden]`
    /// (the linear form on one-hot inputs).
    pub fn add_embedding(&self, ids: Tensor<B, 1, Int>, y: Tensor<B, 2>) -> Tensor<B, 2> {
        let down = self.a_t.clone().select(0, ids);
        self.add_down(down, y)
    }

    fn add_down(&self, down: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
        let delta = down.matmul(self.b_t.clone());
        let dtype = y.dtype();
        if dtype == DType::F32 {
            y + delta
        } else {
            // PEFT adds in f32 and rounds the sum; rounding the delta first and adding in the
            // compute dtype differs by at most one rounding of the sum, and takes two passes over
            // the `[rows, out]` output instead of four (measured 1.8x slower strong passes).
            y + delta.cast(dtype)
        }
    }
}

fn to_f32<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(DType::F32)
    }
}
