//! Prompts for density-ratio scoring: chat templates rendered exactly as transformers renders them.
//!
//! [`ChatTemplate`] compiles a model's Hugging Face Jinja `chat_template` (or a built-in one:
//! `chatml`, `llama3`, `mistral`, `llama2`) and renders conversations byte-identical to
//! `tokenizer.apply_chat_template(..., tokenize=False)`. [`ChatTemplate::render_pair`] renders a
//! prompt and the same prompt followed by a response, which is how the scorer finds where the
//! response starts.
//!
//! [`Customization`] tailors a conversation to its domain before rendering: a criteria system turn
//! and an in-context preference exemplar, from a TOML config or a preset (docs/customization.md).
//!
//! ```
//! use cdr_prompt::ChatTemplate;
//! use serde_json::json;
//!
//! let template = ChatTemplate::builtin("chatml")?;
//! let messages = [json!({"role": "user", "content": "2+2?"})];
//! let pair = template.render_pair(&messages, "4")?;
//! assert_eq!(pair.prompt, "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
//! assert_eq!(&pair.full[pair.response_start()..], "4<|im_end|>\n");
//! # Ok::<(), cdr_prompt::PromptError>(())
//! ```

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
