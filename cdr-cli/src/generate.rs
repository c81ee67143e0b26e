//! `cdr generate`: N sampled responses per prompt from a policy model, written as best-of-N rows
//! (`prompt` + `responses`) that `cdr annotate` reads; `cdr annotate --policy` runs it first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cdr_core::Device;
use cdr_core::{Policy, SampleOptions};
use cdr_data::{Message, PromptRow, RecordWriter, read_prompts};
use cdr_models::{FinishReason, Sampling};
use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::warn;

use crate::cli::{AnnotateArgs, ComputeArgs, IoArgs};
use crate::commands::report_skipped;
use crate::job::{read_options, write_options};
use crate::progress::Progress;
use crate::shard::{ShardArgs, ShardedOutput};

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
    pub fn run(self, device: Device) -> anyhow::Result<()> {
        let options = self
            .sampling
            .options(self.max_prompt_tokens, &self.policy)?;
        let out = ShardedOutput::begin(self.shard.resolve()?, &self.output)?;
        let job = GenerateJob {
            policy: &self.policy,
            template: self.policy_template.as_deref(),
            options: &options,
            dtype: policy_dtype(&self.compute, &self.policy)?,
            io: &self.io,
            output: &out.path,
            shard: out.shard,
            batch_rows: self.sampling.batch_rows,
            quiet: self.quiet,
        };
        let written = job.run(&device)?;
        out.finish(&self.io.input, written)
    }
}

/// One generation run, from `cdr generate` or the first step of `cdr annotate --policy`.
pub struct GenerateJob<'a> {
    pub policy: &'a str,
    pub template: Option<&'a str>,
    pub options: &'a SampleOptions,
    pub dtype: cdr_core::ComputeDtype,
    pub io: &'a IoArgs,
    pub output: &'a Path,
    /// Only the prompts this shard owns.
    pub shard: Option<cdr_data::Shard>,
    /// Sequences decoded together (prompts × responses per prompt).
    pub batch_rows: usize,
    pub quiet: bool,
}

/// One written row: a best-of-N row plus how its responses came about.
#[derive(Serialize)]
struct GeneratedRow<'a> {
    id: &'a str,
    prompt: &'a [Message],
    responses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    policy: &'a str,
    /// Per response: why it ended, and its new tokens (a stop id included).
    finish_reasons: Vec<FinishReason>,
    response_tokens: Vec<usize>,
    /// Samples left out because their text was empty (a response must have text to be scored).
    empty_responses: usize,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

const OWN_FIELDS: [&str; 9] = [
    "id",
    "prompt",
    "responses",
    "subset",
    "domain",
    "policy",
    "finish_reasons",
    "response_tokens",
    "empty_responses",
];

#[derive(Debug, Default)]
struct GenerateStats {
    resumed: usize,
    rows: usize,
    responses: usize,
    empty: usize,
    no_response: Vec<String>,
    failed: Vec<(String, String)>,
    finish: BTreeMap<String, usize>,
}

impl GenerateJob<'_> {
    /// Writes one prompt's samples as a best-of-N row (if any response has text).
    fn write_row(
        &self,
        row: &PromptRow,
        samples: Vec<cdr_models::Generation>,
        writer: &mut RecordWriter,
        stats: &mut GenerateStats,
    ) -> anyhow::Result<()> {
        let mut record = GeneratedRow {
            id: &row.id,
            prompt: &row.prompt,
            responses: Vec::new(),
            subset: row.subset.as_deref(),
            domain: row.domain.as_deref(),
            policy: self.policy,
            finish_reasons: Vec::new(),
            response_tokens: Vec::new(),
            empty_responses: 0,
            extra: row
                .extra
                .iter()
                .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        for s in samples {
            *stats.finish.entry(format!("{:?}", s.finish)).or_default() += 1;
            match s.text {
                Some(text) if !text.trim().is_empty() => {
                    record.responses.push(text);
                    record.finish_reasons.push(s.finish);
                    record.response_tokens.push(s.ids.len());
                }
                _ => record.empty_responses += 1,
            }
        }
        stats.empty += record.empty_responses;
        if record.responses.is_empty() {
            // Not written: a best-of-N row needs a response. A resumed run tries again (and, with
            // the same seed, gets the same result).
            stats.no_response.push(row.id.clone());
            return Ok(());
        }
        stats.responses += record.responses.len();
        stats.rows += 1;
        writer.write(&record)?;
        Ok(())
    }

    /// Generates into the output; returns how many rows it holds.
    pub fn run(&self, device: &Device) -> anyhow::Result<usize> {
        let io = self.io;
        let path = cdr_models::resolve_model(self.policy).context("--policy")?;
        let mut outcome = read_prompts(&io.input, &read_options(io))?;
        report_skipped(&outcome);
        if let Some(shard) = self.shard {
            outcome.rows.retain(|r| shard.contains(&r.id));
        }
        let mut writer = RecordWriter::open(self.output, &write_options(io))?;
        let todo: Vec<&PromptRow> = outcome
            .rows
            .iter()
            .filter(|r| !writer.contains(&r.id))
            .collect();
        let mut stats = GenerateStats {
            resumed: outcome.rows.len() - todo.len(),
            ..Default::default()
        };
        let policy = match todo.is_empty() {
            true => None,
            false => Some(Policy::load(&path, self.template, device, self.dtype)?),
        };
        // Started after loading, so tokens/s measures generation alone.
        let mut progress = Progress::new(todo.len(), "generate", self.quiet);
        if let Some(policy) = &policy {
            // Rows whose samples decode together: about `batch_rows` sequences per step.
            let per_batch = (self.batch_rows / self.options.n.max(1)).max(1);
            for chunk in todo.chunks(per_batch) {
                let rows: Vec<(&str, &[Message])> = chunk
                    .iter()
                    .map(|r| (r.id.as_str(), r.prompt.as_slice()))
                    .collect();
                let results = policy
                    .sample_many(&rows, self.options, &mut |n| progress.tokens(n))
                    .with_context(|| {
                        format!(
                            "{}: rows `{}` .. `{}`",
                            io.input.display(),
                            rows.first().map_or("", |r| r.0),
                            rows.last().map_or("", |r| r.0)
                        )
                    })?;
                for (row, result) in chunk.iter().zip(results) {
                    let samples = match result {
                        Ok(s) => s,
                        Err(e) if io.skip_invalid => {
                            warn!(id = %row.id, "skipped: {e}");
                            stats.failed.push((row.id.clone(), e.to_string()));
                            progress.rows(1);
                            continue;
                        }
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!(
                                    "{}: row `{}` (use --skip-invalid to continue past bad rows)",
                                    io.input.display(),
                                    row.id
                                )
                            });
                        }
                    };
                    self.write_row(row, samples, &mut writer, &mut stats)?;
                    progress.rows(1);
                }
            }
        }
        progress.finish();
        let written = writer.finish()?;
        eprintln!(
            "cdr: {} prompts generated ({} already done), {} responses, {:.0} new tokens/s; \
             endings {:?}",
            stats.rows,
            stats.resumed,
            stats.responses,
            progress.total_tokens() as f64 / progress.elapsed_secs().max(1e-9),
            stats.finish
        );
        if stats.empty > 0 {
            eprintln!("cdr: {} empty responses left out", stats.empty);
        }
        if !stats.no_response.is_empty() {
            eprintln!(
                "cdr: {} prompts got no non-empty response and were not written: {}",
                stats.no_response.len(),
                stats.no_response.join(", ")
            );
        }
        for (id, why) in &stats.failed {
            eprintln!("  skipped row `{id}`: {why}");
        }
        eprintln!("cdr: {written} rows in {}", self.output.display());
        Ok(written)
    }
}

/// Where `cdr annotate --policy` keeps the generated rows: `<output>.generated.jsonl`, so a killed
/// run resumes generation too.
pub fn generated_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".generated.jsonl");
    PathBuf::from(name)
}

/// `cdr annotate --policy`: samples responses for the prompts of `--input` into
/// [`generated_path`] and points the annotation at that file. Without `--policy`, `args` as given.
pub fn generate_first(mut args: AnnotateArgs, device: &Device) -> anyhow::Result<AnnotateArgs> {
    let Some(policy) = args.policy.clone() else {
        return Ok(args);
    };
    let scoring = &args.run.models.scoring;
    let options = args.sampling.options(scoring.max_prompt_tokens, &policy)?;
    // Each shard generates only its own prompts, beside its own output.
    let shard = args.run.shard.resolve()?;
    let generated = generated_path(&ShardedOutput::begin(shard, &args.output)?.path);
    GenerateJob {
        policy: &policy,
        template: args.policy_template.as_deref(),
        options: &options,
        dtype: policy_dtype(&scoring.compute, &policy)?,
        io: &args.run.io,
        output: &generated,
        shard,
        batch_rows: args.sampling.batch_rows,
        quiet: args.run.quiet,
    }
    .run(device)?;
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
    pub fn run(self, device: Device) -> anyhow::Result<()> {
        let args = generate_first(self.0, &device)?;
        args.run()
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
