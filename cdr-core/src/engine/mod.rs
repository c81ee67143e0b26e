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

mod generate;
mod jobs;
mod logprobs;
mod passes;
mod records;
mod reporter;
mod routing;
mod run;
mod search;
mod settings;

pub use generate::{
    GenerateSettings, GenerateSummary, GeneratedRow, generate_file, generated_path,
};
pub use jobs::{
    AnnotateSummary, FileSummary, Input, LengthControlSummary, Output, annotate_file,
    annotate_length_controlled, eval_file, eval_rewardbench2_file, report, report_multi,
    score_file, scores_path,
};
pub use logprobs::{
    LogprobsPass, LogprobsSettings, LogprobsSummary, ResponseLogprobs, RowLogprobs, logprobs_file,
    logprobs_rows,
};
pub use passes::{PassOptions, Rendering, Texts, all_cached, score_pass};
pub use records::{
    EvalReport, MultiScore, PairScore, RESULTS_MODEL_TYPE, ResponsesScore, preference_pair,
    results_name, tally, tally_multi,
};
pub use reporter::{Reporter, Silent};
pub use routing::{
    Routed, Router, RouterCompute, RowInfo, customization, customize_rows, route, router,
};
pub use run::{Engine, Pass, RunStats, ScoredRow, cache_table};
pub use search::{
    ModelEntry, PairEntry, PairsReport, PassEntry, Search, SearchSettings, SkippedEntry,
    model_name, search_pairs,
};
pub use settings::{
    PairSettings, RemoteBackend, RouterKind, Routing, RunSettings, ScoringSettings,
};
