//! The model configuration, read from a Hugging Face `config.json`.

use std::path::Path;

use serde::Deserialize;

use crate::error::{ModelError, Result};

/// The decoder families cdr runs. They share one implementation ([`crate::llama`]); the variant only
/// switches on what differs (Mistral: a sliding attention window; Qwen2: q/k/v biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
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
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// Rotary embedding parameters: transformers 5 nests them under `rope_parameters`, older configs put
/// `rope_theta` at the top level and scaling under `rope_scaling`. Both end up here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RopeParameters {
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
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
}

/// The rope variant after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Position interpolation: every frequency divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// A Llama-family model configuration (`config.json`).
///
/// Field names and defaults follow transformers, so any config it writes deserializes as is.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default)]
    pub rms_norm_eps: Option<f64>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// `None`: key absent; `Some(None)`: explicitly null. The difference matters for Mistral, whose
    /// transformers default is a 4096-token window.
    #[serde(default, deserialize_with = "present")]
    pub sliding_window: Option<Option<usize>>,
    /// Qwen2 only applies `sliding_window` when this is set.
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// transformers < 4.56 writes `torch_dtype`, later versions `dtype`.
    #[serde(default)]
    pub torch_dtype: Option<String>,
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
        if self.num_attention_heads % self.num_kv_heads() != 0 {
            return Err(bad(format!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.num_kv_heads()
            )));
        }
        if self.head_dim() % 2 != 0 {
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
        if self.sliding_window == Some(Some(0)) {
            return Err(bad("`sliding_window` must be positive or null".into()));
        }
        self.rope_scaling_kind().map_err(bad)?;
        Ok(())
    }

    pub fn architecture(&self) -> Architecture {
        Architecture::from_model_type(&self.model_type).unwrap_or(Architecture::Llama)
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn rms_norm_eps(&self) -> f64 {
        self.rms_norm_eps.unwrap_or(1e-6)
    }

    pub fn tie_word_embeddings(&self) -> bool {
        self.tie_word_embeddings.unwrap_or(false)
    }

    pub fn max_position_embeddings(&self) -> usize {
        self.max_position_embeddings.unwrap_or(4096)
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

    /// Whether q/k/v projections carry a bias (always for Qwen2, `attention_bias` for Llama).
    pub fn qkv_bias(&self) -> bool {
        self.architecture() == Architecture::Qwen2 || self.attention_bias.unwrap_or(false)
    }

    /// Whether the output projection carries a bias.
    pub fn o_bias(&self) -> bool {
        self.architecture() != Architecture::Qwen2 && self.attention_bias.unwrap_or(false)
    }

    pub fn mlp_bias(&self) -> bool {
        self.mlp_bias.unwrap_or(false)
    }

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
        // Nested parameters win; a top-level `rope_theta` fills in what they leave out.
        let mut params = self
            .rope_parameters
            .clone()
            .or_else(|| self.rope_scaling.clone())
            .unwrap_or_default();
        if params.rope_theta.is_none() {
            params.rope_theta = self.rope_theta;
        }
        params
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope().rope_theta.unwrap_or(10_000.0)
    }

    /// The validated rope scaling variant.
    pub fn rope_scaling_kind(&self) -> std::result::Result<RopeScaling, String> {
        let params = self.rope();
        let kind = params.rope_type.as_deref().unwrap_or("default");
        let need = |v: Option<f64>, key: &str| {
            v.ok_or_else(|| format!("rope_type `{kind}` needs `{key}`"))
        };
        match kind {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear {
                factor: need(params.factor, "factor")?,
            }),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: need(params.factor, "factor")?,
                low_freq_factor: need(params.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: need(params.high_freq_factor, "high_freq_factor")?,
                original_max_position_embeddings: params
                    .original_max_position_embeddings
                    .ok_or_else(|| {
                        "rope_type `llama3` needs `original_max_position_embeddings`".to_string()
                    })?,
            }),
            other => Err(format!(
                "rope_type `{other}` is not supported (default, linear, llama3)"
            )),
        }
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
            r#"{{"model_type": "llama", {BASE}, "rope_scaling": {{"rope_type": "yarn", "factor": 2.0}}}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("yarn"), "{err}");
        let err = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "num_key_value_heads": 3}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
    }
}
