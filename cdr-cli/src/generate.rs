//! `cdr generate`: N sampled responses per prompt from a policy model, written as best-of-N rows
//! (`prompt` + `responses`) that `cdr annotate` reads; `cdr annotate --policy` runs it first.

use std::path::PathBuf;

use anyhow::{Context, bail};
use cdr_core::SampleOptions;
use cdr_core::engine::{GenerateSettings, GenerateSummary, generate_file, generated_path};
use cdr_models::Sampling;
use clap::Args;

use crate::cli::{AnnotateArgs, ComputeArgs, IoArgs};
use crate::job::{Printer, input, output, with_hint};
use crate::shard::ShardArgs;

/// How responses are sampled (`cdr generate` and `cdr annotate --policy`).
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Responses sampled per prompt.
    #[arg(long, short = 'n', default_value_t = 4)]
    pub n: usize,
    /// Sampling temperature; 0 is greedy decoding (then all N responses are the same). Default:
    /// the policy's generation_config.json, else 0.7.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling: draw from the smallest set of tokens holding this much probability.
    /// Default: the policy's generation_config.json, else 1 (off).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Draw from the K most likely tokens only (0: all). Default: the policy's
    /// generation_config.json, else 0.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Most tokens generated per response.
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Responses decoded together, prompts × N (more: faster, and more memory for the key/value
    /// cache). On the CPU in f32, prompts batched together get exactly the responses they get
    /// alone; with bf16/f16 or on a GPU, rounding may differ with the batch.
    #[arg(long, default_value_t = 32)]
    pub batch_rows: usize,
    /// Seed of the samples; with the row id it fixes each prompt's samples, so a resumed or
    /// reordered run draws the same ones.
    #[arg(long, default_value_t = 0)]
    pub sampling_seed: u64,
    /// End a response at this text (left out of it); repeatable. The model's end-of-sequence ids
    /// and the chat template's end-of-turn token always end it.
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    /// The options for sampling from `policy`: each setting from its flag, else from the policy's
    /// generation_config.json (as transformers' `generate` would), else the flag's default.
    pub fn options(&self, max_prompt_tokens: usize, policy: &str) -> anyhow::Result<SampleOptions> {
        let path = cdr_models::resolve_model(policy).context("--policy")?;
        let defaults = cdr_models::model_sampling_defaults(&cdr_models::ModelDir::new(&path))?;
        let sampling = Sampling {
            temperature: self.temperature.or(defaults.temperature).unwrap_or(0.7),
            top_k: self.top_k.or(defaults.top_k).unwrap_or(0),
            top_p: self.top_p.or(defaults.top_p).unwrap_or(1.0),
        };
        sampling.validate().map_err(anyhow::Error::msg)?;
        tracing::info!(
            temperature = sampling.temperature,
            top_k = sampling.top_k,
            top_p = sampling.top_p,
            "sampling"
        );
        if self.n == 0 {
            bail!("--n must be at least 1");
        }
        if max_prompt_tokens == 0 {
            bail!("--max-prompt-tokens must be positive");
        }
        Ok(SampleOptions {
            n: self.n,
            max_new_tokens: self.max_new_tokens,
            sampling,
            seed: self.sampling_seed,
            stop_strings: self.stop.clone(),
            max_prompt_tokens,
        })
    }
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The policy model: a directory, a .gguf file or an HF hub id found in the local cache.
    #[arg(long)]
    pub policy: String,
    /// The policy's chat template (built-in name or Jinja file). Default: its own.
    #[arg(long)]
    pub policy_template: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Longer prompts keep their LAST this many tokens.
    #[arg(long, default_value_t = 2048)]
    pub max_prompt_tokens: usize,
    #[command(flatten)]
    pub compute: ComputeArgs,
    #[command(flatten)]
    pub io: IoArgs,
    /// Best-of-N rows (.jsonl or .parquet); re-running with the same path resumes.
    #[arg(long, short)]
    pub output: PathBuf,
    #[command(flatten)]
    pub shard: ShardArgs,
    #[arg(skip)]
    pub quiet: bool,
}

impl GenerateArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let settings = GenerateSettings {
            policy: self.policy.clone(),
            template: self.policy_template.clone(),
            sample: self
                .sampling
                .options(self.max_prompt_tokens, &self.policy)?,
            device: self.compute.device,
            dtype: policy_dtype(&self.compute, &self.policy)?,
            batch_rows: self.sampling.batch_rows,
            skip_invalid: self.io.skip_invalid,
        };
        let out = output(&self.io, &self.output, self.shard.resolve()?);
        let mut printer = Printer::new(self.quiet);
        let summary =
            generate_file(&settings, &input(&self.io), &out, &mut printer).map_err(with_hint)?;
        report(&summary, &printer, &out.file());
        Ok(())
    }
}

/// The summary of a generation run on stderr.
fn report(s: &GenerateSummary, printer: &Printer, path: &std::path::Path) {
    let (tokens, secs) = printer.last_stage();
    eprintln!(
        "cdr: {} prompts generated ({} already done), {} responses, {:.0} new tokens/s; \
         endings {:?}",
        s.rows,
        s.resumed,
        s.responses,
        tokens as f64 / secs.max(1e-9),
        s.finish
    );
    if s.empty > 0 {
        eprintln!("cdr: {} empty responses left out", s.empty);
    }
    if !s.no_response.is_empty() {
        eprintln!(
            "cdr: {} prompts got no non-empty response and were not written: {}",
            s.no_response.len(),
            s.no_response.join(", ")
        );
    }
    for (id, why) in &s.failed {
        eprintln!("  skipped row `{id}`: {why}");
    }
    eprintln!("cdr: {} rows in {}", s.written, path.display());
}

/// `cdr annotate --policy`: samples responses for the prompts of `--input` into
/// [`generated_path`] and points the annotation at that file. Without `--policy`, `args` as given.
pub fn generate_first(mut args: AnnotateArgs) -> anyhow::Result<AnnotateArgs> {
    let Some(policy) = args.policy.clone() else {
        return Ok(args);
    };
    let scoring = &args.run.models.scoring;
    let options = args.sampling.options(scoring.max_prompt_tokens, &policy)?;
    // Each shard generates only its own prompts, beside its own output.
    let shard = args.run.shard.resolve()?;
    let annotated = output(&args.run.io, &args.output, shard);
    let generated = generated_path(&annotated.file());
    let settings = GenerateSettings {
        policy: policy.clone(),
        template: args.policy_template.clone(),
        sample: options,
        device: scoring.compute.device,
        dtype: policy_dtype(&scoring.compute, &policy)?,
        batch_rows: args.sampling.batch_rows,
        skip_invalid: args.run.io.skip_invalid,
    };
    let mut printer = Printer::new(args.run.quiet);
    let summary = settings
        .generate_into(
            &input(&args.run.io),
            &generated,
            args.run.io.fresh,
            shard,
            &mut printer,
        )
        .map_err(with_hint)?;
    report(&summary, &printer, &generated);
    // The generated file uses the default column names, whatever the prompts file used.
    let io = &mut args.run.io;
    io.input = generated;
    io.id_field = "id".into();
    io.prompt_field = "prompt".into();
    io.responses_field = "responses".into();
    io.subset_field = "subset".into();
    io.domain_field = "domain".into();
    Ok(args)
}

/// `cdr annotate`, generating first when `--policy` is given.
pub struct Annotate(pub AnnotateArgs);

impl Annotate {
    pub fn run(self) -> anyhow::Result<()> {
        generate_first(self.0)?.run()
    }
}

/// The compute dtype for the policy model (`--dtype auto` looks at its format; a policy that does
/// not resolve gets the default for no model, and its load reports the problem).
fn policy_dtype(
    compute: &crate::cli::ComputeArgs,
    policy: &str,
) -> anyhow::Result<cdr_core::ComputeDtype> {
    match cdr_models::resolve_model(policy) {
        Ok(path) => compute.dtype_for(&[&path]),
        Err(_) => compute.dtype_for(&[]),
    }
}
