//! The engine behind `cdr score`, `cdr eval` and `cdr annotate`, as a library: settings resolved
//! once ([`RunSettings`]), a loaded pair with its customization, router and log-prob cache
//! ([`Engine`]), rows scored in chunks and handed to the caller in input order
//! ([`Engine::score`]), file runs that resume by row id and split into shards ([`score_file`],
//! [`eval_file`], [`annotate_file`]), and progress reported to a [`Reporter`].
//!
//! ```
//! use cdr_core::engine::{Engine, Input, Output, PairSettings, RunSettings, Silent, eval_file};
//!
//! let fixtures = "../cdr-models/tests/fixtures";
//! let settings = RunSettings::new(PairSettings::new(
//!     format!("{fixtures}/llama_gqa"),
//!     format!("{fixtures}/llama_sharded"),
//! ));
//! let engine = Engine::load(settings, &mut Silent)?;
//! let out = tempfile::tempdir().map_err(cdr_core::CoreError::io("tempdir"))?;
//! let (report, _, _) = eval_file(
//!     &engine,
//!     &Input::new("../examples/code-pairs.jsonl"),
//!     Some(&Output::new(out.path().join("scored.jsonl"))),
//!     None,
//!     &mut Silent,
//! )?;
//! println!("accuracy {:.3} on {} rows", report.accuracy, report.rows);
//! # Ok::<(), cdr_core::CoreError>(())
//! ```

mod jobs;
mod records;
mod reporter;
mod routing;
mod run;
mod settings;

pub use jobs::{
    AnnotateSummary, FileSummary, Input, Output, annotate_file, eval_file, report, score_file,
};
pub use records::{EvalReport, PairScore, ResponsesScore, preference_pair, tally};
pub use reporter::{Reporter, Silent};
pub use routing::{Router, RouterCompute, RowInfo, customization, route, router};
pub use run::{Engine, Pass, RunStats, ScoredRow, cache_table};
pub use settings::{PairSettings, RouterKind, Routing, RunSettings};
