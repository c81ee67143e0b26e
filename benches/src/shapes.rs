//! Random-weight checkpoints of real model shapes, written once under `.cache/bench/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, tensor::TensorView};

pub struct Shape {
    pub name: &'static str,
    pub vocab: usize,
    pub hidden: usize,
    pub inter: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub tied: bool,
}

pub const SHAPES: &[Shape] = &[
    Shape {
        name: "tiny",
        vocab: 8192,
        hidden: 256,
        inter: 704,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        tied: false,
    },
    Shape {
        name: "smollm2-135m",
        vocab: 49152,
        hidden: 576,
        inter: 1536,
        layers: 30,
        heads: 9,
        kv_heads: 3,
        tied: true,
    },
    Shape {
        name: "qwen2.5-0.5b",
        vocab: 151936,
        hidden: 896,
        inter: 4864,
        layers: 24,
        heads: 14,
        kv_heads: 2,
        tied: true,
    },
    Shape {
        name: "mistral-7b",
        vocab: 32000,
        hidden: 4096,
        inter: 14336,
        layers: 32,
        heads: 32,
        kv_heads: 8,
        tied: false,
    },
    Shape {
        name: "llama3-8b",
        vocab: 128256,
        hidden: 4096,
        inter: 14336,
        layers: 32,
        heads: 32,
        kv_heads: 8,
        tied: false,
    },
];

impl Shape {
    pub fn find(name: &str) -> Result<&'static Shape, String> {
        SHAPES.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = SHAPES.iter().map(|s| s.name).collect();
            format!("unknown shape {name} ({})", names.join(", "))
        })
    }

    /// Forward FLOPs of one sequence of `len` tokens: two per weight per token for every matmul
    /// (the vocabulary projection at every position, as a plain forward does) plus causal attention.
    pub fn flops(&self, len: usize) -> f64 {
        let dense = self.params()
            - if self.tied {
                0
            } else {
                self.vocab * self.hidden
            };
        let attention = 4.0 * self.layers as f64 * self.hidden as f64 * (len * len) as f64 / 2.0;
        2.0 * dense as f64 * len as f64 + attention
    }

    /// All weights, embeddings included.
    pub fn params(&self) -> usize {
        let hd = self.hidden / self.heads;
        let attn = self.hidden * hd * (2 * self.heads + 2 * self.kv_heads);
        let mlp = 3 * self.hidden * self.inter;
        let head = if self.tied {
            0
        } else {
            self.vocab * self.hidden
        };
        self.vocab * self.hidden + head + self.layers * (attn + mlp)
    }
}

/// Writes a bf16 checkpoint with small uniform weights (deterministic), unless one exists.
pub fn checkpoint(shape: &Shape) -> std::io::Result<PathBuf> {
    let dir = Path::new(".cache/bench").join(shape.name);
    if dir.join("model.safetensors").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": shape.vocab, "hidden_size": shape.hidden,
        "intermediate_size": shape.inter, "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": shape.tied, "rope_theta": 10000.0
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    let hd = shape.hidden / shape.heads;
    let (h, i) = (shape.hidden, shape.inter);
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![shape.vocab, h]),
        ("model.norm.weight".into(), vec![h]),
    ];
    if !shape.tied {
        tensors.push(("lm_head.weight".into(), vec![shape.vocab, h]));
    }
    for l in 0..shape.layers {
        let p = format!("model.layers.{l}");
        tensors.push((
            format!("{p}.self_attn.q_proj.weight"),
            vec![shape.heads * hd, h],
        ));
        tensors.push((
            format!("{p}.self_attn.k_proj.weight"),
            vec![shape.kv_heads * hd, h],
        ));
        tensors.push((
            format!("{p}.self_attn.v_proj.weight"),
            vec![shape.kv_heads * hd, h],
        ));
        tensors.push((
            format!("{p}.self_attn.o_proj.weight"),
            vec![h, shape.heads * hd],
        ));
        tensors.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
        tensors.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
        tensors.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
        tensors.push((format!("{p}.input_layernorm.weight"), vec![h]));
        tensors.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(name, s)| {
            let n: usize = s.iter().product();
            let norm = name.ends_with("layernorm.weight") || name == "model.norm.weight";
            (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    let v = if norm { 1.0 } else { u * 0.08 };
                    half::bf16::from_f32(v).to_le_bytes()
                })
                .collect()
        })
        .collect();
    let views: HashMap<String, TensorView<'_>> = tensors
        .iter()
        .zip(&buffers)
        .map(|((n, s), b)| {
            TensorView::new(Dtype::BF16, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize_to_file(&views, None, &dir.join("model.safetensors"))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(dir)
}
