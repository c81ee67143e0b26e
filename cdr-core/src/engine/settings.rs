//! What a run is asked to do, resolved once (by the CLI from its flags, by the Python package
//! from keyword arguments) and handed to [`super::Engine::load`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cdr_models::{ComputeDtype, Device, ModelDir};
use serde::{Deserialize, Serialize};

use crate::encode::Limits;
use crate::error::{CoreError, Result};
use crate::remote::{RemoteModel, RemoteOptions};
use crate::reward::Reduction;
use crate::scorer::{ModelScorer, ScoreOptions, TokenizerPolicy};

/// How each row's domain is chosen when the prompt is customized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// The row's own `domain` (else `subset`) field, mapped through the domains' aliases.
    #[default]
    Field,
    /// Ask a model which domain name it finds most likely (no generation).
    Likelihood,
    /// Let a model answer the routing question and parse the domain from its answer.
    Llm,
}

impl std::fmt::Display for RouterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Field => "field",
            Self::Likelihood => "likelihood",
            Self::Llm => "llm",
        })
    }
}

impl FromStr for RouterKind {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "field" => Ok(Self::Field),
            "likelihood" => Ok(Self::Likelihood),
            "llm" => Ok(Self::Llm),
            other => Err(CoreError::Invalid(format!(
                "unknown router `{other}` (expected field, likelihood or llm)"
            ))),
        }
    }
}

/// Prompt customization and routing.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// A preset (`none`, `criteria`, `exemplars`, `both`, `paper`) or a TOML file; `None` scores
    /// the plain prompt.
    pub customize: Option<String>,
    /// How domains are chosen.
    pub router: RouterKind,
    /// The model that routes (`likelihood`, `llm`); `None` uses the strong model.
    pub router_model: Option<String>,
    /// Contextual calibration of the likelihood router.
    pub calibrate: bool,
}

/// How models compute and what they score: everything of a scoring run but the models.
#[derive(Debug, Clone)]
pub struct ScoringSettings {
    /// Where the models run.
    pub device: Device,
    /// `None` picks per model files and device ([`ScoringSettings::dtype_for`]).
    pub dtype: Option<ComputeDtype>,
    /// A built-in template name or a Jinja file; `None` uses the (strong) model's own.
    pub template: Option<String>,
    /// Prompt and response token limits.
    pub limits: Limits,
    /// Sum or mean of the response tokens' log-prob differences.
    pub reduction: Reduction,
    /// Most tokens (batch x padded length) in one forward pass.
    pub max_batch_tokens: usize,
    /// `None`: decided by whether both models fit in memory together.
    pub one_model_at_a_time: Option<bool>,
    /// Whether the two models must tokenize every text identically.
    pub tokenizer_policy: TokenizerPolicy,
    /// The log-prob cache directory, if any.
    pub cache: Option<PathBuf>,
    /// Log-probs from vLLM-compatible servers instead of local weights (`--backend remote`).
    pub remote: Option<RemoteBackend>,
}

/// Which models' log-probs come from servers, and how cdr talks to them.
#[derive(Debug, Clone, Default)]
pub struct RemoteBackend {
    /// Each remote model's server URLs (replicas), by the model argument as given
    /// ([`PairSettings::strong`], [`super::LogprobsSettings::model`]). A model with no entry runs
    /// locally.
    pub urls: BTreeMap<String, Vec<String>>,
    /// Timeouts, retries, concurrency, token.
    pub options: RemoteOptions,
}

impl Default for ScoringSettings {
    /// The defaults of `cdr score`.
    fn default() -> Self {
        let options = ScoreOptions::default();
        Self {
            device: Device::Cpu,
            dtype: None,
            template: None,
            limits: options.limits,
            reduction: options.reduction,
            max_batch_tokens: options.max_batch_tokens,
            one_model_at_a_time: None,
            tokenizer_policy: TokenizerPolicy::Identical,
            cache: None,
            remote: None,
        }
    }
}

impl ScoringSettings {
    /// The compute dtype for `models` (resolved paths): the one asked for, else bf16 when every
    /// model is a GGUF file and the CPU has bf16 matrix units, else f32 (the exact path).
    pub fn dtype_for(&self, models: &[&Path]) -> ComputeDtype {
        self.dtype.unwrap_or_else(|| {
            // The servers compute in their own dtype; f32 here only names the (unused) local one.
            if self.remote.is_some() {
                return ComputeDtype::F32;
            }
            let gguf =
                !models.is_empty() && models.iter().all(|m| ModelDir::new(m).weights_are_gguf());
            let dtype = cdr_models::kernels::default_dtype(gguf, self.device == Device::Cpu);
            tracing::info!(%dtype, "dtype auto");
            dtype
        })
    }

    /// The scoring options for the resolved `models`.
    pub fn score_options(&self, models: &[&Path]) -> Result<ScoreOptions> {
        if self.limits.max_prompt_tokens == 0 || self.limits.max_response_tokens == 0 {
            return Err(CoreError::Invalid(
                "the prompt and response token limits must be positive".into(),
            ));
        }
        if self.max_batch_tokens == 0 {
            return Err(CoreError::Invalid(
                "the batch token budget must be positive".into(),
            ));
        }
        Ok(ScoreOptions {
            reduction: self.reduction,
            limits: self.limits,
            max_batch_tokens: self.max_batch_tokens,
            dtype: self.dtype_for(models),
            tokenizer_policy: self.tokenizer_policy,
            template: self.template.clone(),
            one_model_at_a_time: self.one_model_at_a_time,
        })
    }
}

/// The strong/weak pair and how it computes.
#[derive(Debug, Clone)]
pub struct PairSettings {
    /// A model directory, GGUF file or hub id in the local cache.
    pub strong: String,
    /// The weak (less aligned) model.
    pub weak: String,
    /// How both compute.
    pub scoring: ScoringSettings,
}

impl PairSettings {
    /// The defaults of `cdr score` for a pair.
    pub fn new(strong: impl Into<String>, weak: impl Into<String>) -> Self {
        Self {
            strong: strong.into(),
            weak: weak.into(),
            scoring: ScoringSettings::default(),
        }
    }
}

/// Everything a scoring run needs besides its rows.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The pair and how it computes.
    pub pair: PairSettings,
    /// Customization and routing.
    pub routing: Routing,
    /// Rows per batch plan (and between output flushes).
    pub chunk_rows: usize,
    /// Report and leave out rows that cannot be scored instead of stopping.
    pub skip_invalid: bool,
}

impl RunSettings {
    /// A run of `pair` with the defaults of `cdr score`: no customization, 64 rows per chunk,
    /// stop at a bad row.
    pub fn new(pair: PairSettings) -> Self {
        Self {
            pair,
            routing: Routing::default(),
            chunk_rows: 64,
            skip_invalid: false,
        }
    }
}

/// The scorer of model argument `spec` (resolved to `path`): remote when the settings give it
/// server URLs, else local.
pub(crate) fn load_scorer(
    spec: &str,
    path: &Path,
    scoring: &ScoringSettings,
    dtype: ComputeDtype,
) -> Result<ModelScorer> {
    let scorer = ModelScorer::load(path, &scoring.device, dtype)?;
    match scoring.remote.as_ref() {
        Some(remote) => {
            let urls = remote.urls.get(spec).ok_or_else(|| {
                CoreError::Invalid(format!("no server URL given for the remote model {spec}"))
            })?;
            let served = RemoteModel::connect(urls, None, remote.options.clone())?;
            Ok(scorer.with_remote(served))
        }
        None => Ok(scorer),
    }
}

/// The model argument `spec` resolved to a path, the error naming which model it is.
pub(crate) fn resolve(spec: &str, role: &str) -> Result<PathBuf> {
    cdr_models::resolve_model(spec).map_err(|e| CoreError::Invalid(format!("{role} model: {e}")))
}
