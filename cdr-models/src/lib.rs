#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
// Data and file contents are untrusted: a bad row or checkpoint must be an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// The documented surface is what this file re-exports, plus `memory`. The other public modules
// are the generic, backend-typed layer under [`Model`]: cdr's own benchmarks, parity examples,
// fuzz targets and tests use them, so they stay reachable, hidden from the docs.
mod adapter;
#[doc(hidden)]
pub mod backend;
#[doc(hidden)]
pub mod cache;
mod checkpoint;
mod config;
mod device;
mod error;
mod generate;
#[doc(hidden)]
pub mod gguf;
#[doc(hidden)]
pub mod kernels;
#[doc(hidden)]
pub mod llama;
mod logprobs;
pub mod memory;
// A build with no backend (the fuzz targets read checkpoints only) has no models to run.
#[cfg(any(feature = "cpu", feature = "cuda", feature = "wgpu"))]
mod model;
mod ranked;
#[doc(hidden)]
pub mod rope;
#[doc(hidden)]
pub mod safetensors;
mod sampling;
mod tokenizer;
#[doc(hidden)]
pub mod weights;

pub use adapter::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, Adapter, is_adapter_dir, set_fallback_base,
};
pub use checkpoint::{EmbeddedTemplate, LoadOptions, ModelDir, resolve_model};
pub use config::{Architecture, Config, RopeParameters, RopeScaling, TokenIds};
pub use device::Device;
pub use error::{ModelError, Result};
pub use generate::{
    FinishReason, GenerateOptions, Generation, SamplingDefaults, model_sampling_defaults,
    model_stop_ids,
};
pub use logprobs::{MIN_SHARED_PREFIX, ScoreSpan};
#[cfg(any(feature = "cpu", feature = "cuda", feature = "wgpu"))]
pub use model::{Model, ModelGenerator};
pub use ranked::{RankedSpan, RankedToken};
pub use sampling::Sampling;
pub use tokenizer::{Tokenizer, load_tokenizer};
pub use weights::{ComputeDtype, StoredDtype};

// The generic layer's entry points, for the same internal users.
#[doc(hidden)]
pub use cache::KvCache;
#[doc(hidden)]
pub use checkpoint::load_model;
#[doc(hidden)]
pub use generate::Generator;
#[doc(hidden)]
pub use llama::LlamaForCausalLm;
#[doc(hidden)]
pub use sampling::candidates;
#[doc(hidden)]
pub use weights::{WeightSource, Weights};
