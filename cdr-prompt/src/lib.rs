#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// Data and file contents are untrusted: a bad row or checkpoint must be an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
mod builtin;
pub mod customize;
pub mod error;
mod jinja;
pub mod template;
pub mod tokenizer_config;

pub use builtin::names as builtin_names;
pub use customize::{Customization, CustomizeError, Customized, PRESETS};
// The hash lives in cdr-data, which also assigns rows to shards with it; one function, one
// definition, so exemplar draws and shard assignment can never drift apart.
pub use cdr_types::draw;
pub use error::{PromptError, Result};
pub use template::{ChatTemplate, RenderedPair};
pub use tokenizer_config::TokenizerConfig;
