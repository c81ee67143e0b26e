//! Rotary position embeddings in the Hugging Face layout.
//!
//! HF Llama-family checkpoints rotate the first half of each head against the second half
//! (`rotate_half`), not interleaved pairs as `burn::nn::RotaryEncoding` does. Frequencies are derived
//! in f32 exactly as transformers does, so the tables match its values bit for bit before the
//! cos/sin, which run in f64 on the host.

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};

use crate::config::{Config, RopeScaling};

/// The inverse frequencies, one per rotated pair (`head_dim / 2` values).
pub fn inverse_frequencies(config: &Config) -> Vec<f32> {
    let dim = config.head_dim();
    let base = config.rope_theta();
    let inv: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| {
            // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), all in f32.
            let exponent = i as f32 / dim as f32;
            1.0 / (base as f32).powf(exponent)
        })
        .collect();
    match config.rope_scaling_kind() {
        Ok(RopeScaling::Linear { factor }) => inv.iter().map(|f| f / factor as f32).collect(),
        Ok(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            let (factor, low, high) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
            );
            let old_len = original_max_position_embeddings as f32;
            let low_freq_wavelen = old_len / low;
            let high_freq_wavelen = old_len / high;
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen < high_freq_wavelen {
                        f
                    } else if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        let smooth = (old_len / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
        _ => inv,
    }
}

/// cos/sin tables for a run of positions, halves duplicated as in HF: `[seq, head_dim]` values on
/// the host (for kernels that read them directly) and `[1, seq, 1, head_dim]` tensors in the compute
/// dtype (for the composed path, broadcasting over batch and heads).
///
/// Built per forward pass for the positions it needs rather than once for
/// `max_position_embeddings`, which reaches 128k for Llama 3 and would cost more memory than a
/// small model's weights.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    host_cos: Vec<f32>,
    host_sin: Vec<f32>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
}

impl<B: Backend> RopeTables<B> {
    /// Tables for positions `start..start + len`, in the given float dtype.
    pub fn new(
        inv_freq: &[f32],
        start: usize,
        len: usize,
        dtype: DType,
        device: &B::Device,
    ) -> Self {
        let dim = inv_freq.len() * 2;
        let mut cos = Vec::with_capacity(len * dim);
        let mut sin = Vec::with_capacity(len * dim);
        for p in start..start + len {
            // The angle is rounded to f32 as transformers' f32 matmul does; cos/sin are then exact.
            let angles: Vec<f64> = inv_freq.iter().map(|&f| (p as f32 * f) as f64).collect();
            for _ in 0..2 {
                cos.extend(angles.iter().map(|a| a.cos() as f32));
                sin.extend(angles.iter().map(|a| a.sin() as f32));
            }
        }
        let shape = [1, len, 1, dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos.clone(), shape), (device, dtype)),
            sin: Tensor::from_data(TensorData::new(sin.clone(), shape), (device, dtype)),
            host_cos: cos,
            host_sin: sin,
        }
    }

    /// `[1, seq, 1, head_dim]` cosines in the compute dtype.
    pub fn cos(&self) -> Tensor<B, 4> {
        self.cos.clone()
    }

    /// `[1, seq, 1, head_dim]` sines in the compute dtype.
    pub fn sin(&self) -> Tensor<B, 4> {
        self.sin.clone()
    }

    /// `(cos, sin)` as f32, `[seq, head_dim]` row-major.
    pub fn host_tables(&self) -> (&[f32], &[f32]) {
        (&self.host_cos, &self.host_sin)
    }

    /// Rotates `x` of shape `[batch, seq, heads, head_dim]`.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::rotary(x, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn llama3_keeps_high_and_scales_low_frequencies() {
        let json = r#"{"model_type": "llama", "vocab_size": 4, "hidden_size": 64,
            "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 32}}"#;
        let scaled = Config::from_json(json, Path::new("c.json")).unwrap();
        let plain: Config =
            Config::from_json(&json.replace("llama3", "default"), Path::new("c.json")).unwrap();
        let (a, b) = (inverse_frequencies(&scaled), inverse_frequencies(&plain));
        assert_eq!(a[0], b[0], "highest frequency is kept");
        let last = a.len() - 1;
        assert!(
            (a[last] * 8.0 - b[last]).abs() <= 1e-6 * b[last],
            "lowest is divided by factor"
        );
    }
}
