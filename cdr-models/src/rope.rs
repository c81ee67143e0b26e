//! Rotary position embeddings in the Hugging Face layout.
//!
//! HF Llama-family checkpoints rotate the first half of each head against the second half
//! (`rotate_half`), not interleaved pairs as `burn::nn::RotaryEncoding` does. Frequencies are derived
//! in f32 step by step as transformers does, so they match its values (bit for bit, or one ulp
//! where its pow kernel rounds differently) before the cos/sin, which run in f64 on the host.

use std::borrow::Cow;

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};

use crate::config::{Config, RopeScaling};
use crate::error::{ModelError, Result};

/// A model's rotary embedding: its frequencies (which for `dynamic` and `longrope` depend on how
/// many positions a forward reaches) and the cos/sin multiplier of `yarn` and `longrope`.
///
/// transformers picks the frequencies per forward from `max(position_ids) + 1`; here that is the
/// end of the positions a forward covers, `start + len` (see [`Rope::tables`]). Its dynamic-NTK
/// module keeps the largest frequencies it has grown to until a forward falls back within
/// `max_position_embeddings`; this one is stateless, i.e. it computes what a freshly loaded
/// transformers model does for each forward.
#[derive(Debug, Clone)]
pub struct Rope {
    scaling: RopeScaling,
    dim: usize,
    base: f64,
    /// The frequencies of a forward within the original context (every one, for static types).
    inv_freq: Vec<f32>,
    /// longrope: the frequencies of a forward past `original_max_position_embeddings`.
    long_inv_freq: Option<Vec<f32>>,
    attention_scaling: f32,
}

impl Rope {
    /// Errors when the config's rope keys do not validate ([`Config::rope_scaling_kind`]).
    pub fn new(config: &Config) -> Result<Self> {
        let scaling = config
            .rope_scaling_kind()
            .map_err(|message| ModelError::Config {
                path: "config.json".into(),
                message,
            })?;
        let dim = config.head_dim();
        let base = config.rope_theta();
        let plain = default_frequencies(base as f32, dim);
        let (inv_freq, long_inv_freq, attention_scaling) = match &scaling {
            RopeScaling::None | RopeScaling::Dynamic { .. } => (plain, None, 1.0),
            RopeScaling::Linear { factor } => (
                plain.iter().map(|f| f / *factor as f32).collect(),
                None,
                1.0,
            ),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => (
                llama3_frequencies(
                    &plain,
                    *factor as f32,
                    *low_freq_factor as f32,
                    *high_freq_factor as f32,
                    *original_max_position_embeddings as f32,
                ),
                None,
                1.0,
            ),
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                attention_factor,
                beta_fast,
                beta_slow,
                truncate,
            } => {
                let range = yarn_correction_range(
                    *beta_fast,
                    *beta_slow,
                    dim,
                    base,
                    *original_max_position_embeddings,
                    *truncate,
                );
                (
                    yarn_frequencies(base as f32, dim, *factor as f32, range),
                    None,
                    *attention_factor as f32,
                )
            }
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                attention_factor,
                ..
            } => (
                divided_frequencies(base as f32, dim, short_factor),
                Some(divided_frequencies(base as f32, dim, long_factor)),
                *attention_factor as f32,
            ),
        };
        Ok(Self {
            scaling,
            dim,
            base,
            inv_freq,
            long_inv_freq,
            attention_scaling,
        })
    }

    pub fn scaling(&self) -> &RopeScaling {
        &self.scaling
    }

    /// The multiplier of cos and sin (1 except for yarn and longrope).
    pub fn attention_scaling(&self) -> f32 {
        self.attention_scaling
    }

    /// The inverse frequencies, one per rotated pair (`head_dim / 2` values), for a forward whose
    /// positions end at `seq_len` (exclusive).
    pub fn frequencies(&self, seq_len: usize) -> Cow<'_, [f32]> {
        match &self.scaling {
            RopeScaling::Dynamic {
                factor,
                max_position_embeddings,
            } if seq_len > *max_position_embeddings => Cow::Owned(dynamic_frequencies(
                self.base as f32,
                self.dim,
                *factor,
                seq_len,
                *max_position_embeddings,
            )),
            RopeScaling::LongRope {
                original_max_position_embeddings,
                ..
            } if seq_len > *original_max_position_embeddings => match &self.long_inv_freq {
                Some(long) => Cow::Borrowed(long.as_slice()),
                None => Cow::Borrowed(self.inv_freq.as_slice()),
            },
            _ => Cow::Borrowed(self.inv_freq.as_slice()),
        }
    }

    /// Whether forwards reaching `a` and `b` positions use the same frequencies. Always for static
    /// types; for dynamic NTK when both stay within `max_position_embeddings` (or are equal); for
    /// longrope when both fall on the same side of the original context.
    pub fn same_frequencies(&self, a: usize, b: usize) -> bool {
        match &self.scaling {
            RopeScaling::Dynamic {
                max_position_embeddings: max,
                ..
            } => a == b || (a <= *max && b <= *max),
            RopeScaling::LongRope {
                original_max_position_embeddings: max,
                ..
            } => (a > *max) == (b > *max),
            _ => true,
        }
    }

    /// Tables for positions `start..start + len`, with the frequencies of a forward that reaches
    /// position `start + len - 1`: a whole padded batch, or a decoding step after `start` cached
    /// positions (whose keys keep the rotation they were cached with, as in transformers).
    pub fn tables<B: Backend>(
        &self,
        start: usize,
        len: usize,
        dtype: DType,
        device: &B::Device,
    ) -> RopeTables<B> {
        let freqs = self.frequencies(start + len);
        RopeTables::scaled(&freqs, self.attention_scaling, start, len, dtype, device)
    }

    /// Tables for `len` positions per batch row, row `r` starting at `starts[r]` (rows of
    /// different lengths decoding together); each row gets the frequencies it would alone.
    pub fn tables_rows<B: Backend>(
        &self,
        starts: &[usize],
        len: usize,
        dtype: DType,
        device: &B::Device,
    ) -> RopeTables<B> {
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for &start in starts {
            let freqs = self.frequencies(start + len);
            let (c, s) = host_tables(&freqs, self.attention_scaling, start, len);
            cos.extend(c);
            sin.extend(s);
        }
        RopeTables::from_host(cos, sin, starts.len(), len, self.dim, dtype, device)
    }
}

/// cos/sin for positions `start..start + len`, halves duplicated, scaled by `attention_scaling`
/// after rounding to f32 (as transformers multiplies its f32 tables).
fn host_tables(
    inv_freq: &[f32],
    attention_scaling: f32,
    start: usize,
    len: usize,
) -> (Vec<f32>, Vec<f32>) {
    let dim = inv_freq.len() * 2;
    let mut cos = Vec::with_capacity(len * dim);
    let mut sin = Vec::with_capacity(len * dim);
    for p in start..start + len {
        // The angle is rounded to f32 as transformers' f32 matmul does; cos/sin are then exact.
        let angles: Vec<f64> = inv_freq.iter().map(|&f| (p as f32 * f) as f64).collect();
        for _ in 0..2 {
            cos.extend(angles.iter().map(|a| a.cos() as f32 * attention_scaling));
            sin.extend(angles.iter().map(|a| a.sin() as f32 * attention_scaling));
        }
    }
    (cos, sin)
}

/// `1 / base^(2i / dim)` in f32 as transformers computes it (f32 exponent, f32 power).
fn default_frequencies(base: f32, dim: usize) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect()
}

fn llama3_frequencies(plain: &[f32], factor: f32, low: f32, high: f32, old_len: f32) -> Vec<f32> {
    let low_freq_wavelen = old_len / low;
    let high_freq_wavelen = old_len / high;
    plain
        .iter()
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

/// Dynamic NTK: the base grows to `base * (factor * len / max - (factor - 1))^(dim / (dim - 2))`.
/// transformers evaluates this on f32 tensors (the length is a tensor), so it is done in f32 here
/// too, step by step; only `factor - 1` and the exponent are formed in f64 first, as Python does.
fn dynamic_frequencies(base: f32, dim: usize, factor: f64, seq_len: usize, max: usize) -> Vec<f32> {
    let len = seq_len.max(max) as f32;
    let ratio = factor as f32 * len / max as f32 - (factor - 1.0) as f32;
    let exponent = dim as f64 / (dim as f64 - 2.0);
    let grown = base * ratio.powf(exponent as f32);
    default_frequencies(grown, dim)
}

/// The dimensions (as fractional pair indices) between which yarn ramps from extrapolation to
/// interpolation: where a frequency turns `beta_fast` and `beta_slow` times over the original
/// context. Plain f64, as in transformers.
fn yarn_correction_range(
    beta_fast: f64,
    beta_slow: f64,
    dim: usize,
    base: f64,
    original_max: usize,
    truncate: bool,
) -> (f64, f64) {
    let correction_dim = |rotations: f64| {
        (dim as f64 * (original_max as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln())
            / (2.0 * base.ln())
    };
    let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    (low.max(0.0), high.min(dim as f64 - 1.0))
}

fn yarn_frequencies(base: f32, dim: usize, factor: f32, (low, mut high): (f64, f64)) -> Vec<f32> {
    if low == high {
        // transformers widens an empty ramp so that it does not divide by zero.
        high += 0.001;
    }
    let span = (high - low) as f32;
    (0..dim / 2)
        .map(|i| {
            let pos_freq = base.powf((2 * i) as f32 / dim as f32);
            let extrapolation = 1.0 / pos_freq;
            let interpolation = 1.0 / (factor * pos_freq);
            let ramp = ((i as f32 - low as f32) / span).clamp(0.0, 1.0);
            let keep = 1.0 - ramp;
            interpolation * (1.0 - keep) + extrapolation * keep
        })
        .collect()
}

/// LongRoPE: `1 / (factor_i * base^(2i / dim))`, the factors rounded to f32 first.
fn divided_frequencies(base: f32, dim: usize, factors: &[f64]) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .zip(factors)
        .map(|(i, &f)| 1.0 / (f as f32 * base.powf(i as f32 / dim as f32)))
        .collect()
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
    /// 1 (every batch row shares the positions) or the batch size.
    rows: usize,
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
        Self::scaled(inv_freq, 1.0, start, len, dtype, device)
    }

    /// [`Self::new`] with cos and sin multiplied by `attention_scaling` (after rounding to f32, as
    /// transformers multiplies its f32 tables).
    pub fn scaled(
        inv_freq: &[f32],
        attention_scaling: f32,
        start: usize,
        len: usize,
        dtype: DType,
        device: &B::Device,
    ) -> Self {
        let (cos, sin) = host_tables(inv_freq, attention_scaling, start, len);
        Self::from_host(cos, sin, 1, len, inv_freq.len() * 2, dtype, device)
    }

    fn from_host(
        cos: Vec<f32>,
        sin: Vec<f32>,
        rows: usize,
        len: usize,
        dim: usize,
        dtype: DType,
        device: &B::Device,
    ) -> Self {
        let shape = [rows, len, 1, dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos.clone(), shape), (device, dtype)),
            sin: Tensor::from_data(TensorData::new(sin.clone(), shape), (device, dtype)),
            host_cos: cos,
            host_sin: sin,
            rows,
        }
    }

    /// `[rows, seq, 1, head_dim]` cosines in the compute dtype (`rows`: 1 or the batch).
    pub fn cos(&self) -> Tensor<B, 4> {
        self.cos.clone()
    }

    /// `[rows, seq, 1, head_dim]` sines in the compute dtype.
    pub fn sin(&self) -> Tensor<B, 4> {
        self.sin.clone()
    }

    /// `(cos, sin)` as f32, `[rows, seq, head_dim]` row-major.
    pub fn host_tables(&self) -> (&[f32], &[f32]) {
        (&self.host_cos, &self.host_sin)
    }

    /// 1 when every batch row shares the positions, else the batch size.
    pub fn rows(&self) -> usize {
        self.rows
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
        let (a, b) = (
            Rope::new(&scaled).unwrap().frequencies(1).into_owned(),
            Rope::new(&plain).unwrap().frequencies(1).into_owned(),
        );
        assert_eq!(a[0], b[0], "highest frequency is kept");
        let last = a.len() - 1;
        assert!(
            (a[last] * 8.0 - b[last]).abs() <= 1e-6 * b[last],
            "lowest is divided by factor"
        );
    }
}
