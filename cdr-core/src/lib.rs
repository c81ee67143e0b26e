//! The customized density-ratio (CDR) reward: how much more a strong, well-aligned LLM likes a
//! response than a weak one does.
//!
//! `r(x, y) = Σ log S(y_t | x, y_<t) − Σ log W(y_t | x, y_<t)` over the response tokens, with both
//! models scoring one text rendered by the strong model's chat template. [`DensityRatio`] loads a
//! pair and scores [`Item`]s in length-aware batches; [`eval`] turns rewards into pairwise
//! decisions and accuracies, [`rewardbench`] into RewardBench section scores, and [`best_of_n`] into
//! DPO/SimPO pairs. [`cache`] keeps each model's log-prob sums on disk, so [`pairs`] can rank every
//! strong/weak pairing of several models from one scoring pass per model.
//!
//! ```
//! use cdr_core::{DensityRatio, Device, Item, Message, ScoreOptions};
//!
//! let fixtures = "../cdr-models/tests/fixtures";
//! let pair = DensityRatio::load(
//!     format!("{fixtures}/llama_gqa"),     // strong
//!     format!("{fixtures}/llama_sharded"), // weak
//!     &Device::Cpu,
//!     ScoreOptions::default(),
//! )?;
//! let question = vec![Message::user("What is 2 + 2?")];
//! let scores = pair.score(&[Item::new(question.clone(), "4."), Item::new(question, "Fish.")])?;
//! println!("reward(4.) = {:.3}, reward(Fish.) = {:.3}", scores[0].reward, scores[1].reward);
//! # Ok::<(), cdr_core::CoreError>(())
//! ```

#![forbid(unsafe_code)]
// Data and file contents are untrusted: a bad row or checkpoint must be an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
pub mod batch;
pub mod best_of_n;
pub mod cache;
pub mod encode;
pub mod engine;
pub mod error;
pub mod eval;
pub mod generation;
pub mod llm_router;
pub mod pairs;
pub mod reward;
pub mod rewardbench;
pub mod router;
pub mod scorer;

pub use cache::{CacheKey, CacheTable, LogprobCache, ModelId};
pub use cdr_data::Message;
pub use cdr_models::{ComputeDtype, Device};
pub use cdr_prompt::{ChatTemplate, Customization};
pub use encode::Limits;
pub use error::{CoreError, Result};
pub use generation::{Policy, SampleOptions, sample_seed};
pub use llm_router::{LlmRoute, LlmRouter, parse_label};
pub use reward::Reduction;
pub use router::LikelihoodRouter;
pub use scorer::{
    DensityRatio, Item, ItemScore, KeyedText, ModelScorer, PassStats, Prepared, ScoreOptions,
    TextLogprobs, TokenizerPolicy, model_template, render_item,
};
