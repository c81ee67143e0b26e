//! The scoring loop shared by `score`, `eval` and `annotate`: rows in chunks, prepared per row,
//! scored in token-budgeted batches, written in input order, resumable by row id.

use std::path::Path;

use anyhow::{Context, bail};
use cdr_core::backend::Backend;
use cdr_core::{DensityRatio, Item, ItemScore, Limits, Reduction, ScoreOptions, TokenizerPolicy};
use cdr_data::{Fields, ReadOptions, WriteOptions};
use tracing::warn;

use std::collections::HashMap;

use crate::cli::{CustomizeArgs, IoArgs, ModelArgs, ReductionArg, RouterKind};
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

/// Row id -> routed domain.
pub type Domains = HashMap<String, String>;

/// Loads the pair with `--customize` applied, and routes the rows: the returned map gives each
/// row id its domain when customization is on (`None` otherwise).
pub fn load_pair_and_route<B: Backend>(
    m: &ModelArgs,
    c: &CustomizeArgs,
    rows: &[RowInfo<'_>],
    device: &B::Device,
    input: &Path,
    quiet: bool,
) -> anyhow::Result<(DensityRatio<B>, Option<Domains>)> {
    let pair = load_pair::<B>(m, device)?;
    let Some(custom) = routing::customization(c)? else {
        return Ok((pair, None));
    };
    let router = if c.router == RouterKind::Likelihood {
        Some(routing::likelihood_router::<B>(
            c.router_model.as_deref(),
            Some((pair.strong(), pair.template())),
            None,
            device,
            pair.options().dtype,
            m.max_batch_tokens,
        )?)
    } else {
        None
    };
    let domains = routing::route(&custom, c.router, rows, router.as_ref(), input, quiet)?;
    Ok((pair.with_customization(custom), Some(domains)))
}

pub fn load_pair<B: Backend>(m: &ModelArgs, device: &B::Device) -> anyhow::Result<DensityRatio<B>> {
    let strong = cdr_models::resolve_model(&m.strong).context("--strong")?;
    let weak = cdr_models::resolve_model(&m.weak).context("--weak")?;
    let options = ScoreOptions {
        reduction: match m.reduction {
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::Mean => Reduction::Mean,
        },
        limits: Limits {
            max_prompt_tokens: m.max_prompt_tokens,
            max_response_tokens: m.max_response_tokens,
        },
        max_batch_tokens: m.max_batch_tokens,
        dtype: m
            .dtype
            .parse()
            .map_err(anyhow::Error::msg)
            .context("--dtype")?,
        tokenizer_policy: if m.allow_tokenizer_mismatch {
            warn!("--allow-tokenizer-mismatch: each model scores its own tokenization of the text");
            TokenizerPolicy::Separate
        } else {
            TokenizerPolicy::Identical
        },
        template: m.template.clone(),
    };
    if options.limits.max_prompt_tokens == 0 || options.limits.max_response_tokens == 0 {
        bail!("--max-prompt-tokens and --max-response-tokens must be positive");
    }
    Ok(DensityRatio::load(&strong, &weak, device, options)?)
}

/// What a run did, for the summary line.
#[derive(Debug, Default)]
pub struct RunStats {
    pub resumed: usize,
    pub scored_rows: usize,
    pub truncated_items: usize,
    pub failed_rows: Vec<(String, String)>,
}

/// Scores `rows` (skipping ids in `done`), calling `emit` with each row and its item
/// scores in input order. A row whose items cannot be prepared is an error, or with
/// `skip_invalid` is reported and left out.
#[allow(clippy::too_many_arguments)]
pub fn score_rows<B: Backend, R>(
    pair: &DensityRatio<B>,
    rows: &[R],
    id_of: impl Fn(&R) -> &str,
    items_of: impl Fn(&R) -> Vec<Item>,
    done: &std::collections::HashSet<String>,
    skip_invalid: bool,
    chunk_rows: usize,
    input: &Path,
    progress: &mut Progress,
    mut emit: impl FnMut(&R, &[ItemScore]) -> anyhow::Result<()>,
) -> anyhow::Result<RunStats> {
    let mut stats = RunStats::default();
    let todo: Vec<&R> = rows.iter().filter(|r| !done.contains(id_of(r))).collect();
    stats.resumed = rows.len() - todo.len();
    if stats.resumed > 0 {
        tracing::info!(
            rows = stats.resumed,
            "resuming: rows already in the output are skipped"
        );
    }
    let chunk_rows_max = chunk_rows.max(1);
    let mut start = 0;
    while start < todo.len() {
        let mut end = start;
        let mut rows_in_chunk = Vec::new();
        let mut prepared = Vec::new();
        let mut spans = Vec::new();
        while end < todo.len() && rows_in_chunk.len() < chunk_rows_max {
            let row = todo[end];
            end += 1;
            let items = items_of(row);
            let attempt: Result<Vec<_>, _> = items.iter().map(|i| pair.prepare(i)).collect();
            match attempt {
                Ok(p) => {
                    spans.push((prepared.len(), p.len()));
                    prepared.extend(p);
                    rows_in_chunk.push(row);
                }
                Err(e) if skip_invalid => {
                    warn!(id = id_of(row), "skipped: {e}");
                    stats
                        .failed_rows
                        .push((id_of(row).to_string(), e.to_string()));
                    progress.rows(1);
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{}: row `{}` (use --skip-invalid to continue past bad rows)",
                            input.display(),
                            id_of(row)
                        )
                    });
                }
            }
        }
        let scores =
            pair.score_prepared_with(&prepared, &mut |_, tokens| progress.tokens(tokens))?;
        for (row, (offset, n)) in rows_in_chunk.iter().zip(&spans) {
            let row_scores = &scores[*offset..offset + n];
            stats.truncated_items += row_scores.iter().filter(|s| s.truncated).count();
            emit(row, row_scores)?;
            stats.scored_rows += 1;
            progress.rows(1);
        }
        start = end;
    }
    Ok(stats)
}

pub fn summary(stats: &RunStats, progress: &Progress) {
    eprintln!(
        "cdr: {} rows scored ({} already done), {} truncated responses, {} rows skipped, {:.0} tokens/s",
        stats.scored_rows,
        stats.resumed,
        stats.truncated_items,
        stats.failed_rows.len(),
        progress.total_tokens() as f64 / progress.elapsed_secs().max(1e-9)
    );
    for (id, why) in &stats.failed_rows {
        eprintln!("  skipped row `{id}`: {why}");
    }
}
