//! Every call from the Python package into cdr-core: a pair loaded by the library's engine
//! (customization, routing, the log-prob cache), its rows scored by [`Engine::score`], and one
//! model's log-probs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use cdr_core::engine::{
    Engine, LogprobsPass, LogprobsSettings, PairSettings, Pass, Reporter, RouterKind, Routing,
    RunSettings, ScoringSettings, Silent, logprobs_rows,
};
use cdr_core::{ComputeDtype, Device, ItemScore, Limits, Reduction, TokenizerPolicy};
use cdr_data::Row;

use crate::error::{Error, Result};

/// What a pair is loaded with: the Python constructor's arguments.
#[derive(Debug, Clone)]
pub struct PairConfig {
    pub strong: String,
    pub weak: String,
    pub customize: Option<String>,
    pub router: String,
    pub router_model: Option<String>,
    pub router_calibrate: bool,
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

fn device(spec: &str) -> Result<Device> {
    let device: Device = spec
        .parse()
        .map_err(|e: cdr_models::ModelError| Error::Argument(format!("device: {e}")))?;
    device
        .check()
        .map_err(|e| Error::Argument(format!("device: {e}")))?;
    Ok(device)
}

/// `auto` is `None` (the library picks per model files and device).
fn dtype(spec: &str) -> Result<Option<ComputeDtype>> {
    if spec.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    spec.parse()
        .map(Some)
        .map_err(|e: String| Error::Argument(format!("dtype: {e}")))
}

fn settings(config: &PairConfig) -> Result<RunSettings> {
    if config.limits.max_prompt_tokens == 0 || config.limits.max_response_tokens == 0 {
        return Err(Error::Argument(
            "max_prompt_tokens and max_response_tokens must be positive".into(),
        ));
    }
    if config.max_batch_tokens == 0 {
        return Err(Error::Argument("max_batch_tokens must be positive".into()));
    }
    let router: RouterKind = config
        .router
        .parse()
        .map_err(|e: cdr_core::CoreError| Error::Argument(e.to_string()))?;
    let scoring = ScoringSettings {
        device: device(&config.device)?,
        dtype: dtype(&config.dtype)?,
        template: config.template.clone(),
        limits: config.limits,
        reduction: config
            .reduction
            .parse::<Reduction>()
            .map_err(Error::Argument)?,
        max_batch_tokens: config.max_batch_tokens,
        one_model_at_a_time: config.one_model_at_a_time,
        tokenizer_policy: if config.allow_tokenizer_mismatch {
            TokenizerPolicy::Separate
        } else {
            TokenizerPolicy::Identical
        },
        cache: config.cache.clone(),
        remote: None,
    };
    let mut settings = RunSettings::new(PairSettings {
        strong: config.strong.clone(),
        weak: config.weak.clone(),
        scoring,
    });
    settings.routing = Routing {
        customize: config.customize.clone(),
        router,
        router_model: config.router_model.clone(),
        calibrate: config.router_calibrate,
    };
    Ok(settings)
}

/// One scored row: its index in the input, the domain to report, its responses' scores.
#[derive(Debug, Clone)]
pub struct RowScores {
    pub index: usize,
    pub domain: Option<String>,
    pub scores: Vec<ItemScore>,
}

/// What a scoring call did: the rows scored (input order) and those left out as invalid.
#[derive(Debug, Default)]
pub struct Scored {
    pub rows: Vec<RowScores>,
    /// `(id, why)` of rows that could not be prepared (with `skip_invalid`).
    pub failed: Vec<(String, String)>,
}

/// A row error keeps the row's id and gains the Python hint ([`Error::Row`]).
fn row_error(e: cdr_core::CoreError) -> Error {
    match e {
        cdr_core::CoreError::Row {
            source_name,
            id,
            error,
        } => Error::Row {
            origin: source_name,
            id,
            source: error,
        },
        other => other.into(),
    }
}

/// A loaded strong/weak pair: the library's engine and the arguments it was built from.
pub struct Pair {
    engine: Engine,
    config: PairConfig,
}

impl Pair {
    pub fn load(config: PairConfig) -> Result<Self> {
        // Resolved here first so a missing path is a `FileNotFoundError`.
        resolve(&config.strong, "strong")?;
        resolve(&config.weak, "weak")?;
        if let Some(router) = &config.router_model {
            resolve(router, "router")?;
        }
        let engine = Engine::load(settings(&config)?, &mut Silent)?;
        Ok(Self { engine, config })
    }

    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    pub fn template_name(&self) -> &str {
        self.engine.pair().template().name()
    }

    /// The text the strong model's template closes a turn with (its `eos_token`).
    pub fn eos_token(&self) -> &str {
        self.engine.pair().template().eos_token()
    }

    /// The engine (for the eval report).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Scores every response of `rows` as `cdr score` does (same chunks, routing and batches),
    /// reporting progress as `stage`. A row that cannot be prepared fails the call or, with
    /// `skip_invalid`, is reported in [`Scored::failed`].
    pub fn score_rows(
        &self,
        rows: &[Row],
        skip_invalid: bool,
        stage: &str,
        reporter: &mut dyn Reporter,
    ) -> Result<Scored> {
        // Ids are unique within rows (the reader checks), so they give back each row's index.
        let index: HashMap<&str, usize> =
            rows.iter().enumerate().map(|(i, r)| (r.id(), i)).collect();
        let mut out = Scored::default();
        let stats = self.engine.score(
            rows,
            &Pass {
                done: &HashSet::new(),
                source: "rows",
                stage,
                skip_invalid,
            },
            reporter,
            |row, scores, domain| {
                out.rows.push(RowScores {
                    index: index.get(row.id()).copied().ok_or_else(|| {
                        cdr_core::CoreError::Invalid(format!(
                            "row `{}` came back unknown",
                            row.id()
                        ))
                    })?,
                    domain: domain.map(str::to_string),
                    scores: scores.to_vec(),
                });
                Ok(())
            },
        );
        out.failed = stats.map_err(row_error)?.failed_rows;
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
    pub per_token: bool,
    pub skip_invalid: bool,
}

/// Each row's responses' log-probs under `config.model`, as `cdr logprobs` computes them (the
/// library's single-model pass: same chunks, batches and skipping).
pub fn logprobs(
    config: &LogprobsConfig,
    rows: &[Row],
    reporter: &mut dyn Reporter,
) -> Result<LogprobsPass> {
    resolve(&config.model, "model")?;
    let settings = LogprobsSettings {
        model: config.model.clone(),
        scoring: ScoringSettings {
            device: device(&config.device)?,
            dtype: dtype(&config.dtype)?,
            template: config.template.clone(),
            limits: config.limits,
            max_batch_tokens: config.max_batch_tokens,
            ..ScoringSettings::default()
        },
        routing: Routing::default(),
        chunk_rows: RunSettings::new(PairSettings::new("", "")).chunk_rows,
        skip_invalid: config.skip_invalid,
        per_token: config.per_token,
        token_ids: false,
    };
    logprobs_rows(&settings, rows, "rows", reporter).map_err(row_error)
}
