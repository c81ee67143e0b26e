//! The model configuration, read from a Hugging Face `config.json`.

use std::path::Path;

use serde::Deserialize;

use crate::error::{ModelError, Result};

/// The decoder families cdr runs. They share one implementation ([`crate::llama`]); the variant only
/// switches on what differs (Mistral: a sliding attention window; Qwen2: q/k/v biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 1-3.x.
    Llama,
    /// Mistral (a sliding attention window).
    Mistral,
    /// Qwen2 (q/k/v projection biases, windows per layer).
    Qwen2,
}

impl Architecture {
    fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "llama" => Some(Self::Llama),
            "mistral" => Some(Self::Mistral),
            "qwen2" => Some(Self::Qwen2),
            _ => None,
        }
    }
}

/// `eos_token_id` is an int in older configs and a list in newer ones (Llama 3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(u32),
    /// Several ids (any ends a sequence).
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// Rotary embedding parameters: transformers 5 nests them under `rope_parameters`, older configs put
/// `rope_theta` at the top level and scaling under `rope_scaling`. Both end up here.
///
/// Every key is optional here; [`Config::rope_scaling_kind`] checks which ones a rope type needs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
// The fields are the keys of transformers' rope configuration, named as there and documented by
// it (`modeling_rope_utils`); the ones whose handling here needs a word have one.
#[allow(missing_docs)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_type: Option<String>,
    /// The pre-transformers-4.43 name of `rope_type`; configs saved in between carry both keys,
    /// so it is a field of its own rather than a serde alias (which rejects the pair as a duplicate).
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// yarn and longrope: the cos/sin multiplier; derived from `factor` when absent.
    #[serde(default)]
    pub attention_factor: Option<f64>,
    #[serde(default)]
    pub beta_fast: Option<f64>,
    #[serde(default)]
    pub beta_slow: Option<f64>,
    #[serde(default)]
    pub mscale: Option<f64>,
    #[serde(default)]
    pub mscale_all_dim: Option<f64>,
    /// yarn: round the correction range outwards to whole dimensions (transformers' default: true).
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub short_factor: Option<Vec<f64>>,
    #[serde(default)]
    pub long_factor: Option<Vec<f64>>,
    /// Only a full rotation (1.0) is supported; kept to reject the others instead of ignoring them.
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
}

impl RopeParameters {
    /// `rope_type`, else the legacy `type`, else `default` (transformers' order).
    pub fn kind(&self) -> &str {
        self.rope_type
            .as_deref()
            .or(self.legacy_type.as_deref())
            .unwrap_or("default")
    }
}

/// The rope variant after validation, with transformers' defaults filled in.
#[derive(Debug, Clone, PartialEq)]
// Variant fields carry the [`RopeParameters`] key of the same name, defaults filled in.
#[allow(missing_docs)]
pub enum RopeScaling {
    /// The plain rotary embedding.
    None,
    /// Position interpolation: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    /// Dynamic NTK: a forward whose positions reach past `max_position_embeddings` gets a larger
    /// base, recomputed for the length it reaches.
    Dynamic {
        factor: f64,
        max_position_embeddings: usize,
    },
    /// YaRN: interpolated low frequencies, extrapolated high ones, a linear ramp between the
    /// correction dimensions, and cos/sin multiplied by `attention_factor`.
    Yarn {
        factor: f64,
        original_max_position_embeddings: usize,
        attention_factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        truncate: bool,
    },
    /// LongRoPE: every frequency divided by its own factor, `short_factor` for forwards within
    /// `original_max_position_embeddings` positions and `long_factor` beyond; cos/sin multiplied by
    /// `attention_factor`.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max_position_embeddings: usize,
        attention_factor: f64,
    },
}

impl RopeScaling {
    /// Whether the frequencies depend on how many positions a forward reaches, so that a sequence
    /// can score differently alone, padded into a longer batch, or continued from a shorter cache.
    pub fn depends_on_length(&self) -> bool {
        matches!(self, Self::Dynamic { .. } | Self::LongRope { .. })
    }
}

/// A Llama-family model configuration (`config.json`).
///
/// Field names and defaults follow transformers, so any config it writes deserializes as is.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `llama`, `mistral` or `qwen2`.
    pub model_type: String,
    /// Tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads per layer.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); `None`: as many as query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of a head; `None`: `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon; `None`: 1e-6.
    #[serde(default)]
    pub rms_norm_eps: Option<f64>,
    /// Rotary base frequency (older configs); see [`Config::rope_theta`].
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Rotary parameters in transformers' newer nested form.
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// Rotary scaling (linear, dynamic, yarn, longrope, llama3) in the older form.
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    /// The context the model was trained for (some rope scalings depend on it).
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Whether the vocabulary projection reuses the embedding; see [`Config::tie_word_embeddings`].
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// `None`: key absent; `Some(None)`: explicitly null. The difference matters for Mistral, whose
    /// transformers default is a 4096-token window.
    #[serde(default, deserialize_with = "present")]
    pub sliding_window: Option<Option<usize>>,
    /// Qwen2 only applies `sliding_window` when this is set.
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    /// Qwen2: per layer `full_attention` or `sliding_attention` (transformers 5 writes it).
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Qwen2 configs without `layer_types`: layers from this index on slide (default 28).
    #[serde(default)]
    pub max_window_layers: Option<usize>,
    /// The MLP activation; only `silu` (`swish`) is supported.
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Whether the attention projections have biases (Qwen2's q/k/v have them regardless).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Whether the MLP projections have biases.
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    /// The beginning-of-sequence token id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// The end-of-sequence token id or ids; see [`Config::eos_token_ids`].
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// The padding token id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// transformers < 4.56 writes `torch_dtype`, later versions `dtype`.
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// The checkpoint's storage dtype as the config states it (`dtype` or `torch_dtype`).
    #[serde(default)]
    pub dtype: Option<String>,
}

/// Tells a key that is present (even as `null`) from one that is absent.
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses and validates a config; `path` is only used in error messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let config: Self = serde_json::from_str(text).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        if Architecture::from_model_type(&self.model_type).is_none() {
            return Err(ModelError::UnsupportedModelType {
                model_type: self.model_type.clone(),
                path: path.to_path_buf(),
            });
        }
        for (key, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_kv_heads()),
            ("head_dim", self.head_dim()),
        ] {
            if value == 0 {
                return Err(bad(format!("`{key}` must be positive")));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(bad(format!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.num_kv_heads()
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(bad(format!(
                "`head_dim` ({}) must be even for rotary embeddings",
                self.head_dim()
            )));
        }
        let act = self.hidden_act.as_deref().unwrap_or("silu");
        if act != "silu" && act != "swish" {
            return Err(bad(format!(
                "`hidden_act` `{act}` is not supported (only silu)"
            )));
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(bad(format!(
                    "`layer_types` has {} entries for {} layers",
                    types.len(),
                    self.num_hidden_layers
                )));
            }
            if let Some(t) = types
                .iter()
                .find(|t| *t != "full_attention" && *t != "sliding_attention")
            {
                return Err(bad(format!(
                    "`layer_types` entry `{t}` is not supported (full_attention, sliding_attention)"
                )));
            }
        }
        if self.sliding_window == Some(Some(0)) {
            return Err(bad("`sliding_window` must be positive or null".into()));
        }
        self.rope_scaling_kind().map_err(bad)?;
        Ok(())
    }

    /// Which of the supported families the config describes.
    pub fn architecture(&self) -> Architecture {
        Architecture::from_model_type(&self.model_type).unwrap_or(Architecture::Llama)
    }

    /// Weights in the model (embeddings, every layer's projections and norms, the vocabulary
    /// projection unless tied): what loading it costs, times the dtype's size.
    pub fn parameter_count(&self) -> u64 {
        let (h, hd) = (self.hidden_size as u64, self.head_dim() as u64);
        let (nh, nkv) = (self.num_attention_heads as u64, self.num_kv_heads() as u64);
        let attention = h * hd * (2 * nh + 2 * nkv);
        let mlp = 3 * h * self.intermediate_size as u64;
        let embed = self.vocab_size as u64 * h;
        let head = if self.tie_word_embeddings() { 0 } else { embed };
        embed + head + self.num_hidden_layers as u64 * (attention + mlp + 2 * h) + h
    }

    /// Key/value heads, defaulting to the query heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of a head, from `head_dim` or the hidden size.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// RMSNorm epsilon, with transformers' default.
    pub fn rms_norm_eps(&self) -> f64 {
        self.rms_norm_eps.unwrap_or(1e-6)
    }

    /// Whether the vocabulary projection reuses the embedding (default false).
    pub fn tie_word_embeddings(&self) -> bool {
        self.tie_word_embeddings.unwrap_or(false)
    }

    /// transformers' per-architecture default when the key is absent; the dynamic and yarn rope
    /// types derive their scaling from it.
    pub fn max_position_embeddings(&self) -> usize {
        self.max_position_embeddings
            .unwrap_or(match self.architecture() {
                Architecture::Llama => 2048,
                Architecture::Mistral => 131_072,
                Architecture::Qwen2 => 32_768,
            })
    }

    /// The attention window in keys (including the query's own position), if the model uses one.
    ///
    /// Mistral applies `sliding_window` whenever it is set; Qwen2 only with `use_sliding_window`.
    pub fn sliding_window(&self) -> Option<usize> {
        match self.architecture() {
            Architecture::Llama => None,
            Architecture::Mistral => self.sliding_window.unwrap_or(Some(4096)),
            Architecture::Qwen2 => self
                .sliding_window
                .flatten()
                .filter(|_| self.use_sliding_window.unwrap_or(false)),
        }
    }

    /// The attention window of each decoder layer (`None`: full causal attention). Mistral slides
    /// in every layer; Qwen2 in the layers `layer_types` marks `sliding_attention`, or without it
    /// in those from `max_window_layers` on — and only with `use_sliding_window`, as transformers.
    pub fn layer_windows(&self) -> Vec<Option<usize>> {
        let window = self.sliding_window();
        (0..self.num_hidden_layers)
            .map(|i| match self.architecture() {
                Architecture::Llama => None,
                Architecture::Mistral => window,
                Architecture::Qwen2 => {
                    let slides = match &self.layer_types {
                        Some(types) => types.get(i).is_some_and(|t| t == "sliding_attention"),
                        None => i >= self.max_window_layers.unwrap_or(28),
                    };
                    window.filter(|_| slides)
                }
            })
            .collect()
    }

    /// Whether q/k/v projections carry a bias (always for Qwen2, `attention_bias` for Llama).
    pub fn qkv_bias(&self) -> bool {
        self.architecture() == Architecture::Qwen2 || self.attention_bias.unwrap_or(false)
    }

    /// Whether the output projection carries a bias.
    pub fn o_bias(&self) -> bool {
        self.architecture() != Architecture::Qwen2 && self.attention_bias.unwrap_or(false)
    }

    /// Whether the MLP projections have biases (default false).
    pub fn mlp_bias(&self) -> bool {
        self.mlp_bias.unwrap_or(false)
    }

    /// Every end-of-sequence id the config names (none when it names none).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// The checkpoint's stored dtype as written by transformers (`dtype` or `torch_dtype`).
    pub fn stored_dtype(&self) -> Option<&str> {
        self.dtype.as_deref().or(self.torch_dtype.as_deref())
    }

    fn rope(&self) -> RopeParameters {
        // transformers takes `rope_scaling` over `rope_parameters` when both are set and non-empty;
        // a top-level `rope_theta` fills in what they leave out.
        let non_empty =
            |p: &Option<RopeParameters>| p.clone().filter(|p| *p != RopeParameters::default());
        let mut params = non_empty(&self.rope_scaling)
            .or_else(|| non_empty(&self.rope_parameters))
            .unwrap_or_default();
        if params.rope_theta.is_none() {
            params.rope_theta = self.rope_theta;
        }
        params
    }

    /// The rotary base frequency from whichever form the config uses (default 10000).
    pub fn rope_theta(&self) -> f64 {
        self.rope().rope_theta.unwrap_or(10_000.0)
    }

    /// The validated rope scaling variant, with transformers' defaults for optional keys.
    pub fn rope_scaling_kind(&self) -> std::result::Result<RopeScaling, String> {
        let params = self.rope();
        let kind = params.kind();
        let need = |v: Option<f64>, key: &str| {
            v.ok_or_else(|| format!("rope_type `{kind}` needs `{key}`"))
        };
        let positive = |v: f64, key: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(format!(
                    "rope_type `{kind}`: `{key}` must be positive, got {v}"
                ))
            }
        };
        if let Some(partial) = params.partial_rotary_factor.filter(|&p| p != 1.0) {
            return Err(format!(
                "`partial_rotary_factor` {partial} is not supported (only full rotation, 1.0)"
            ));
        }
        // transformers falls back to `max_position_embeddings` for the types that read it.
        let original_max = params
            .original_max_position_embeddings
            .unwrap_or_else(|| self.max_position_embeddings());
        if original_max == 0 {
            return Err("`original_max_position_embeddings` must be positive".into());
        }
        let half = self.head_dim() / 2;
        match kind {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear {
                factor: positive(need(params.factor, "factor")?, "factor")?,
            }),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: positive(need(params.factor, "factor")?, "factor")?,
                low_freq_factor: need(params.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: need(params.high_freq_factor, "high_freq_factor")?,
                original_max_position_embeddings: original_max,
            }),
            "dynamic" => Ok(RopeScaling::Dynamic {
                factor: positive(need(params.factor, "factor")?, "factor")?,
                max_position_embeddings: self.max_position_embeddings(),
            }),
            "yarn" => {
                let factor = positive(need(params.factor, "factor")?, "factor")?;
                let attention_factor = match params.attention_factor {
                    Some(a) => a,
                    None => yarn_attention_factor(factor, params.mscale, params.mscale_all_dim),
                };
                // transformers treats 0 like an absent key here (`or` on the values).
                let or_default = |v: Option<f64>, d: f64| v.filter(|&v| v != 0.0).unwrap_or(d);
                Ok(RopeScaling::Yarn {
                    factor,
                    original_max_position_embeddings: original_max,
                    attention_factor,
                    beta_fast: or_default(params.beta_fast, 32.0),
                    beta_slow: or_default(params.beta_slow, 1.0),
                    truncate: params.truncate.unwrap_or(true),
                })
            }
            "longrope" => {
                let list = |v: &Option<Vec<f64>>, key: &str| {
                    let v = v
                        .clone()
                        .ok_or_else(|| format!("rope_type `{kind}` needs `{key}`"))?;
                    if v.len() != half {
                        return Err(format!(
                            "rope_type `{kind}`: `{key}` has {} values, head_dim / 2 is {half}",
                            v.len()
                        ));
                    }
                    Ok(v)
                };
                let short_factor = list(&params.short_factor, "short_factor")?;
                let long_factor = list(&params.long_factor, "long_factor")?;
                // Phi-3 style configs leave `factor` out: it is the context extension ratio.
                let factor = params
                    .factor
                    .unwrap_or(self.max_position_embeddings() as f64 / original_max as f64);
                let attention_factor = params.attention_factor.unwrap_or(if factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + factor.ln() / (original_max as f64).ln()).sqrt()
                });
                Ok(RopeScaling::LongRope {
                    short_factor,
                    long_factor,
                    original_max_position_embeddings: original_max,
                    attention_factor,
                })
            }
            other => Err(format!(
                "rope_type `{other}` is not supported (default, linear, llama3, dynamic, yarn, longrope)"
            )),
        }
    }
}

/// YaRN's default cos/sin multiplier: `0.1 ln(factor) + 1`, or the ratio of two such terms when
/// both `mscale` and `mscale_all_dim` are set and non-zero (DeepSeek style).
fn yarn_attention_factor(factor: f64, mscale: Option<f64>, mscale_all_dim: Option<f64>) -> f64 {
    let m = |scale: f64, mscale: f64| {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * mscale * scale.ln() + 1.0
        }
    };
    match (
        mscale.filter(|&v| v != 0.0),
        mscale_all_dim.filter(|&v| v != 0.0),
    ) {
        (Some(a), Some(b)) => m(factor, a) / m(factor, b),
        _ => m(factor, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config> {
        Config::from_json(json, Path::new("config.json"))
    }

    const BASE: &str = r#""vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2"#;

    #[test]
    fn accepts_nested_and_flat_rope_theta() {
        let flat = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "rope_theta": 5.0}}"#
        ))
        .unwrap();
        assert_eq!(flat.rope_theta(), 5.0);
        let nested = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "rope_parameters": {{"rope_type": "default", "rope_theta": 7.0}}}}"#
        ))
        .unwrap();
        assert_eq!(nested.rope_theta(), 7.0);
        assert_eq!(nested.rope_scaling_kind(), Ok(RopeScaling::None));
    }

    #[test]
    fn eos_int_or_list_and_both_dtype_keys() {
        let one = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "eos_token_id": 3, "torch_dtype": "bfloat16"}}"#
        ))
        .unwrap();
        assert_eq!(one.eos_token_ids(), vec![3]);
        assert_eq!(one.stored_dtype(), Some("bfloat16"));
        let many = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "eos_token_id": [1, 2], "dtype": "float16"}}"#
        ))
        .unwrap();
        assert_eq!(many.eos_token_ids(), vec![1, 2]);
        assert_eq!(many.stored_dtype(), Some("float16"));
    }

    #[test]
    fn llama3_scaling_and_head_dim() {
        let c = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "head_dim": 6, "rope_scaling": {{"rope_type": "llama3",
            "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32}}}}"#
        ))
        .unwrap();
        assert_eq!(c.head_dim(), 6);
        assert!(matches!(
            c.rope_scaling_kind(),
            Ok(RopeScaling::Llama3 { .. })
        ));
    }

    #[test]
    fn sliding_window_per_architecture() {
        let m = parse(&format!(
            r#"{{"model_type": "mistral", {BASE}, "sliding_window": 4}}"#
        ))
        .unwrap();
        assert_eq!(m.sliding_window(), Some(4));
        let q = parse(&format!(
            r#"{{"model_type": "qwen2", {BASE}, "sliding_window": 4}}"#
        ))
        .unwrap();
        assert_eq!(q.sliding_window(), None);
        let n = parse(&format!(
            r#"{{"model_type": "mistral", {BASE}, "sliding_window": null}}"#
        ))
        .unwrap();
        assert_eq!(n.sliding_window(), None);
        let d = parse(&format!(r#"{{"model_type": "mistral", {BASE}}}"#)).unwrap();
        assert_eq!(d.sliding_window(), Some(4096));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = parse(&format!(r#"{{"model_type": "gpt2", {BASE}}}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpt2") && err.contains("config.json"), "{err}");
        let err = parse(r#"{"model_type": "llama", "vocab_size": 10}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hidden_size") && err.contains("config.json"),
            "{err}"
        );
        let err = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "rope_scaling": {{"rope_type": "proportional", "factor": 2.0}}}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("proportional") && err.contains("not supported"),
            "{err}"
        );
        let err = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "num_key_value_heads": 3}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
    }

    fn kind(rope: &str) -> std::result::Result<RopeScaling, String> {
        parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "max_position_embeddings": 128, {rope}}}"#
        ))
        .map_err(|e| e.to_string())?
        .rope_scaling_kind()
    }

    #[test]
    fn yarn_defaults_and_legacy_type_key() {
        // Qwen2.5's documented long-context snippet: flat, legacy `type`.
        let flat = kind(
            r#""rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}"#,
        );
        let want = RopeScaling::Yarn {
            factor: 4.0,
            original_max_position_embeddings: 32,
            attention_factor: 0.1 * 4f64.ln() + 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            truncate: true,
        };
        assert_eq!(flat, Ok(want.clone()));
        // Configs saved by transformers 4.43-4.5x carry both keys.
        let both = kind(
            r#""rope_scaling": {"type": "yarn", "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}"#,
        );
        assert_eq!(both, Ok(want));
    }

    #[test]
    fn yarn_nested_mscale_and_fallbacks() {
        let c = kind(
            r#""rope_parameters": {"rope_type": "yarn", "rope_theta": 50.0, "factor": 8.0,
            "mscale": 0.707, "mscale_all_dim": 1.0, "beta_fast": 0, "beta_slow": 2.0, "truncate": false}"#,
        );
        let m = |s: f64| 0.1 * s * 8f64.ln() + 1.0;
        assert_eq!(
            c,
            Ok(RopeScaling::Yarn {
                factor: 8.0,
                // Absent: transformers falls back to max_position_embeddings.
                original_max_position_embeddings: 128,
                attention_factor: m(0.707) / m(1.0),
                beta_fast: 32.0,
                beta_slow: 2.0,
                truncate: false,
            })
        );
        let explicit = kind(
            r#""rope_scaling": {"rope_type": "yarn", "factor": 8.0, "attention_factor": 0.5}"#,
        );
        assert!(
            matches!(explicit, Ok(RopeScaling::Yarn { attention_factor, .. }) if attention_factor == 0.5)
        );
    }

    #[test]
    fn longrope_lists_and_derived_factor() {
        // Phi-3 style: no `factor`, so the attention factor comes from 128 / 32.
        let c = kind(
            r#""rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5],
            "long_factor": [2.0, 3.0], "original_max_position_embeddings": 32}"#,
        );
        assert_eq!(
            c,
            Ok(RopeScaling::LongRope {
                short_factor: vec![1.0, 1.5],
                long_factor: vec![2.0, 3.0],
                original_max_position_embeddings: 32,
                attention_factor: (1.0 + 4f64.ln() / 32f64.ln()).sqrt(),
            })
        );
        let unscaled = kind(
            r#""rope_parameters": {"rope_type": "longrope", "short_factor": [1, 1],
            "long_factor": [2, 2], "original_max_position_embeddings": 32, "factor": 1.0}"#,
        );
        assert!(
            matches!(unscaled, Ok(RopeScaling::LongRope { attention_factor, .. }) if attention_factor == 1.0)
        );
    }

    #[test]
    fn dynamic_takes_theta_from_the_top_level() {
        let c = parse(&format!(
            r#"{{"model_type": "qwen2", {BASE}, "rope_theta": 5.0,
            "rope_parameters": {{"rope_type": "dynamic", "factor": 2.0}}}}"#
        ))
        .unwrap();
        assert_eq!(c.rope_theta(), 5.0);
        // Qwen2's transformers default when the key is absent.
        assert_eq!(
            c.rope_scaling_kind(),
            Ok(RopeScaling::Dynamic {
                factor: 2.0,
                max_position_embeddings: 32_768
            })
        );
    }

    #[test]
    fn rope_scaling_wins_over_rope_parameters() {
        // As in transformers: a non-empty `rope_scaling` replaces `rope_parameters` wholesale.
        let c = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "rope_parameters": {{"rope_type": "linear", "factor": 3.0,
            "rope_theta": 7.0}}, "rope_scaling": {{"type": "dynamic", "factor": 4.0}}}}"#
        ))
        .unwrap();
        assert!(matches!(
            c.rope_scaling_kind(),
            Ok(RopeScaling::Dynamic { factor, .. }) if factor == 4.0
        ));
        assert_eq!(c.rope_theta(), 10_000.0);
        let empty = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "rope_parameters": {{"rope_type": "linear", "factor": 3.0}},
            "rope_scaling": {{}}}}"#
        ))
        .unwrap();
        assert_eq!(
            empty.rope_scaling_kind(),
            Ok(RopeScaling::Linear { factor: 3.0 })
        );
    }

    #[test]
    fn missing_or_malformed_rope_keys_are_errors() {
        for (rope, needle) in [
            (
                r#""rope_scaling": {"type": "yarn", "original_max_position_embeddings": 32}"#,
                "`factor`",
            ),
            (r#""rope_scaling": {"type": "dynamic"}"#, "`factor`"),
            (
                r#""rope_parameters": {"rope_type": "longrope", "short_factor": [1.0, 1.0]}"#,
                "`long_factor`",
            ),
            (
                r#""rope_parameters": {"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0, 1.0]}"#,
                "`short_factor` has 1 values",
            ),
            (
                r#""rope_scaling": {"type": "linear", "factor": 0.0}"#,
                "positive",
            ),
            (
                r#""rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}"#,
                "partial_rotary_factor",
            ),
        ] {
            let err = kind(rope).unwrap_err();
            assert!(err.contains(needle), "{rope}: {err}");
        }
        let err = kind(r#""rope_scaling": {"type": "yarn"}"#).unwrap_err();
        assert!(err.contains("config.json") && err.contains("yarn"), "{err}");
    }

    #[test]
    fn qwen2_windows_per_layer_from_layer_types_or_max_window_layers() {
        let base = r#""vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 3, "num_attention_heads": 2, "model_type": "qwen2""#;
        let typed = parse(&format!(
            r#"{{{base}, "use_sliding_window": true, "sliding_window": 4,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}}"#
        ))
        .unwrap();
        assert_eq!(typed.layer_windows(), vec![Some(4), None, Some(4)]);
        let by_index = parse(&format!(
            r#"{{{base}, "use_sliding_window": true, "sliding_window": 4, "max_window_layers": 2}}"#
        ))
        .unwrap();
        assert_eq!(by_index.layer_windows(), vec![None, None, Some(4)]);
        // Without use_sliding_window nothing slides, whatever the layer types say.
        let off = parse(&format!(
            r#"{{{base}, "sliding_window": 4, "layer_types": ["sliding_attention", "full_attention", "full_attention"]}}"#
        ))
        .unwrap();
        assert_eq!(off.layer_windows(), vec![None; 3]);
        let short = parse(&format!(r#"{{{base}, "layer_types": ["full_attention"]}}"#))
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("`layer_types` has 1 entries for 3 layers"),
            "{short}"
        );
        let odd = parse(&format!(
            r#"{{{base}, "layer_types": ["full_attention", "chunked_attention", "full_attention"]}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(odd.contains("chunked_attention"), "{odd}");
    }

    #[test]
    fn mistral_slides_everywhere_llama_nowhere() {
        let base = r#""vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2"#;
        let m = parse(&format!(
            r#"{{"model_type": "mistral", {base}, "sliding_window": 5}}"#
        ))
        .unwrap();
        assert_eq!(m.layer_windows(), vec![Some(5), Some(5)]);
        let l = parse(&format!(
            r#"{{"model_type": "llama", {base}, "sliding_window": 5}}"#
        ))
        .unwrap();
        assert_eq!(l.layer_windows(), vec![None, None]);
    }
}
