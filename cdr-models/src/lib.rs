//! Llama-family causal language models on [burn], loaded from Hugging Face checkpoints, computing
//! per-token log-probabilities that match transformers.
//!
//! - [`Config`] reads `config.json` in all the forms transformers writes (nested `rope_parameters`,
//!   `rope_scaling` llama3, explicit `head_dim`, `eos_token_id` int or list, `dtype`/`torch_dtype`).
//! - [`ModelDir`] loads `model.safetensors` or a sharded checkpoint, memory-mapped, converting each
//!   tensor to the compute dtype ([`ComputeDtype`]) as it goes.
//! - [`LlamaForCausalLm`] is one decoder for Llama, Mistral (sliding window) and Qwen2 (q/k/v bias),
//!   generic over the burn backend; [`LlamaForCausalLm::score_spans`] is the batched scoring
//!   forward.
//! - [`Model`] is that decoder on a run-time [`Device`] (cpu, cuda:N, wgpu), so the crates above
//!   this one name no burn type.
//!
//! ```no_run
//! use cdr_models::{Device, LoadOptions, Model, ModelDir};
//!
//! # fn main() -> Result<(), cdr_models::ModelError> {
//! let dir = ModelDir::new("path/to/model");
//! let tokenizer = dir.tokenizer()?;
//! let model = Model::load(&dir, &Device::Cpu, LoadOptions::default())?;
//! let ids = tokenizer.encode("Hello there", false).map_err(|e| cdr_models::ModelError::Input(e.to_string()))?;
//! let logprobs = model.token_logprobs(&[ids.get_ids()])?;
//! println!("{:?}", logprobs[0]);
//! # Ok(())
//! # }
//! ```

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
