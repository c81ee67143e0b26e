//! Shared helpers for the fixture tests.
#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Expected {
    pub name: String,
    pub transformers_version: String,
    /// Max |transformers bf16 - transformers f32| over the fixture's tokens.
    pub transformers_bf16_max_abs_diff: f32,
    pub sequences: Vec<ExpectedSequence>,
    /// Rope fixtures only: what transformers' rotary module uses for a forward of each length.
    #[serde(default)]
    pub rope: Vec<RopeReference>,
    /// Rope fixtures only: every sequence's log-probs from one right-padded batch forward.
    #[serde(default)]
    pub batch_logprobs: Vec<Vec<f32>>,
    /// Rope fixtures only: the longest sequence decoded on the cache one token a step after a prefill.
    #[serde(default)]
    pub cached: Option<CachedReference>,
}

impl Expected {
    /// Every sequence's token ids.
    pub fn ids(&self) -> Vec<&[u32]> {
        self.sequences.iter().map(|s| s.ids.as_slice()).collect()
    }
}

#[derive(Debug, Deserialize)]
pub struct RopeReference {
    pub seq_len: usize,
    pub inv_freq: Vec<f32>,
    pub attention_scaling: f64,
}

#[derive(Debug, Deserialize)]
pub struct CachedReference {
    pub prefill: usize,
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct ExpectedSequence {
    pub text: Option<String>,
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
}

pub const FIXTURES: [&str; 6] = [
    "llama_gqa",
    "llama3_tied",
    "mistral_sw",
    "llama_sharded",
    "qwen2_tiny",
    "qwen2_sw",
];

/// One tiny Llama per scaled rope type (tools/make_fixtures.py `ROPE_FIXTURES`). Kept apart from
/// [`FIXTURES`]: for dynamic and longrope a cached decode or a padded batch legitimately differs
/// from the full forward of each sequence alone, as in transformers.
pub const ROPE_FIXTURES: [&str; 4] = [
    "llama_yarn",
    "llama_longrope",
    "llama_dynamic",
    "llama_linear",
];

/// A fixture model, f32 on the CPU.
pub fn load_fixture(name: &str) -> cdr_models::LlamaForCausalLm<cdr_models::backend::Cpu> {
    cdr_models::ModelDir::new(fixture_dir(name))
        .load(&Default::default(), cdr_models::LoadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

pub fn expected(name: &str) -> Expected {
    let path = fixture_dir(name).join("expected.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tools/make_fixtures.py)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
