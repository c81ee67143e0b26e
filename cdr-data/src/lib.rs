#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// Data and file contents are untrusted: a bad row or checkpoint must be an error, not a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod arrow_json;
mod error;
mod fields;
mod format;
mod hub;
mod id;
mod json;
mod jsonl;
mod multi;
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

pub use cdr_types::{Message, ROLES, draw};
pub use error::{DataError, Position, Result};
pub use fields::Fields;
pub use format::Format;
pub use hub::{
    DEFAULT_SPLIT, DatasetSplit, dataset_dir_file, input_split, is_dataset_dir, write_dataset_card,
};
pub use multi::{MultiRow, NUM_CORRECT, has_multi_rows, read_multi};
pub use pair::PreferencePair;
pub use prompts::{PromptRow, read_prompts};
pub use read::{
    ReadOptions, ReadOutcome, Skipped, read_best_of_n, read_pairwise, read_records, read_rows,
    rows_from_values,
};
pub use row::{BestOfNRow, PairwiseRow, Row};
pub use shard::{MergeSummary, Shard, ShardError, ShardSource, merge, read_ids};
pub use write::{RecordWriter, WriteOptions, journal_path};
