//! The Hugging Face model configuration implied by a GGUF file's metadata.

use serde_json::{Map, Value, json};

use super::reader::GgufFile;
use super::weights::SUPPORTED_ARCHITECTURES;
use crate::config::Config;
use crate::error::{ModelError, Result};

/// Builds the [`Config`] (`config.json` equivalent) of a `llama` or `qwen2` GGUF checkpoint.
///
/// From `general.architecture` (= `model_type`) and, under that architecture's prefix:
/// `block_count`, `embedding_length`, `feed_forward_length`, `attention.head_count`,
/// `attention.head_count_kv` (default: `head_count`), `attention.layer_norm_rms_epsilon`,
/// `rope.freq_base` (default 10000), `context_length`, and the head size from
/// `attention.key_length` or `rope.dimension_count` (default `embedding_length / head_count`).
/// `vocab_size` is the row count of `token_embd.weight`; `tie_word_embeddings` is whether
/// `output.weight` is absent; bos/eos/pad ids come from `tokenizer.ggml.*_token_id`;
/// `torch_dtype` is `float32` (the weights are served dequantized to f32).
///
/// Features the decoder does not implement are errors rather than silently wrong output: rope
/// scaling other than linear, a `rope_freqs.weight` frequency-factor tensor (Llama 3.1 style
/// scaling), partial rotary embeddings, and value heads of another size than key heads.
pub fn config_from_gguf(file: &GgufFile) -> Result<Config> {
    let path = file.path();
    let bad = |message: String| ModelError::Config {
        path: path.to_path_buf(),
        message,
    };
    let arch = file.architecture()?;
    if !SUPPORTED_ARCHITECTURES.contains(&arch) {
        return Err(bad(format!(
            "GGUF architecture `{arch}` is not supported (supported: {})",
            SUPPORTED_ARCHITECTURES.join(", ")
        )));
    }
    let key = |name: &str| format!("{arch}.{name}");
    let required = |name: &str| -> Result<u32> {
        let k = key(name);
        file.get_u32(&k)?
            .ok_or_else(|| bad(format!("GGUF metadata has no `{k}`")))
    };

    let hidden = required("embedding_length")?;
    let layers = required("block_count")?;
    let intermediate = required("feed_forward_length")?;
    let heads = required("attention.head_count")?;
    let kv_heads = file
        .get_u32(&key("attention.head_count_kv"))?
        .unwrap_or(heads);
    let eps = file
        .get_f32(&key("attention.layer_norm_rms_epsilon"))?
        .ok_or_else(|| {
            bad(format!(
                "GGUF metadata has no `{}`",
                key("attention.layer_norm_rms_epsilon")
            ))
        })?;
    let theta = file.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
    let context = file.get_u32(&key("context_length"))?;

    if heads == 0 {
        return Err(bad(format!(
            "`{}` must be positive",
            key("attention.head_count")
        )));
    }
    let key_length = file.get_u32(&key("attention.key_length"))?;
    let value_length = file.get_u32(&key("attention.value_length"))?;
    let rope_dims = file.get_u32(&key("rope.dimension_count"))?;
    let head_dim = key_length.or(rope_dims).unwrap_or(hidden / heads);
    if let Some(rope_dims) = rope_dims.filter(|&r| r != head_dim) {
        return Err(bad(format!(
            "partial rotary embeddings are not supported (`{}` = {rope_dims}, head size {head_dim})",
            key("rope.dimension_count")
        )));
    }
    if let Some(v) = value_length.filter(|&v| v != head_dim) {
        return Err(bad(format!(
            "value heads of size {v} differ from key heads of size {head_dim}"
        )));
    }

    let mut rope_scaling = Value::Null;
    match file.get_str(&key("rope.scaling.type"))? {
        None | Some("none") => {}
        Some("linear") => {
            let factor = file.get_f32(&key("rope.scaling.factor"))?.ok_or_else(|| {
                bad(format!(
                    "linear rope scaling needs `{}`",
                    key("rope.scaling.factor")
                ))
            })?;
            if factor != 1.0 {
                rope_scaling = json!({"rope_type": "linear", "factor": f64::from(factor)});
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "rope scaling `{other}` is not supported (none, linear)"
            )));
        }
    }
    if file.tensor("rope_freqs.weight").is_some() {
        return Err(bad(
            "the GGUF has a `rope_freqs.weight` tensor (per-frequency rope factors, e.g. Llama 3.1 \
             scaling), which is not supported"
                .into(),
        ));
    }

    let embed = file
        .tensor("token_embd.weight")
        .ok_or_else(|| ModelError::MissingTensor {
            name: "token_embd.weight".into(),
            path: path.to_path_buf(),
        })?;
    let vocab = embed.shape().first().copied().unwrap_or(0);
    if let Some(tokens) = file.get_str_array("tokenizer.ggml.tokens")?
        && tokens.len() != vocab
    {
        return Err(bad(format!(
            "`tokenizer.ggml.tokens` has {} tokens but `token_embd.weight` has {vocab} rows",
            tokens.len()
        )));
    }
    let tied = file.tensor("output.weight").is_none();

    let mut config = Map::new();
    let mut set = |k: &str, v: Value| {
        config.insert(k.to_string(), v);
    };
    set("model_type", json!(arch));
    set("vocab_size", json!(vocab));
    set("hidden_size", json!(hidden));
    set("intermediate_size", json!(intermediate));
    set("num_hidden_layers", json!(layers));
    set("num_attention_heads", json!(heads));
    set("num_key_value_heads", json!(kv_heads));
    set("head_dim", json!(head_dim));
    // f32 metadata widened exactly, as transformers' GGUF loader does.
    set("rms_norm_eps", json!(f64::from(eps)));
    set("rope_theta", json!(f64::from(theta)));
    if !rope_scaling.is_null() {
        set("rope_scaling", rope_scaling);
    }
    if let Some(context) = context {
        set("max_position_embeddings", json!(context));
    }
    set("tie_word_embeddings", json!(tied));
    set("hidden_act", json!("silu"));
    if arch == "llama" {
        // llama.cpp loads these biases when present; Qwen2's q/k/v biases are implied by its type.
        set(
            "attention_bias",
            json!(file.tensor("blk.0.attn_q.bias").is_some()),
        );
    }
    set(
        "mlp_bias",
        json!(file.tensor("blk.0.ffn_up.bias").is_some()),
    );
    for (gguf_key, hf_key) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = file.get_u32(gguf_key)? {
            set(hf_key, json!(id));
        }
    }
    set("torch_dtype", json!("float32"));

    Config::from_json(&Value::Object(config).to_string(), path)
}

/// The chat template stored in `tokenizer.chat_template`, if any.
pub fn chat_template(file: &GgufFile) -> Option<String> {
    file.get_str("tokenizer.chat_template")
        .ok()
        .flatten()
        .map(str::to_owned)
}
