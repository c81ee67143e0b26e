//! Dataset IO for cdr: preference rows in, scored rows and preference pairs out.
//!
//! - **Reading** ([`read_rows`], [`read_pairwise`], [`read_best_of_n`]) accepts JSONL, JSON and
//!   Parquet files in the common preference-data layouts (plain strings, TRL conversational
//!   message lists, best-of-N `responses`, single-response `messages`, Anthropic HH
//!   `Human:`/`Assistant:` transcripts without a prompt column) and normalizes every row
//!   to "the conversation before the response" plus response texts ([`PairwiseRow`],
//!   [`BestOfNRow`]). Errors name the file, the line or row, and the field; with
//!   [`ReadOptions::skip_invalid`] bad rows are collected instead.
//! - **Writing** ([`RecordWriter`]) appends any `Serialize` record with an id, flushing each row,
//!   so a killed run loses at most the row in flight. Reopening an output resumes it: the ids
//!   already there are reported and a torn last row is cut away. Parquet outputs go through a
//!   JSONL journal and are converted on [`RecordWriter::finish`]. [`PreferencePair`] is the
//!   TRL DPO / SimPO record.
//!
//! This crate depends on no other cdr crate.
//!
//! ```
//! use cdr_data::{
//!     Message, PreferencePair, ReadOptions, RecordWriter, WriteOptions, read_pairwise,
//!     read_records,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let input = dir.path().join("prefs.jsonl");
//! std::fs::write(
//!     &input,
//!     concat!(
//!         r#"{"id": 7, "prompt": "Name a prime.", "chosen": "7", "rejected": "8"}"#, "\n",
//!         r#"{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],"#,
//!         r#" "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]}"#, "\n",
//!     ),
//! )?;
//!
//! let rows = read_pairwise(&input, &ReadOptions::default())?.rows;
//! assert_eq!(rows[0].id, "7");
//! assert_eq!(rows[0].prompt, vec![Message::user("Name a prime.")]);
//! assert_eq!(rows[1].id, "row-1"); // no id column: derived from the position
//! assert_eq!(rows[1].chosen, "Hello!");
//!
//! let output = dir.path().join("pairs.parquet");
//! let mut writer = RecordWriter::open(&output, &WriteOptions::default())?;
//! for row in &rows {
//!     if writer.contains(&row.id) {
//!         continue; // already written by an earlier, interrupted run
//!     }
//!     let pair = PreferencePair::new(&row.id, row.prompt.clone(), &row.chosen, &row.rejected, 1.5, -0.5);
//!     writer.write(&pair)?;
//! }
//! writer.finish()?;
//!
//! let pairs: Vec<PreferencePair> = read_records(&output, None)?;
//! assert_eq!(pairs.len(), 2);
//! assert_eq!(pairs[1].chosen, vec![Message::assistant("Hello!")]);
//!
//! // Opening again resumes: everything is already there.
//! let writer = RecordWriter::open(&output, &WriteOptions::default())?;
//! assert!(writer.contains("7") && writer.contains("row-1"));
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
// Data and file contents are untrusted: a bad row or checkpoint must be an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod arrow_json;
mod draw;
mod error;
mod fields;
mod format;
mod id;
mod json;
mod jsonl;
mod message;
mod normalize;
mod ordered_json;
mod pair;
mod parquet;
mod prompts;
mod read;
mod resume;
mod row;
mod shard;
mod transcript;
mod write;

pub use draw::draw;
pub use error::{DataError, Position, Result};
pub use fields::Fields;
pub use format::Format;
pub use message::{Message, ROLES};
pub use pair::PreferencePair;
pub use prompts::{PromptRow, read_prompts};
pub use read::{
    ReadOptions, ReadOutcome, Skipped, read_best_of_n, read_pairwise, read_records, read_rows,
    rows_from_values,
};
pub use row::{BestOfNRow, PairwiseRow, Row};
pub use shard::{MergeSummary, Shard, ShardError, ShardSource, merge, read_ids};
pub use write::{RecordWriter, WriteOptions, journal_path};
