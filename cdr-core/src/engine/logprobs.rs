//! `cdr logprobs` as a library call: one model scores every response of a dataset through the
//! log-prob cache, so pairs of models can later be ranked from one pass per model.

use cdr_data::read_rows;
use serde::Serialize;

use crate::cache::{CacheTable, LogprobCache};
use crate::error::Result;
use crate::scorer::{PassStats, TextLogprobs, model_template};
use cdr_prompt::ChatTemplate;

use super::jobs::{Input, Output, report_read_skips};
use super::passes::{PassOptions, Rendering, Texts, score_pass};
use super::reporter::{Reporter, in_stage};
use super::routing::{Routed, RouterCompute, RowInfo, customize_rows};
use super::run::{ScoredRow, tagged_cache_table};
use super::settings::{Routing, ScoringSettings, load_scorer, resolve};

/// One model's pass: the model, how it computes, customization and what is written.
#[derive(Debug, Clone)]
pub struct LogprobsSettings {
    /// A model directory, GGUF file or hub id in the local cache.
    pub model: String,
    /// Its `cache` is where the log-probs go (and come from).
    pub scoring: ScoringSettings,
    /// Customization and the router.
    pub routing: Routing,
    /// Rows per batch plan (as a pair's run, so the same rows share batches).
    pub chunk_rows: usize,
    /// Report and leave out rows that cannot be scored instead of stopping.
    pub skip_invalid: bool,
    /// Write each response's per-token log-probs.
    pub per_token: bool,
    /// Write each response's prompt and response token ids.
    pub token_ids: bool,
}

/// One response's log-probs under the model.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseLogprobs<'a> {
    /// Sum of the response tokens' log-probs.
    pub logprob: f64,
    /// Response tokens scored.
    pub n_response_tokens: usize,
    /// Prompt tokens kept.
    pub n_prompt_tokens: usize,
    /// Whether the prompt or response was cut to the limits.
    pub truncated: bool,
    /// Each response token's log-prob, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_logprobs: Option<Vec<f32>>,
    /// The prompt's token ids, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_ids: Option<&'a [u32]>,
    /// The response's token ids, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_ids: Option<&'a [u32]>,
}

/// One output row of `cdr logprobs`: its responses in input order (chosen then rejected for
/// pairwise rows).
#[derive(Debug, Clone, Serialize)]
pub struct RowLogprobs<'a> {
    /// The row's id.
    pub id: &'a str,
    /// The row's subset, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<&'a str>,
    /// The routed domain when customizing, else the row's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<&'a str>,
    /// One entry per response.
    pub responses: Vec<ResponseLogprobs<'a>>,
}

/// What a log-prob pass did.
#[derive(Debug, Clone, Default)]
pub struct LogprobsSummary {
    /// Texts scored (or read from the cache).
    pub texts: usize,
    /// Rows whose texts were scored.
    pub rows: usize,
    /// How many texts came from the cache and how many were computed.
    pub stats: PassStats,
    /// Rows left out under `skip_invalid`: id and why.
    pub failed: Vec<(String, String)>,
    /// Rows written, when there was an output.
    pub written: Option<usize>,
    /// The cache table used, if any.
    pub table: Option<std::path::PathBuf>,
    /// Rows skipped while reading.
    pub read_skipped: usize,
}

/// One model's pass over rows: the rendered texts, their log-probs and how each row was routed.
pub struct LogprobsPass {
    /// The rows' texts as scored (rows left out under `skip_invalid` are not in it).
    pub texts: Texts,
    /// One entry per text, in `texts` order.
    pub logprobs: Vec<TextLogprobs>,
    /// How many texts the cache answered and how many were computed.
    pub stats: PassStats,
    /// The customization and each row's domain, when customizing.
    pub routed: Option<Routed>,
    /// The cache table used, if any.
    pub table: Option<std::path::PathBuf>,
}

impl LogprobsPass {
    /// The output records of the rows scored (`rows` as given to [`logprobs_rows`]), with token
    /// ids when `token_ids`.
    pub fn records<'a, R: ScoredRow>(
        &'a self,
        rows: &'a [R],
        token_ids: bool,
    ) -> Vec<RowLogprobs<'a>> {
        self.texts
            .rows
            .iter()
            .zip(&self.texts.spans)
            .map(|(&r, span)| {
                let info = rows[r].info();
                let domain = self
                    .routed
                    .as_ref()
                    .and_then(|r| r.domains.get(info.id))
                    .map(String::as_str);
                let responses = span
                    .clone()
                    .map(|i| {
                        let e = &self.texts.encoded[0][0][i];
                        ResponseLogprobs {
                            logprob: self.logprobs[i].logprob,
                            n_response_tokens: e.n_response_tokens(),
                            n_prompt_tokens: e.n_prompt_tokens(),
                            truncated: e.truncated,
                            token_logprobs: self.logprobs[i].tokens.clone(),
                            prompt_ids: token_ids.then(|| &e.ids[..e.response_start]),
                            response_ids: token_ids.then(|| &e.ids[e.response_start..]),
                        }
                    })
                    .collect();
                RowLogprobs {
                    id: info.id,
                    subset: info.subset,
                    domain: domain.or(info.domain),
                    responses,
                }
            })
            .collect()
    }
}

/// Scores every response of `rows` with one model, through its cache table when
/// `settings.scoring.cache` is set, `chunk_rows` rows per batch plan (as [`logprobs_file`]
/// does). `source` names the rows' origin in errors.
pub fn logprobs_rows<R: ScoredRow>(
    settings: &LogprobsSettings,
    rows: &[R],
    source: &str,
    reporter: &mut dyn Reporter,
) -> Result<LogprobsPass> {
    let path = resolve(&settings.model, "scored")?;
    let options = settings.scoring.score_options(&[&path])?;
    let device = settings.scoring.device;
    let scorer = load_scorer(&settings.model, &path, &settings.scoring, options.dtype)?;
    let template = match &settings.scoring.template {
        Some(spec) => ChatTemplate::resolve(spec, Some(&path))?,
        None => model_template(&path)?,
    };
    let infos: Vec<RowInfo<'_>> = rows.iter().map(ScoredRow::info).collect();
    let routed = customize_rows(
        &settings.routing,
        &infos,
        Some((&scorer, &template)),
        RouterCompute {
            device: &device,
            dtype: options.dtype,
            max_batch_tokens: options.max_batch_tokens,
            template: None,
        },
        source,
        reporter,
    )?;
    let templates = [template];
    let tokenizers = [&scorer.tokenizer];
    let texts = Rendering {
        templates: &templates,
        tokenizers: &tokenizers,
        routed: routed.as_ref(),
        limits: options.limits,
    }
    .prepare(rows, source, settings.skip_invalid, reporter)?;
    let table: Option<CacheTable> = match &settings.scoring.cache {
        Some(dir) => Some(tagged_cache_table(
            &LogprobCache::open(dir)?,
            &path,
            scorer.remote_name(),
            &templates[0],
            routed.as_ref().map(|r| &r.customization),
            &options,
            reporter,
        )?),
        None => None,
    };
    let (logprobs, stats) = in_stage(reporter, "logprobs", texts.rows.len(), |reporter| {
        score_pass(
            &scorer,
            &texts,
            (0, 0),
            &PassOptions {
                table: table.as_ref(),
                per_token: settings.per_token,
                chunk_rows: settings.chunk_rows,
                max_batch_tokens: options.max_batch_tokens,
            },
            reporter,
        )
    })?;
    Ok(LogprobsPass {
        texts,
        logprobs,
        stats,
        routed,
        table: table.map(|t| t.path().to_path_buf()),
    })
}

/// Scores every response of `input` with one model into the cache (`settings.scoring.cache`)
/// and, when `output` is given, writes each row's log-probs there (the whole file, each run:
/// the cache makes a re-run cheap). A shard scores only its rows.
pub fn logprobs_file(
    settings: &LogprobsSettings,
    input: &Input,
    output: Option<&Output>,
    shard: Option<cdr_data::Shard>,
    reporter: &mut dyn Reporter,
) -> Result<LogprobsSummary> {
    let source = input.path.display().to_string();
    let mut outcome = read_rows(&input.path, &input.read)?;
    report_read_skips(&outcome, reporter);
    outcome
        .rows
        .retain(|r| shard.is_none_or(|s| s.contains(r.id())));
    let pass = logprobs_rows(settings, &outcome.rows, &source, reporter)?;
    let mut written = None;
    if let Some(out) = output {
        // The cache already makes a re-run cheap; the file is rewritten whole.
        let fresh = Output {
            fresh: true,
            ..out.clone()
        };
        let mut writer = fresh.open()?;
        for record in pass.records(&outcome.rows, settings.token_ids) {
            writer.write(&record)?;
        }
        written = Some(fresh.finish(writer, &input.path, reporter)?);
    }
    Ok(LogprobsSummary {
        texts: pass.logprobs.len(),
        rows: pass.texts.rows.len(),
        stats: pass.stats,
        failed: pass.texts.failed,
        written,
        table: pass.table,
        read_skipped: outcome.skipped.len(),
    })
}
