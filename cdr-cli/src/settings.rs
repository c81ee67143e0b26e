//! Flags → the library's settings, resolved once per command.

use std::path::Path;

use anyhow::Context;
use cdr_core::engine::{
    Engine, Input, Output, PairSettings, RemoteBackend, Routing, RunSettings, ScoringSettings,
};
use cdr_core::{ComputeDtype, Limits, Reduction, SampleOptions, TokenizerPolicy};
use cdr_data::{Fields, ReadOptions, Shard};
use cdr_models::Sampling;
use tracing::warn;

use crate::cli::{
    BackendArg, ComputeArgs, CustomizeArgs, IoArgs, ModelArgs, ReductionArg, RemoteArgs, RunArgs,
    SamplingArgs, ScoringArgs, ShardArgs,
};
use crate::printer::Printer;

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

/// `--output`: a file, or with a trailing `/` (or an existing directory) a dataset directory
/// holding the input's split (`train` for a plain file) as Parquet.
pub fn output(io: &IoArgs, path: &Path, shard: Option<Shard>) -> Output {
    let out = if cdr_data::is_dataset_dir(path) {
        let split = cdr_data::input_split(&io.input);
        Output::in_dataset_dir(path, split.as_deref().unwrap_or(cdr_data::DEFAULT_SPLIT))
    } else {
        Output::new(path)
    };
    Output {
        fresh: io.fresh,
        shard,
        ..out
    }
}

/// `--template`, `--dtype`, the limits, `--reduction`, the cache and the compute flags as the
/// library's scoring settings.
/// `--backend remote` is refused here: commands that take it call [`remote_scoring_settings`].
pub fn scoring_settings(s: &ScoringArgs) -> anyhow::Result<ScoringSettings> {
    if s.remote.backend == BackendArg::Remote {
        anyhow::bail!("--backend remote is for score, eval, annotate, logprobs and serve");
    }
    local_scoring_settings(s)
}

/// [`scoring_settings`] with `--backend remote` for `models` (`(argument, url flag, urls)`).
pub fn remote_scoring_settings(
    s: &ScoringArgs,
    models: &[(&str, &str, &[String])],
) -> anyhow::Result<ScoringSettings> {
    let mut settings = local_scoring_settings(s)?;
    settings.remote = remote_backend(&s.remote, models)?;
    Ok(settings)
}

fn local_scoring_settings(s: &ScoringArgs) -> anyhow::Result<ScoringSettings> {
    let dtype = s.compute.dtype.fixed();
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
        remote: None,
    })
}

/// `--backend remote` with each model argument's `--*-url` list, as the library's settings;
/// `None` for `--backend local` (where URLs are refused, so a forgotten `--backend` is caught).
fn remote_backend(
    args: &RemoteArgs,
    models: &[(&str, &str, &[String])],
) -> anyhow::Result<Option<RemoteBackend>> {
    if args.backend == BackendArg::Local {
        if let Some((_, flag, _)) = models.iter().find(|(_, _, urls)| !urls.is_empty()) {
            anyhow::bail!("{flag} is for --backend remote");
        }
        return Ok(None);
    }
    let token = match &args.remote_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--remote-token-file {}", path.display()))?;
            Some(text.trim().to_string())
        }
        None => None,
    };
    let mut urls = std::collections::BTreeMap::new();
    for (spec, flag, list) in models {
        if list.is_empty() {
            anyhow::bail!("--backend remote needs {flag} URL[,URL...]");
        }
        urls.insert(spec.to_string(), list.to_vec());
    }
    Ok(Some(RemoteBackend {
        urls,
        options: cdr_core::RemoteOptions {
            timeout: std::time::Duration::from_secs(args.remote_timeout.max(1)),
            retries: args.remote_retries,
            concurrency: args.remote_concurrency.max(1),
            token,
            ..Default::default()
        },
    }))
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
    let scoring = remote_scoring_settings(
        &m.scoring,
        &[
            (&m.strong, "--strong-url", &m.strong_url),
            (&m.weak, "--weak-url", &m.weak_url),
        ],
    )?;
    let mut pair = PairSettings {
        strong: m.strong.clone(),
        weak: m.weak.clone(),
        scoring,
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

impl ShardArgs {
    /// This process's shard, if the run is split.
    pub fn resolve(&self) -> anyhow::Result<Option<Shard>> {
        // The library names the shard I/N and the shard count; here they are these flags.
        let detected = Shard::detect(self.shard.as_deref(), self.shards, |k| {
            std::env::var(k).ok()
        })
        .context("--shard I/N, --shards N")?;
        Ok(detected.map(|(shard, source)| {
            tracing::info!(%shard, %source, "running one shard");
            shard
        }))
    }
}

/// The options for sampling from `policy`: each setting from its flag, else from the policy's
/// generation_config.json (as transformers' `generate` would), else the flag's default.
pub fn sample_options(
    s: &SamplingArgs,
    max_prompt_tokens: usize,
    policy: &str,
) -> anyhow::Result<SampleOptions> {
    let path = cdr_models::resolve_model(policy).context("--policy")?;
    let defaults = cdr_models::model_sampling_defaults(&cdr_models::ModelDir::new(&path))?;
    let sampling = Sampling {
        temperature: s.temperature.or(defaults.temperature).unwrap_or(0.7),
        top_k: s.top_k.or(defaults.top_k).unwrap_or(0),
        top_p: s.top_p.or(defaults.top_p).unwrap_or(1.0),
    };
    sampling.validate().map_err(anyhow::Error::msg)?;
    tracing::info!(
        temperature = sampling.temperature,
        top_k = sampling.top_k,
        top_p = sampling.top_p,
        "sampling"
    );
    if s.n == 0 {
        anyhow::bail!("--n must be at least 1");
    }
    if max_prompt_tokens == 0 {
        anyhow::bail!("--max-prompt-tokens must be positive");
    }
    Ok(SampleOptions {
        n: s.n,
        max_new_tokens: s.max_new_tokens,
        sampling,
        seed: s.sampling_seed,
        stop_strings: s.stop.clone(),
        max_prompt_tokens,
    })
}

/// The compute dtype for the policy model (`--dtype auto` looks at its format; a policy that does
/// not resolve gets the default for no model, and its load reports the problem).
pub fn policy_dtype(compute: &ComputeArgs, policy: &str) -> ComputeDtype {
    match cdr_models::resolve_model(policy) {
        Ok(path) => compute.dtype_for(&[&path]),
        Err(_) => compute.dtype_for(&[]),
    }
}
