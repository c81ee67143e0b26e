#![doc = include_str!("../README.md")]
// Data and file contents are untrusted: a bad row or checkpoint must be an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
pub mod backend;
pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod llama;
pub mod logprobs;
pub mod memory;
// A build with no backend (the fuzz targets read checkpoints only) has no models to run.
#[cfg(any(feature = "cpu", feature = "cuda", feature = "wgpu"))]
pub mod model;
pub mod rope;
pub mod safetensors;
pub mod sampling;
pub mod tokenizer;
pub mod weights;

pub use cache::KvCache;
pub use checkpoint::{EmbeddedTemplate, LoadOptions, ModelDir, load_model, resolve_model};
pub use config::{Architecture, Config};
pub use device::Device;
pub use error::{ModelError, Result};
pub use generate::{
    FinishReason, GenerateOptions, Generation, Generator, SamplingDefaults,
    model_sampling_defaults, model_stop_ids,
};
pub use llama::LlamaForCausalLm;
pub use logprobs::ScoreSpan;
#[cfg(any(feature = "cpu", feature = "cuda", feature = "wgpu"))]
pub use model::{Model, ModelGenerator};
pub use sampling::Sampling;
pub use tokenizer::{Tokenizer, load_tokenizer};
pub use weights::{ComputeDtype, StoredDtype, WeightSource, Weights};
