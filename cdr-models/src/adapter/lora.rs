//! The low-rank path of one adapted module: `y + scaling · (x Aᵀ) Bᵀ`.

use burn::tensor::{DType, Int, Tensor, backend::Backend};

/// One module's LoRA factors in f32, kept transposed for `x · Aᵀ · Bᵀ`.
#[derive(Debug, Clone)]
pub struct LoraDelta<B: Backend> {
    /// `Aᵀ`: `[in, r]`.
    a_t: Tensor<B, 2>,
    /// `Bᵀ`: `[r, out]`.
    b_t: Tensor<B, 2>,
    scaling: f32,
}

impl<B: Backend> LoraDelta<B> {
    /// From PEFT's `A: [r, in]` and `B: [out, r]` (f32).
    pub fn new(a: Tensor<B, 2>, b: Tensor<B, 2>, scaling: f64) -> Self {
        Self {
            a_t: a.transpose(),
            b_t: b.transpose(),
            scaling: scaling as f32,
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

    /// `y + scaling · (x Aᵀ) Bᵀ` for `x: [rows, in]`, `y: [rows, out]`. The low-rank product and
    /// the sum run in f32 and round once to `y`'s dtype, as PEFT does with its f32 adapter weights.
    pub fn add(&self, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
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
        let delta = down.matmul(self.b_t.clone()) * self.scaling;
        let dtype = y.dtype();
        if dtype == DType::F32 {
            y + delta
        } else {
            (y.cast(DType::F32) + delta).cast(dtype)
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
