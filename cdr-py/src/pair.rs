//! Every call from the Python package into cdr-core: loading a pair (with customization, routing
//! and the log-prob cache), scoring rows in chunks, and one model's log-probs.
//!
//! TODO(engine): the CLI's scoring run (chunked rows, skip-invalid, routing) moves into cdr-core
//! as an engine with a sink, and the backend type parameter becomes a runtime `Device`; this
//! module is what gets re-pointed then. Until then it mirrors cdr-cli's job.rs / routing.rs.

use std::path::{Path, PathBuf};

use cdr_core::backend::Cpu;
use cdr_core::encode::{Encoded, encode};
use cdr_core::{
    CacheKey, CacheTable, ChatTemplate, ComputeDtype, Customization, DensityRatio, Item, ItemScore,
    LikelihoodRouter, Limits, LogprobCache, ModelScorer, Reduction, ScoreOptions, TokenizerPolicy,
    model_template, render_item,
};
use cdr_data::{Message, Row};

use crate::error::{Error, Result};

/// Rows per batch plan, as `cdr`'s `--chunk-rows` default: the same rows share forward passes
/// here as in the command, so rewards agree to the last bit of batching.
pub const CHUNK_ROWS: usize = 64;

/// How each row gets its customization domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterKind {
    /// The row's `domain` / `subset` fields.
    Field,
    /// The strong model scores each domain name as the answer to the classification prompt.
    Likelihood,
}

impl std::str::FromStr for RouterKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "field" => Ok(Self::Field),
            "likelihood" => Ok(Self::Likelihood),
            "llm" => Err(Error::Argument(
                "router=\"llm\" is not available from Python yet; use \"field\" or \"likelihood\""
                    .into(),
            )),
            other => Err(Error::Argument(format!(
                "unknown router `{other}` (field, likelihood)"
            ))),
        }
    }
}

/// What a pair is loaded with: the Python constructor's arguments.
#[derive(Debug, Clone)]
pub struct PairConfig {
    pub strong: String,
    pub weak: String,
    pub customize: Option<String>,
    pub router: RouterKind,
    pub device: String,
    pub dtype: String,
    pub max_batch_tokens: usize,
    pub template: Option<String>,
    pub reduction: String,
    pub limits: Limits,
    pub allow_tokenizer_mismatch: bool,
    pub one_model_at_a_time: Option<bool>,
    pub cache: Option<PathBuf>,
}

/// A model spec (directory, GGUF file or hub id in the local cache) to its path; a path that
/// does not exist is a `FileNotFoundError`.
fn resolve(spec: &str, what: &str) -> Result<PathBuf> {
    cdr_models::resolve_model(spec).map_err(|e| {
        let message = format!("{what}: {e}");
        if Path::new(spec).exists() {
            Error::Model(cdr_models::ModelError::Input(message))
        } else {
            Error::NotFound(message)
        }
    })
}

/// Checks the compute device: this build has the CPU backend only (its device is `Default`).
/// TODO(engine): a runtime `Device` (cpu, cuda, wgpu) once cdr-models has one.
fn check_device(spec: &str) -> Result<()> {
    match spec {
        "cpu" => Ok(()),
        other => Err(Error::Argument(format!(
            "device `{other}` is not built into this cdr package (cpu only)"
        ))),
    }
}

fn dtype(spec: &str, models: &[&Path]) -> Result<ComputeDtype> {
    if spec.eq_ignore_ascii_case("auto") {
        let gguf = models
            .iter()
            .all(|m| cdr_models::ModelDir::new(m).is_gguf());
        return Ok(cdr_models::kernels::default_dtype(gguf, true));
    }
    spec.parse()
        .map_err(|e: String| Error::Argument(format!("dtype: {e}")))
}

fn score_options(config: &PairConfig, models: &[&Path]) -> Result<ScoreOptions> {
    if config.limits.max_prompt_tokens == 0 || config.limits.max_response_tokens == 0 {
        return Err(Error::Argument(
            "max_prompt_tokens and max_response_tokens must be positive".into(),
        ));
    }
    if config.max_batch_tokens == 0 {
        return Err(Error::Argument("max_batch_tokens must be positive".into()));
    }
    Ok(ScoreOptions {
        reduction: config
            .reduction
            .parse::<Reduction>()
            .map_err(Error::Argument)?,
        limits: config.limits,
        max_batch_tokens: config.max_batch_tokens,
        dtype: dtype(&config.dtype, models)?,
        tokenizer_policy: if config.allow_tokenizer_mismatch {
            TokenizerPolicy::Separate
        } else {
            TokenizerPolicy::Identical
        },
        template: config.template.clone(),
        one_model_at_a_time: config.one_model_at_a_time,
    })
}

/// `model`'s cache table for this pair's template, customization, dtype and limits.
fn cache_table(cache: &LogprobCache, model: &Path, pair: &DensityRatio<Cpu>) -> Result<CacheTable> {
    let id = cache.model_id(model)?;
    let options = pair.options();
    let key = CacheKey::new(
        &id,
        options.dtype,
        pair.template(),
        pair.customization(),
        options.limits,
    )?;
    Ok(cache.table(&key)?)
}

fn copy_template(t: &ChatTemplate) -> Result<ChatTemplate> {
    ChatTemplate::new(t.name(), t.source(), t.bos_token(), t.eos_token())
        .map_err(|e| Error::Core(e.into()))
}

/// A row as the scorer sees it: its conversation and the responses to score in it.
#[derive(Debug, Clone)]
pub struct RowInput {
    pub id: String,
    pub prompt: Vec<Message>,
    pub responses: Vec<String>,
    pub domain: Option<String>,
    pub subset: Option<String>,
}

impl From<&Row> for RowInput {
    fn from(row: &Row) -> Self {
        let responses = match row {
            Row::Pairwise(p) => vec![p.chosen.clone(), p.rejected.clone()],
            Row::BestOfN(b) => b.responses.clone(),
        };
        Self {
            id: row.id().to_string(),
            prompt: row.prompt().to_vec(),
            responses,
            domain: row.domain().map(str::to_string),
            subset: row.subset().map(str::to_string),
        }
    }
}

/// One scored row: its index in the input, the domain to report, its responses' scores.
#[derive(Debug, Clone)]
pub struct ScoredRow {
    pub index: usize,
    pub domain: Option<String>,
    pub scores: Vec<ItemScore>,
}

/// What a scoring call did: the rows scored (input order) and those left out as invalid.
#[derive(Debug, Default)]
pub struct Scored {
    pub rows: Vec<ScoredRow>,
    /// `(row index, id, why)` of rows that could not be prepared (with `skip_invalid`).
    pub failed: Vec<(usize, String, String)>,
}

/// A loaded strong/weak pair with its customization router.
pub struct Pair {
    pair: DensityRatio<Cpu>,
    router: Option<LikelihoodRouter<Cpu>>,
    config: PairConfig,
}

impl Pair {
    pub fn load(config: PairConfig) -> Result<Self> {
        check_device(&config.device)?;
        let strong = resolve(&config.strong, "strong")?;
        let weak = resolve(&config.weak, "weak")?;
        let options = score_options(&config, &[&strong, &weak])?;
        let mut pair = DensityRatio::<Cpu>::load(&strong, &weak, &Default::default(), options)?;
        let mut router = None;
        if let Some(spec) = &config.customize {
            let customization = Customization::resolve(spec).map_err(cdr_core::CoreError::from)?;
            pair = pair.with_customization(customization);
            if config.router == RouterKind::Likelihood {
                // As `cdr --router likelihood` without --router-model: the strong model routes.
                let limits = Limits {
                    max_prompt_tokens: 4096,
                    max_response_tokens: 64,
                };
                let template = copy_template(pair.template())?;
                router = Some(LikelihoodRouter::new(
                    pair.strong().clone(),
                    template,
                    limits,
                    config.max_batch_tokens,
                ));
            }
        }
        if let Some(dir) = &config.cache {
            let cache = LogprobCache::open(dir)?;
            let strong_table = cache_table(&cache, &strong, &pair)?;
            let weak_table = cache_table(&cache, &weak, &pair)?;
            pair = pair.with_cache(strong_table, weak_table);
        }
        Ok(Self {
            pair,
            router,
            config,
        })
    }

    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    pub fn template_name(&self) -> &str {
        self.pair.template().name()
    }

    /// The text the strong model's template closes a turn with (its `eos_token`).
    pub fn eos_token(&self) -> &str {
        self.pair.template().eos_token()
    }

    pub fn reduction(&self) -> Reduction {
        self.pair.options().reduction
    }

    /// The customization domain of each row (`None` without customization).
    fn route(&self, rows: &[RowInput]) -> Result<Vec<Option<String>>> {
        let Some(c) = self.pair.customization() else {
            return Ok(vec![None; rows.len()]);
        };
        match &self.router {
            None => rows
                .iter()
                .map(|r| {
                    c.route_by_field(r.domain.as_deref(), r.subset.as_deref())
                        .map(Some)
                        .map_err(|e| Error::Row {
                            id: r.id.clone(),
                            source: e.into(),
                        })
                })
                .collect(),
            Some(router) => {
                let convos: Vec<&[Message]> = rows.iter().map(|r| r.prompt.as_slice()).collect();
                Ok(router
                    .route(c, &convos, &mut |_, _| {})?
                    .into_iter()
                    .map(|(d, _)| Some(d))
                    .collect())
            }
        }
    }

    /// Scores every response of `rows`, `CHUNK_ROWS` rows per batch plan; `progress(rows,
    /// tokens)` as work completes. A row that cannot be prepared fails the call or, with
    /// `skip_invalid`, is reported in [`Scored::failed`].
    pub fn score_rows(
        &self,
        rows: &[RowInput],
        skip_invalid: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Scored> {
        let routed = self.route(rows)?;
        let mut out = Scored::default();
        let indexed: Vec<usize> = (0..rows.len()).collect();
        for chunk in indexed.chunks(CHUNK_ROWS) {
            let mut kept = Vec::new();
            let mut prepared = Vec::new();
            for &i in chunk {
                let row = &rows[i];
                let attempt: Result<Vec<_>, _> = row
                    .responses
                    .iter()
                    .map(|response| {
                        let item = Item::new(row.prompt.clone(), response.clone())
                            .in_row(&row.id, routed[i].clone());
                        self.pair.prepare(&item)
                    })
                    .collect();
                match attempt {
                    Ok(p) => {
                        kept.push((i, prepared.len(), p.len()));
                        prepared.extend(p);
                    }
                    Err(e) if skip_invalid => {
                        out.failed.push((i, row.id.clone(), e.to_string()));
                        progress(1, 0);
                    }
                    Err(source) => {
                        return Err(Error::Row {
                            id: row.id.clone(),
                            source,
                        });
                    }
                }
            }
            let scores = self
                .pair
                .score_prepared_with(&prepared, &mut |_, tokens| progress(0, tokens))?;
            for (i, offset, n) in kept {
                out.rows.push(ScoredRow {
                    index: i,
                    // The routed domain when customizing, else the row's own field (as `cdr`).
                    domain: routed[i].clone().or_else(|| rows[i].domain.clone()),
                    scores: scores[offset..offset + n].to_vec(),
                });
                progress(1, 0);
            }
        }
        Ok(out)
    }
}

/// One model's options for [`logprobs`].
#[derive(Debug, Clone)]
pub struct LogprobsConfig {
    pub model: String,
    pub device: String,
    pub dtype: String,
    pub template: Option<String>,
    pub limits: Limits,
    pub max_batch_tokens: usize,
}

/// One response's log-probs under one model.
#[derive(Debug, Clone)]
pub struct ResponseLogprobs {
    pub logprob: f64,
    pub tokens: Vec<f32>,
    pub encoded: Encoded,
}

/// Each row's responses' log-probs under `config.model` (the model's own chat template unless
/// `config.template`), as `cdr logprobs` computes them.
pub fn logprobs(
    config: &LogprobsConfig,
    rows: &[RowInput],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<ResponseLogprobs>>> {
    check_device(&config.device)?;
    let path = resolve(&config.model, "model")?;
    let dtype = dtype(&config.dtype, &[&path])?;
    let scorer = ModelScorer::<Cpu>::load(&path, &Default::default(), dtype)?;
    let template = match &config.template {
        Some(spec) => {
            ChatTemplate::resolve(spec, Some(&path)).map_err(cdr_core::CoreError::from)?
        }
        None => model_template(&path)?,
    };
    let mut encoded = Vec::new();
    let mut spans = Vec::with_capacity(rows.len());
    for row in rows {
        let start = encoded.len();
        for response in &row.responses {
            let item = Item::new(row.prompt.clone(), response.clone()).in_row(&row.id, None);
            let one = render_item(&template, None, &item)
                .and_then(|r| encode(&scorer.tokenizer, &r, config.limits))
                .map_err(|source| Error::Row {
                    id: row.id.clone(),
                    source,
                })?;
            encoded.push(one);
        }
        spans.push(start..encoded.len());
    }
    let refs: Vec<&Encoded> = encoded.iter().collect();
    let computed = scorer.response_logprobs(&refs, config.max_batch_tokens, &mut |items, t| {
        progress(items, t)
    })?;
    let mut per_item: Vec<Option<ResponseLogprobs>> = encoded
        .into_iter()
        .zip(computed)
        .map(|(encoded, tokens)| {
            Some(ResponseLogprobs {
                logprob: cdr_core::reward::sum_logprobs(&tokens),
                tokens,
                encoded,
            })
        })
        .collect();
    Ok(spans
        .into_iter()
        .map(|span| span.filter_map(|i| per_item[i].take()).collect())
        .collect())
}
