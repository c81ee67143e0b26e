#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]
// Data and file contents are untrusted: a bad row or checkpoint must be an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Length-grouped batch planning; public for cdr's benchmarks only.
#[doc(hidden)]
pub mod batch;
pub mod best_of_n;
pub mod cache;
pub mod encode;
pub mod engine;
mod error;
pub mod eval;
mod generation;
pub mod length_control;
mod llm_router;
pub mod pairs;
mod remote;
pub mod reward;
pub mod rewardbench;
pub mod rewardbench2;
mod router;
mod scorer;

pub use cache::{CacheKey, CacheTable, LogprobCache, ModelId};
pub use cdr_data::Message;
pub use cdr_models::{ComputeDtype, Device};
pub use cdr_prompt::{ChatTemplate, Customization};
pub use encode::Limits;
pub use error::{CoreError, Result};
pub use generation::{Policy, SampleOptions, sample_seed};
pub use llm_router::{LlmRoute, LlmRouter, parse_label};
pub use remote::{RemoteModel, RemoteOptions, parse_prompt_logprobs};
pub use reward::Reduction;
pub use router::LikelihoodRouter;
pub use scorer::{
    DensityRatio, Item, ItemScore, KeyedText, ModelScorer, PassStats, Prepared, ScoreOptions,
    TextLogprobs, TokenizerPolicy, model_template, pair_template, render_item,
};
