//! Flags → the library's settings, and the printer that reports a run on stderr.

use std::path::Path;

use anyhow::Context;
use cdr_core::engine::{
    Engine, FileSummary, Input, Output, PairSettings, Reporter, Routing, RunSettings, RunStats,
    ScoringSettings,
};
use cdr_core::{DensityRatio, Limits, Reduction, TokenizerPolicy};
use cdr_data::{Fields, ReadOptions, Shard};
use tracing::warn;

use crate::cli::{CustomizeArgs, IoArgs, ModelArgs, ReductionArg, RunArgs, ScoringArgs};
use crate::progress::Progress;

pub fn read_options(io: &IoArgs) -> ReadOptions {
    ReadOptions {
        format: None,
        fields: Fields {
            id: io.id_field.clone(),
            prompt: io.prompt_field.clone(),
            chosen: io.chosen_field.clone(),
            rejected: io.rejected_field.clone(),
            responses: io.responses_field.clone(),
            subset: io.subset_field.clone(),
            domain: io.domain_field.clone(),
            messages: io.messages_field.clone(),
        },
        skip_invalid: io.skip_invalid,
    }
}

pub fn input(io: &IoArgs) -> Input {
    Input {
        path: io.input.clone(),
        read: read_options(io),
    }
}

pub fn output(io: &IoArgs, path: &Path, shard: Option<Shard>) -> Output {
    Output {
        path: path.to_path_buf(),
        fresh: io.fresh,
        shard,
    }
}

/// `--template`, `--dtype`, the limits, `--reduction`, the cache and the compute flags as the
/// library's scoring settings.
pub fn scoring_settings(s: &ScoringArgs) -> anyhow::Result<ScoringSettings> {
    let dtype = if s.compute.dtype.eq_ignore_ascii_case("auto") {
        None
    } else {
        Some(
            s.compute
                .dtype
                .parse()
                .map_err(anyhow::Error::msg)
                .context("--dtype")?,
        )
    };
    if s.max_prompt_tokens == 0 || s.max_response_tokens == 0 {
        anyhow::bail!("--max-prompt-tokens and --max-response-tokens must be positive");
    }
    Ok(ScoringSettings {
        device: s.compute.device,
        dtype,
        template: s.template.clone(),
        limits: Limits {
            max_prompt_tokens: s.max_prompt_tokens,
            max_response_tokens: s.max_response_tokens,
        },
        reduction: match s.reduction {
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::Mean => Reduction::Mean,
        },
        max_batch_tokens: s.compute.max_batch_tokens,
        one_model_at_a_time: s.compute.one_model_at_a_time.then_some(true),
        tokenizer_policy: TokenizerPolicy::Identical,
        cache: s.cache.dir(false),
    })
}

pub fn routing(c: &CustomizeArgs) -> Routing {
    Routing {
        customize: c.customize.clone(),
        router: c.router.into(),
        router_model: c.router_model.clone(),
        calibrate: c.router_calibrate,
    }
}

/// The settings of `cdr score`, `eval` and `annotate`.
pub fn run_settings(args: &RunArgs) -> anyhow::Result<RunSettings> {
    let m: &ModelArgs = &args.models;
    // Checked here so the error names the flag.
    cdr_models::resolve_model(&m.strong).context("--strong")?;
    cdr_models::resolve_model(&m.weak).context("--weak")?;
    let mut pair = PairSettings {
        strong: m.strong.clone(),
        weak: m.weak.clone(),
        scoring: scoring_settings(&m.scoring)?,
    };
    if m.allow_tokenizer_mismatch {
        warn!("--allow-tokenizer-mismatch: each model scores its own tokenization of the text");
        pair.scoring.tokenizer_policy = TokenizerPolicy::Separate;
    }
    Ok(RunSettings {
        pair,
        routing: routing(&args.customize),
        chunk_rows: args.io.chunk_rows,
        skip_invalid: args.io.skip_invalid,
    })
}

/// Loads the pair of a scoring command, reporting on `printer`.
pub fn load_engine(args: &RunArgs, printer: &mut Printer) -> anyhow::Result<Engine> {
    let settings = run_settings(args)?;
    Engine::load(settings, printer).map_err(with_hint)
}

/// A row error with the flag that would skip it.
pub fn with_hint(e: cdr_core::CoreError) -> anyhow::Error {
    let hint = match e.cause() {
        cdr_core::CoreError::TokenizerMismatch { .. } => {
            "--allow-tokenizer-mismatch tokenizes separately for each model; \
             --skip-invalid continues past bad rows"
        }
        _ if matches!(e, cdr_core::CoreError::Row { .. }) => {
            "use --skip-invalid to continue past bad rows"
        }
        _ => return e.into(),
    };
    anyhow::anyhow!("{e} ({hint})")
}

/// The one place a run writes to stderr: its progress bar (or log lines), notices and
/// summary.
pub struct Printer {
    quiet: bool,
    progress: Option<Progress>,
    /// Tokens and seconds of the last finished stage, for the summary's rate.
    last: (usize, f64),
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            progress: None,
            last: (0, 0.0),
        }
    }

    /// Tokens and seconds of the last finished stage.
    pub fn last_stage(&self) -> (usize, f64) {
        self.last
    }

    /// The summary of a scoring run.
    pub fn summary(&self, stats: &RunStats, read_skipped: usize) {
        let (tokens, secs) = self.last;
        eprintln!(
            "cdr: {} rows scored ({} already done), {} truncated responses, {} rows skipped, {:.0} model tokens/s (strong + weak forward passes){}",
            stats.scored_rows,
            stats.resumed,
            stats.truncated_items,
            stats.failed_rows.len() + read_skipped,
            tokens as f64 / secs.max(1e-9),
            peak_rss()
        );
        for (id, why) in &stats.failed_rows {
            eprintln!("  skipped row `{id}`: {why}");
        }
    }

    /// [`Self::summary`] of a file run.
    pub fn file_summary(&self, s: &FileSummary) {
        self.summary(&s.stats, s.read_skipped);
    }

    /// Says what the log-prob cache answered, when the run used one.
    pub fn cache_summary(&self, pair: &DensityRatio) {
        if let Some((s, w)) = pair.cache_stats() {
            eprintln!(
                "cdr: log-prob cache: strong {} cached, {} computed; weak {} cached, {} computed",
                s.cached, s.computed, w.cached, w.computed
            );
        }
    }
}

impl Reporter for Printer {
    fn begin(&mut self, stage: &str, rows: usize) {
        self.end();
        self.progress = Some(Progress::new(rows, stage, self.quiet));
    }

    fn tokens(&mut self, n: usize) {
        if let Some(p) = self.progress.as_mut() {
            p.tokens(n);
        }
    }

    fn rows(&mut self, n: usize) {
        if let Some(p) = self.progress.as_ref() {
            p.rows(n);
        }
    }

    fn end(&mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
            self.last = (p.total_tokens(), p.elapsed_secs());
        }
    }

    fn notice(&mut self, text: &str) {
        eprintln!("cdr: {text}");
    }
}

/// `, peak RSS X GiB` where the OS reports it: what a run needed, for sizing machines.
pub fn peak_rss() -> String {
    cdr_models::memory::peak_rss_bytes()
        .map(|b| format!(", peak RSS {:.2} GiB", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_default()
}
