//! Scoring throughput of a random-weight model of a real shape: tokens/s of the batched
//! log-prob forward (`score_spans`), printed as a Markdown table.
//!
//! ```text
//! cargo run --release -p cdr-benches --bin score_throughput -- smollm2-135m 1x256 4x256
//! ```
//! Arguments: a shape (`tiny`, `smollm2-135m`, `qwen2.5-0.5b`) then `BATCHxSEQ` workloads;
//! `--dtype f32|bf16`, `--iters N`. The random checkpoint is written once under `.cache/bench/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cdr_models::{ComputeDtype, LoadOptions, ModelDir, ScoreSpan};
use safetensors::{Dtype, tensor::TensorView};

type B = cdr_models::backend::Selected;

struct Shape {
    name: &'static str,
    vocab: usize,
    hidden: usize,
    inter: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    tied: bool,
}

const SHAPES: &[Shape] = &[
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
];

impl Shape {
    fn params(&self) -> usize {
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
fn checkpoint(shape: &Shape) -> std::io::Result<PathBuf> {
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shape_name = args.next().unwrap_or_else(|| "tiny".into());
    let shape = SHAPES
        .iter()
        .find(|s| s.name == shape_name)
        .ok_or_else(|| format!("unknown shape {shape_name} (tiny, smollm2-135m, qwen2.5-0.5b)"))?;
    let mut dtype = ComputeDtype::F32;
    let mut iters = 3usize;
    let mut workloads = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dtype" => dtype = args.next().ok_or("--dtype needs a value")?.parse()?,
            "--iters" => iters = args.next().ok_or("--iters needs a value")?.parse()?,
            w => {
                let (b, s) = w
                    .split_once('x')
                    .ok_or(format!("workload {w}: use BATCHxSEQ"))?;
                workloads.push((b.parse::<usize>()?, s.parse::<usize>()?));
            }
        }
    }
    if workloads.is_empty() {
        workloads = vec![(1, 256), (4, 256)];
    }
    let dir = checkpoint(shape)?;
    let device = Default::default();
    let model = ModelDir::new(&dir).load::<B>(&device, LoadOptions { dtype })?;
    println!(
        "shape `{}` ({:.0}M params), dtype {dtype}, backend {}",
        shape.name,
        shape.params() as f64 / 1e6,
        std::any::type_name::<B>()
    );
    println!("| batch x seq | ms / batch | tokens/s |\n|---|---:|---:|");
    let mut state = 1u64;
    for (batch, seq) in workloads {
        let seqs: Vec<Vec<u32>> = (0..batch)
            .map(|_| {
                (0..seq)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 33) % shape.vocab as u64) as u32
                    })
                    .collect()
            })
            .collect();
        // Score the second half of each sequence, as a response after a prompt.
        let spans: Vec<ScoreSpan<'_>> = seqs
            .iter()
            .map(|ids| ScoreSpan {
                ids,
                start: seq / 2,
            })
            .collect();
        model.score_spans(&spans)?; // warm-up (and kernel compilation on GPU backends)
        let start = Instant::now();
        for _ in 0..iters {
            model.score_spans(&spans)?;
        }
        let secs = start.elapsed().as_secs_f64() / iters as f64;
        println!(
            "| {batch} x {seq} | {:.1} | {:.0} |",
            secs * 1e3,
            (batch * seq) as f64 / secs
        );
    }
    Ok(())
}
