//! Tiny GGUF checkpoints load through `GgufWeights` + `config_from_gguf` into the decoder and give
//! transformers' per-token log-probs for the same GGUF (fixtures by tools/make_gguf_fixtures.py).

mod gguf_common;

use std::path::Path;

use burn::tensor::TensorData;
use cdr_models::backend::Cpu;
use cdr_models::gguf::{
    GgmlType, GgufFile, GgufWeights, MetadataValue, chat_template, config_from_gguf,
    gguf_to_hf_name, hf_to_gguf_name, unpermute_row,
};
use cdr_models::safetensors::SafetensorsWeights;
use cdr_models::weights::convert;
use cdr_models::{ComputeDtype, LlamaForCausalLm, ModelError, WeightSource, Weights};
use gguf_common::{Builder, gguf_fixture};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    transformers_version: String,
    models: std::collections::HashMap<String, ExpectedModel>,
}

#[derive(Deserialize)]
struct ExpectedModel {
    architecture: String,
    sequences: Vec<ExpectedSequence>,
}

#[derive(Deserialize)]
struct ExpectedSequence {
    ids: Vec<u32>,
    logprobs: Vec<f32>,
}

fn expected() -> Expected {
    let path = gguf_fixture("expected.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tools/make_gguf_fixtures.py)", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn load(path: &Path, dtype: ComputeDtype) -> LlamaForCausalLm<Cpu> {
    let weights = GgufWeights::open(path).unwrap_or_else(|e| panic!("{e}"));
    let config = config_from_gguf(weights.file()).unwrap_or_else(|e| panic!("{e}"));
    let device = Default::default();
    LlamaForCausalLm::load(&Weights::new(&weights, &device, dtype), &config)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `(file, tolerance)`: f32 files must match to 1e-4; quantized ones are compared with
/// transformers on the same file (it dequantizes with gguf-py, bit-identical to cdr), to 1e-3.
const FILES: [(&str, f32); 4] = [
    ("llama_gqa.f32.gguf", 1e-4),
    ("llama_gqa.mixed.gguf", 1e-3),
    ("qwen2_tiny.f32.gguf", 1e-4),
    ("qwen2_tiny.q8_0.gguf", 1e-3),
];

#[test]
fn logprobs_match_transformers_on_the_same_gguf() {
    let expected = expected();
    for (name, tolerance) in FILES {
        let want = &expected.models[name];
        let model = load(&gguf_fixture(name), ComputeDtype::F32);
        assert_eq!(model.config().model_type, want.architecture);
        let mut worst = 0f32;
        for (i, seq) in want.sequences.iter().enumerate() {
            let got = model.token_logprobs(&[&seq.ids]).unwrap();
            let diff = max_abs_diff(&got[0], &seq.logprobs);
            assert!(
                diff <= tolerance,
                "{name} sequence {i} (len {}): max |diff| {diff:e} > {tolerance:e}",
                seq.ids.len()
            );
            worst = worst.max(diff);
        }
        println!(
            "{name:22} max |logprob - transformers {}| = {worst:.2e} over {} sequences (lengths {:?})",
            expected.transformers_version,
            want.sequences.len(),
            want.sequences
                .iter()
                .map(|s| s.ids.len())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn bf16_compute_stays_close() {
    let expected = expected();
    let name = "qwen2_tiny.q8_0.gguf";
    let model = load(&gguf_fixture(name), ComputeDtype::BF16);
    for seq in &expected.models[name].sequences {
        let got = model.token_logprobs(&[&seq.ids]).unwrap();
        let diff = max_abs_diff(&got[0], &seq.logprobs);
        assert!(diff < 0.5, "{name} bf16: max |diff| {diff}");
    }
}

#[test]
fn configs_come_from_the_metadata() {
    let f = GgufFile::open(gguf_fixture("llama_gqa.mixed.gguf")).unwrap();
    let c = config_from_gguf(&f).unwrap();
    assert_eq!(c.model_type, "llama");
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers
        ),
        (384, 64, 160, 2)
    );
    assert_eq!(
        (c.num_attention_heads, c.num_kv_heads(), c.head_dim()),
        (8, 2, 8)
    );
    assert!(!c.tie_word_embeddings());
    assert!(!c.qkv_bias() && !c.mlp_bias());
    assert_eq!(c.rope_theta(), 10000.0);
    assert_eq!(c.rms_norm_eps(), f64::from(1e-5f32));
    assert_eq!(c.max_position_embeddings(), 512);
    assert_eq!((c.bos_token_id, c.eos_token_ids()), (Some(0), vec![4]));
    assert_eq!(c.pad_token_id, Some(2));
    assert_eq!(c.stored_dtype(), Some("float32"));

    let f = GgufFile::open(gguf_fixture("qwen2_tiny.q8_0.gguf")).unwrap();
    let c = config_from_gguf(&f).unwrap();
    assert_eq!(c.model_type, "qwen2");
    assert_eq!(
        (c.num_attention_heads, c.num_kv_heads(), c.head_dim()),
        (4, 2, 16)
    );
    assert_eq!(c.intermediate_size, 96);
    assert!(c.tie_word_embeddings() && c.qkv_bias() && !c.o_bias());
    assert_eq!(c.rope_theta(), 1e6);
    assert_eq!(c.rms_norm_eps(), f64::from(1e-6f32));
    assert_eq!(c.sliding_window(), None);

    let chatml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cdr-prompt/templates/chatml.jinja"),
    )
    .unwrap();
    assert_eq!(chat_template(&f).as_deref(), Some(chatml.as_str()));
}

/// Converts a source's tensor to f32 values.
fn f32_tensor(source: &dyn WeightSource, name: &str) -> Option<TensorData> {
    source
        .with_tensor(name, &mut |raw| Ok(convert(&raw, ComputeDtype::F32)))
        .unwrap()
}

#[test]
fn f32_gguf_serves_exactly_the_safetensors_weights() {
    // The llama GGUF stores q_proj / k_proj rows in llama.cpp's rotary order; served, every
    // tensor must equal the original Hugging Face checkpoint bit for bit.
    let st = SafetensorsWeights::open_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_gqa"),
    )
    .unwrap();
    let gguf = GgufWeights::open(gguf_fixture("llama_gqa.f32.gguf")).unwrap();
    assert_eq!(gguf.names(), st.names());
    for name in st.names() {
        assert!(gguf.contains(&name), "{name}");
        let want = f32_tensor(&st, &name).unwrap();
        let got = f32_tensor(&gguf, &name).unwrap();
        assert_eq!(got.shape, want.shape, "{name}");
        assert_eq!(got.as_bytes(), want.as_bytes(), "{name} differs");
    }

    // The stored rows really are permuted: raw row g is HF row unpermute_row(g).
    let file = gguf.file();
    let raw = file.dequantize("blk.1.attn_k.weight").unwrap().unwrap();
    let hf = f32_tensor(&st, "model.layers.1.self_attn.k_proj.weight").unwrap();
    let hf = hf.as_slice::<f32>().unwrap();
    let (rows, cols, head_dim) = (16, 64, 8);
    assert_ne!(&raw[..], hf, "stored K rows should be permuted");
    for g in 0..rows {
        let r = unpermute_row(g, head_dim);
        assert_eq!(
            &raw[g * cols..(g + 1) * cols],
            &hf[r * cols..(r + 1) * cols]
        );
    }
}

#[test]
fn quantized_gguf_serves_dequantized_unpermuted_weights() {
    // Each tensor of the mixed file is near the original weights (quantization error only).
    let st = SafetensorsWeights::open_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_gqa"),
    )
    .unwrap();
    let gguf = GgufWeights::open(gguf_fixture("llama_gqa.mixed.gguf")).unwrap();
    for name in st.names() {
        let want = f32_tensor(&st, &name).unwrap();
        let got = f32_tensor(&gguf, &name).unwrap();
        assert_eq!(got.shape, want.shape, "{name}");
        let (w, g) = (
            want.as_slice::<f32>().unwrap(),
            got.as_slice::<f32>().unwrap(),
        );
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = max_abs_diff(w, g);
        // 4-bit types: about scale / 16 at worst; a wrong row order would be off by ~scale.
        assert!(
            err <= scale / 8.0,
            "{name}: max error {err} (scale {scale})"
        );
    }
}

#[test]
fn names_map_both_ways() {
    for (hf, gguf) in [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
        (
            "model.layers.0.self_attn.q_proj.weight",
            "blk.0.attn_q.weight",
        ),
        (
            "model.layers.12.self_attn.k_proj.bias",
            "blk.12.attn_k.bias",
        ),
        ("model.layers.3.self_attn.v_proj.bias", "blk.3.attn_v.bias"),
        (
            "model.layers.3.self_attn.o_proj.weight",
            "blk.3.attn_output.weight",
        ),
        (
            "model.layers.7.mlp.gate_proj.weight",
            "blk.7.ffn_gate.weight",
        ),
        ("model.layers.7.mlp.up_proj.weight", "blk.7.ffn_up.weight"),
        (
            "model.layers.7.mlp.down_proj.weight",
            "blk.7.ffn_down.weight",
        ),
        (
            "model.layers.1.input_layernorm.weight",
            "blk.1.attn_norm.weight",
        ),
        (
            "model.layers.1.post_attention_layernorm.weight",
            "blk.1.ffn_norm.weight",
        ),
    ] {
        assert_eq!(hf_to_gguf_name(hf).as_deref(), Some(gguf), "{hf}");
        assert_eq!(gguf_to_hf_name(gguf).as_deref(), Some(hf), "{gguf}");
    }
    for bad in [
        "model.layers.x.self_attn.q_proj.weight",
        "model.layers.01.self_attn.q_proj.weight",
        "model.layers.1.self_attn.q_proj.scale",
        "model.layers.1.self_attn.rotary_emb.inv_freq",
        "model.layers.",
        "lm_head.bias",
    ] {
        assert_eq!(hf_to_gguf_name(bad), None, "{bad}");
    }
    assert_eq!(gguf_to_hf_name("rope_freqs.weight"), None);
    assert_eq!(gguf_to_hf_name("blk.01.attn_q.weight"), None);

    let qwen = GgufWeights::open(gguf_fixture("qwen2_tiny.f32.gguf")).unwrap();
    assert!(!qwen.contains("lm_head.weight"), "tied: no output.weight");
    assert!(qwen.contains("model.layers.1.self_attn.k_proj.bias"));
    assert!(!qwen.contains("model.layers.2.self_attn.k_proj.bias"));
    assert!(
        qwen.with_tensor("lm_head.weight", &mut |_| unreachable!())
            .unwrap()
            .is_none()
    );
    assert_eq!(qwen.location(), gguf_fixture("qwen2_tiny.f32.gguf"));
}

#[test]
fn qwen2_is_served_unpermuted() {
    // qwen2 GGUFs keep the Hugging Face row order: served equals stored.
    let gguf = GgufWeights::open(gguf_fixture("qwen2_tiny.f32.gguf")).unwrap();
    for name in [
        "blk.0.attn_q.weight",
        "blk.1.attn_k.weight",
        "blk.0.attn_q.bias",
    ] {
        let stored = gguf.file().dequantize(name).unwrap().unwrap();
        let hf = gguf_to_hf_name(name).unwrap();
        let served = f32_tensor(&gguf, &hf).unwrap();
        assert_eq!(served.as_slice::<f32>().unwrap(), &stored[..], "{name}");
    }
}

/// Rewrites a fixture with `edit` applied to its builder; returns the new file.
fn edited(name: &str, dir: &Path, edit: impl FnOnce(&mut Builder)) -> std::path::PathBuf {
    let file = GgufFile::open(gguf_fixture(name)).unwrap();
    let mut b = Builder::from_file(&file);
    edit(&mut b);
    let path = dir.join(name);
    b.write(&path);
    path
}

fn load_err(path: &Path) -> ModelError {
    let weights = match GgufWeights::open(path) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let config = match config_from_gguf(weights.file()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let device = Default::default();
    match LlamaForCausalLm::<Cpu>::load(
        &Weights::new(&weights, &device, ComputeDtype::F32),
        &config,
    ) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn broken_checkpoints_give_named_errors() {
    let dir = tempfile::tempdir().unwrap();

    // A missing tensor is reported under its Hugging Face name.
    let path = edited("qwen2_tiny.q8_0.gguf", dir.path(), |b| {
        b.tensors.retain(|t| t.name != "blk.1.ffn_up.weight")
    });
    let err = load_err(&path);
    assert!(matches!(err, ModelError::MissingTensor { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("model.layers.1.mlp.up_proj.weight"),
        "{err}"
    );

    // A tensor of the wrong shape.
    let path = edited("qwen2_tiny.f32.gguf", dir.path(), |b| {
        let t = b
            .tensors
            .iter_mut()
            .find(|t| t.name == "blk.0.attn_v.bias")
            .unwrap();
        t.dims = vec![16];
        t.data.truncate(64);
    });
    let err = load_err(&path);
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("model.layers.0.self_attn.v_proj.bias"),
        "{err}"
    );

    // A type cdr cannot dequantize (IQ4_NL has Q4_0's block size, so the directory is valid).
    let path = edited("llama_gqa.mixed.gguf", dir.path(), |b| {
        let t = b
            .tensors
            .iter_mut()
            .find(|t| t.name == "blk.0.attn_q.weight")
            .unwrap();
        assert_eq!(t.type_id, GgmlType::Q4_0.id());
        t.type_id = GgmlType::IQ4_NL.id();
    });
    let err = load_err(&path);
    assert!(
        matches!(err, ModelError::UnsupportedDtype { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("IQ4_NL") && msg.contains("blk.0.attn_q.weight"),
        "{msg}"
    );

    // An unknown type id: the file opens, the tensor cannot be loaded.
    let path = edited("llama_gqa.mixed.gguf", dir.path(), |b| {
        let t = b
            .tensors
            .iter_mut()
            .find(|t| t.name == "blk.1.ffn_gate.weight")
            .unwrap();
        t.type_id = 200;
    });
    let err = load_err(&path);
    assert!(err.to_string().contains("ggml type 200"), "{err}");

    // Unsupported architectures and missing hyperparameters.
    let path = edited("qwen2_tiny.f32.gguf", dir.path(), |b| {
        for (k, v) in &mut b.metadata {
            if k == "general.architecture" {
                *v = MetadataValue::String("gemma2".into());
            }
        }
    });
    let err = load_err(&path);
    assert!(matches!(err, ModelError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("gemma2"), "{err}");
    let file = GgufFile::open(&path).unwrap();
    assert!(
        config_from_gguf(&file)
            .unwrap_err()
            .to_string()
            .contains("gemma2")
    );

    let path = edited("llama_gqa.f32.gguf", dir.path(), |b| {
        b.metadata.retain(|(k, _)| k != "llama.block_count")
    });
    let err = load_err(&path);
    assert!(err.to_string().contains("llama.block_count"), "{err}");

    // Partial rotary, unsupported rope scaling, Llama 3.1 frequency factors, vocab mismatch.
    type Edit = Box<dyn Fn(&mut Builder)>;
    let cases: [(&str, Edit, &str); 4] = [
        (
            "rope.dimension_count",
            Box::new(|b: &mut Builder| {
                for (k, v) in &mut b.metadata {
                    if k == "llama.rope.dimension_count" {
                        *v = MetadataValue::U32(4);
                    }
                }
                b.metadata
                    .push(("llama.attention.key_length".into(), MetadataValue::U32(8)));
            }),
            "partial rotary",
        ),
        (
            "rope.scaling.type",
            Box::new(|b: &mut Builder| {
                b.metadata.push((
                    "llama.rope.scaling.type".into(),
                    MetadataValue::String("yarn".into()),
                ))
            }),
            "yarn",
        ),
        (
            "rope_freqs",
            Box::new(|b: &mut Builder| {
                *b = std::mem::take(b).f32_tensor("rope_freqs.weight", &[4], &[1.0; 4])
            }),
            "rope_freqs",
        ),
        (
            "tokens",
            Box::new(|b: &mut Builder| {
                for (k, v) in &mut b.metadata {
                    if k == "tokenizer.ggml.tokens"
                        && let MetadataValue::Array(cdr_models::gguf::MetadataArray::String(t)) = v
                    {
                        t.pop();
                    }
                }
            }),
            "383 tokens",
        ),
    ];
    for (what, edit, needle) in cases {
        let path = edited("llama_gqa.f32.gguf", dir.path(), |b| edit(b));
        let file = GgufFile::open(&path).unwrap();
        let err = config_from_gguf(&file).unwrap_err().to_string();
        assert!(err.contains(needle), "{what}: {err}");
    }

    // Linear rope scaling is carried over.
    let path = edited("llama_gqa.f32.gguf", dir.path(), |b| {
        b.metadata.push((
            "llama.rope.scaling.type".into(),
            MetadataValue::String("linear".into()),
        ));
        b.metadata
            .push(("llama.rope.scaling.factor".into(), MetadataValue::F32(4.0)));
    });
    let config = config_from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(
        config.rope_scaling_kind(),
        Ok(cdr_models::RopeScaling::Linear { factor: 4.0 })
    );
}

#[test]
fn rewritten_fixture_round_trips() {
    // Parsing and re-writing a fixture gives a file that parses to the same contents.
    let dir = tempfile::tempdir().unwrap();
    let original = GgufFile::open(gguf_fixture("qwen2_tiny.q8_0.gguf")).unwrap();
    let path = edited("qwen2_tiny.q8_0.gguf", dir.path(), |_| {});
    let copy = GgufFile::open(&path).unwrap();
    assert!(original.metadata().eq(copy.metadata()));
    assert_eq!(original.tensors(), copy.tensors());
    assert_eq!(original.data_offset(), copy.data_offset());
    // The test writer reproduces gguf-py's layout byte for byte, except that gguf-py also pads
    // after the last tensor.
    let (mine, theirs) = (
        std::fs::read(&path).unwrap(),
        std::fs::read(gguf_fixture("qwen2_tiny.q8_0.gguf")).unwrap(),
    );
    assert_eq!(&theirs[..mine.len()], &mine[..]);
    assert!(theirs[mine.len()..].iter().all(|&b| b == 0));
}
