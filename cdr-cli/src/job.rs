//! The scoring loop shared by `score`, `eval` and `annotate`: rows in chunks, prepared per row,
//! scored in token-budgeted batches, written in input order, resumable by row id.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, bail};
use cdr_core::backend::Backend;
use cdr_core::{
    CacheKey, CacheTable, DensityRatio, Item, ItemScore, Limits, LogprobCache, Reduction,
    ScoreOptions, TokenizerPolicy,
};
use cdr_data::{BestOfNRow, Fields, PairwiseRow, ReadOptions, Row, WriteOptions};
use tracing::warn;

use crate::cli::{IoArgs, ModelArgs, ReductionArg, RunArgs, ScoringArgs};
use crate::progress::Progress;
use crate::routing::{self, RowInfo};

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

pub fn write_options(io: &IoArgs) -> WriteOptions {
    WriteOptions {
        fresh: io.fresh,
        ..WriteOptions::default()
    }
}

/// The scoring options `--template`, `--dtype`, the limits and `--reduction` ask for.
pub fn score_options(
    s: &ScoringArgs,
    tokenizer_policy: TokenizerPolicy,
    models: &[&Path],
) -> anyhow::Result<ScoreOptions> {
    let options = ScoreOptions {
        reduction: match s.reduction {
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::Mean => Reduction::Mean,
        },
        limits: Limits {
            max_prompt_tokens: s.max_prompt_tokens,
            max_response_tokens: s.max_response_tokens,
        },
        max_batch_tokens: s.compute.max_batch_tokens,
        dtype: s.compute.dtype_for(models)?,
        tokenizer_policy,
        template: s.template.clone(),
        one_model_at_a_time: s.compute.one_model_at_a_time.then_some(true),
    };
    if options.limits.max_prompt_tokens == 0 || options.limits.max_response_tokens == 0 {
        bail!("--max-prompt-tokens and --max-response-tokens must be positive");
    }
    Ok(options)
}

/// A loaded pair and where its models live (the cache fingerprints those files).
pub struct LoadedPair<B: Backend> {
    pub pair: DensityRatio<B>,
    pub strong: std::path::PathBuf,
    pub weak: std::path::PathBuf,
}

pub fn load_pair<B: Backend>(m: &ModelArgs, device: &B::Device) -> anyhow::Result<LoadedPair<B>> {
    let strong = cdr_models::resolve_model(&m.strong).context("--strong")?;
    let weak = cdr_models::resolve_model(&m.weak).context("--weak")?;
    let policy = if m.allow_tokenizer_mismatch {
        warn!("--allow-tokenizer-mismatch: each model scores its own tokenization of the text");
        TokenizerPolicy::Separate
    } else {
        TokenizerPolicy::Identical
    };
    let options = score_options(&m.scoring, policy, &[&strong, &weak])?;
    Ok(LoadedPair {
        pair: DensityRatio::load(&strong, &weak, device, options)?,
        strong,
        weak,
    })
}

/// `model`'s cache table for texts rendered with `template` and `customization` under `options`.
pub fn cache_table(
    cache: &LogprobCache,
    model: &Path,
    template: &cdr_core::ChatTemplate,
    customization: Option<&cdr_core::Customization>,
    options: &ScoreOptions,
) -> anyhow::Result<CacheTable> {
    let id = cache
        .model_id(model)
        .with_context(|| format!("fingerprinting {}", model.display()))?;
    let key = CacheKey::new(&id, options.dtype, template, customization, options.limits)?;
    let table = cache.table(&key)?;
    if table.dropped() > 0 {
        eprintln!(
            "cdr: {} corrupt entries in {} were dropped and will be recomputed",
            table.dropped(),
            table.path().display()
        );
    }
    Ok(table)
}

/// What a run did, for the summary line.
#[derive(Debug, Default)]
pub struct RunStats {
    pub resumed: usize,
    pub scored_rows: usize,
    pub truncated_items: usize,
    pub failed_rows: Vec<(String, String)>,
}

/// A row of any input shape, as the scoring loop sees it.
pub trait ScoredRow {
    fn info(&self) -> RowInfo<'_>;
    /// The responses to score, each in the row's conversation.
    fn items(&self) -> Vec<Item>;
}

impl ScoredRow for PairwiseRow {
    fn info(&self) -> RowInfo<'_> {
        RowInfo {
            id: &self.id,
            prompt: &self.prompt,
            domain: self.domain.as_deref(),
            subset: self.subset.as_deref(),
        }
    }

    fn items(&self) -> Vec<Item> {
        vec![
            Item::new(self.prompt.clone(), self.chosen.clone()),
            Item::new(self.prompt.clone(), self.rejected.clone()),
        ]
    }
}

impl ScoredRow for BestOfNRow {
    fn info(&self) -> RowInfo<'_> {
        RowInfo {
            id: &self.id,
            prompt: &self.prompt,
            domain: self.domain.as_deref(),
            subset: self.subset.as_deref(),
        }
    }

    fn items(&self) -> Vec<Item> {
        self.responses
            .iter()
            .map(|r| Item::new(self.prompt.clone(), r.clone()))
            .collect()
    }
}

impl ScoredRow for Row {
    fn info(&self) -> RowInfo<'_> {
        match self {
            Row::Pairwise(r) => r.info(),
            Row::BestOfN(r) => r.info(),
        }
    }

    fn items(&self) -> Vec<Item> {
        match self {
            Row::Pairwise(r) => r.items(),
            Row::BestOfN(r) => r.items(),
        }
    }
}

/// One scoring run: the loaded pair, the routed domains (when customizing) and the ids the
/// output already holds.
pub struct Run<'a, B: Backend> {
    pub pair: DensityRatio<B>,
    domains: Option<HashMap<String, String>>,
    done: HashSet<String>,
    args: &'a RunArgs,
}

impl<'a, B: Backend> Run<'a, B> {
    /// Loads the pair (with `--customize`) and routes the rows not yet in the output.
    pub fn start<R: ScoredRow>(
        args: &'a RunArgs,
        rows: &[R],
        done: HashSet<String>,
        device: &B::Device,
    ) -> anyhow::Result<Self> {
        let LoadedPair {
            pair,
            strong: strong_path,
            weak: weak_path,
        } = load_pair::<B>(&args.models, device)?;
        let pending: Vec<RowInfo<'_>> = rows
            .iter()
            .map(ScoredRow::info)
            .filter(|i| !done.contains(i.id))
            .collect();
        let routed = routing::customize_rows::<B>(
            &args.customize,
            &pending,
            Some((pair.strong(), pair.template())),
            device,
            pair.options(),
            &args.io.input,
            args.quiet,
        )?;
        let (pair, domains) = match routed {
            None => (pair, None),
            Some(r) => (pair.with_customization(r.customization), Some(r.domains)),
        };
        let pair = match args.models.scoring.cache.dir(false) {
            None => pair,
            Some(dir) => {
                let cache = LogprobCache::open(&dir)?;
                let (t, c, o) = (pair.template(), pair.customization(), pair.options());
                let strong = cache_table(&cache, &strong_path, t, c, o)?;
                let weak = cache_table(&cache, &weak_path, t, c, o)?;
                tracing::info!(dir = %dir.display(), "log-prob cache");
                pair.with_cache(strong, weak)
            }
        };
        Ok(Self {
            pair,
            domains,
            done,
            args,
        })
    }

    /// A progress bar over the rows still to score.
    pub fn progress<R: ScoredRow>(&self, rows: &[R], label: &str) -> Progress {
        let todo = rows
            .iter()
            .filter(|r| !self.done.contains(r.info().id))
            .count();
        Progress::new(todo, label, self.args.quiet)
    }

    /// The domain to report for a row: the routed one when customizing, else its own field.
    pub fn domain<R: ScoredRow>(&self, row: &R) -> Option<String> {
        let info = row.info();
        match &self.domains {
            Some(d) => d.get(info.id).cloned(),
            None => info.domain.map(str::to_string),
        }
    }

    /// Scores the rows not in the output yet, calling `emit` with each row and its item scores
    /// in input order, `--chunk-rows` rows per batch plan. A row whose items cannot be prepared
    /// is an error, or with `--skip-invalid` is reported and left out.
    pub fn score<R: ScoredRow>(
        &self,
        rows: &[R],
        progress: &mut Progress,
        mut emit: impl FnMut(&R, &[ItemScore]) -> anyhow::Result<()>,
    ) -> anyhow::Result<RunStats> {
        let io = &self.args.io;
        let mut stats = RunStats::default();
        let todo: Vec<&R> = rows
            .iter()
            .filter(|r| !self.done.contains(r.info().id))
            .collect();
        stats.resumed = rows.len() - todo.len();
        if stats.resumed > 0 {
            tracing::info!(
                rows = stats.resumed,
                "resuming: rows already in the output are skipped"
            );
        }
        for chunk in todo.chunks(io.chunk_rows.max(1)) {
            let mut kept = Vec::new();
            let mut prepared = Vec::new();
            let mut spans = Vec::new();
            for &row in chunk {
                let id = row.info().id;
                let domain = self.domains.as_ref().and_then(|d| d.get(id)).cloned();
                let attempt: Result<Vec<_>, _> = row
                    .items()
                    .into_iter()
                    .map(|i| self.pair.prepare(&i.in_row(id, domain.clone())))
                    .collect();
                match attempt {
                    Ok(p) => {
                        spans.push((prepared.len(), p.len()));
                        prepared.extend(p);
                        kept.push(row);
                    }
                    Err(e) if io.skip_invalid => {
                        warn!(id, "skipped: {e}");
                        stats.failed_rows.push((id.to_string(), e.to_string()));
                        progress.rows(1);
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!(
                                "{}: row `{id}` (use --skip-invalid to continue past bad rows)",
                                io.input.display()
                            )
                        });
                    }
                }
            }
            let scores = self
                .pair
                .score_prepared_with(&prepared, &mut |_, tokens| progress.tokens(tokens))?;
            for (row, (offset, n)) in kept.iter().zip(&spans) {
                let row_scores = &scores[*offset..offset + n];
                stats.truncated_items += row_scores.iter().filter(|s| s.truncated).count();
                emit(row, row_scores)?;
                stats.scored_rows += 1;
                progress.rows(1);
            }
        }
        Ok(stats)
    }
}

/// Says what the log-prob cache answered, when the run used one.
pub fn cache_summary<B: Backend>(pair: &DensityRatio<B>) {
    if let Some((s, w)) = pair.cache_stats() {
        eprintln!(
            "cdr: log-prob cache: strong {} cached, {} computed; weak {} cached, {} computed",
            s.cached, s.computed, w.cached, w.computed
        );
    }
}

pub fn summary(stats: &RunStats, progress: &Progress) {
    eprintln!(
        "cdr: {} rows scored ({} already done), {} truncated responses, {} rows skipped, {:.0} model tokens/s (strong + weak forward passes){}",
        stats.scored_rows,
        stats.resumed,
        stats.truncated_items,
        stats.failed_rows.len(),
        progress.total_tokens() as f64 / progress.elapsed_secs().max(1e-9),
        peak_rss()
    );
    for (id, why) in &stats.failed_rows {
        eprintln!("  skipped row `{id}`: {why}");
    }
}

/// `, peak RSS X GiB` where the OS reports it: what a run needed, for sizing machines.
pub fn peak_rss() -> String {
    cdr_models::memory::peak_rss_bytes()
        .map(|b| format!(", peak RSS {:.2} GiB", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_default()
}
