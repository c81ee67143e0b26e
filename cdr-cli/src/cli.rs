//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Annotate preference data with a customized density ratio: the log-probability a strong
/// (well-aligned) LLM gives a response minus the one a weak LLM gives it.
#[derive(Debug, Parser)]
#[command(name = "cdr", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// No progress bar (for scripts and logs).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The base model of any PEFT LoRA adapter directory given as a model (--strong, --weak,
    /// --model, --policy, ...) whose recorded base_model_name_or_path is not on this machine.
    /// An adapter and its base in one run share the base's weights.
    #[arg(long, global = true, value_name = "MODEL")]
    pub adapter_base: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score every response of a dataset (pairwise, best-of-N or single-response rows).
    Score(ScoreArgs),
    /// Evaluate pairwise accuracy (per subset, per domain, RewardBench sections).
    Eval(EvalArgs),
    /// Turn best-of-N rows into DPO/SimPO preference pairs (best vs worst, or best vs random).
    Annotate(AnnotateArgs),
    /// Sample N responses per prompt from a policy model into best-of-N rows for `annotate`.
    Generate(GenerateArgs),
    /// Score every response with one model into the log-prob cache (and optionally a file).
    Logprobs(LogprobsArgs),
    /// Rank every ordered strong/weak pair of several models: one scoring pass per model.
    Pairs(PairsArgs),
    /// Assign each row a customization domain; with --gold-field, report routing accuracy.
    Route(RouteArgs),
    /// Print the shipped customization config (criteria, exemplars, routes), to copy and edit.
    Config(ConfigArgs),
    /// Join the outputs of a run split with --shard (or a Slurm / Kubernetes array) into the file
    /// one process would have written, in input order; refuses incomplete or overlapping shards.
    Merge(MergeArgs),
    /// Serve rewards over HTTP for online RL (`/v1/score`, OpenRLHF's `/get_reward`), or one
    /// model's prompt log-probs vLLM-style (`--model`: `/v1/completions`).
    Serve(ServeArgs),
    /// Describe a model: architecture, parameters, storage dtype / quantization, vocabulary,
    /// chat template.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A model directory, a .gguf file, or an HF hub id in the local cache.
    pub model: String,
    /// Also load the weights (in the default dtype: bf16 for GGUF on AMX CPUs, else f32) and
    /// report the load time, peak memory and which matrix-product path the model takes.
    #[arg(long)]
    pub load: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouterKind {
    /// The row's `domain` column, else its `subset` mapped by the config's routes.
    Field,
    /// A router model scores each domain name after a classification prompt.
    Likelihood,
    /// A router model answers the classification prompt (greedy, a few tokens); the domain it
    /// names (between [START] and [END], else the first domain name in the answer) wins, else the
    /// default domain.
    Llm,
}

/// Prompt customization and domain routing.
#[derive(Debug, Clone, Args)]
pub struct CustomizeArgs {
    /// Customize prompts per domain: a preset (none, criteria, exemplars, both, paper) or a TOML
    /// config (see `cdr config --example`). Off when absent.
    #[arg(long)]
    pub customize: Option<String>,

    /// How each row's domain is found.
    #[arg(long, value_enum, default_value = "field")]
    pub router: RouterKind,

    /// Router model for --router likelihood|llm (default: the strong model).
    #[arg(long)]
    pub router_model: Option<String>,

    /// --router likelihood: subtract each label's log-prob given an empty conversation, so a
    /// router model's bias towards one label does not decide every route.
    #[arg(long)]
    pub router_calibrate: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the commented default config.
    #[arg(long)]
    pub example: bool,
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(flatten)]
    pub io: IoArgs,
    #[command(flatten)]
    pub customize: CustomizeArgs,
    /// Router model for --router likelihood|llm (required there unless --strong is given).
    #[arg(long)]
    pub strong: Option<String>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Chat template of the router model (default: its own).
    #[arg(long)]
    pub template: Option<String>,
    /// Where to write `{id, subset, domain}` rows (.jsonl or .parquet).
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
    /// A column with the true domain: prints accuracy and a confusion matrix.
    #[arg(long)]
    pub gold_field: Option<String>,
}

/// `--dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// bf16 for GGUF models on a CPU with AMX, f32 otherwise.
    Auto,
    #[value(alias = "float32", alias = "fp32")]
    F32,
    #[value(alias = "float16", alias = "fp16", alias = "half")]
    F16,
    #[value(alias = "bfloat16")]
    Bf16,
}

impl DtypeArg {
    /// The dtype asked for; `None` for `auto`.
    pub fn fixed(self) -> Option<cdr_core::ComputeDtype> {
        match self {
            DtypeArg::Auto => None,
            DtypeArg::F32 => Some(cdr_core::ComputeDtype::F32),
            DtypeArg::F16 => Some(cdr_core::ComputeDtype::F16),
            DtypeArg::Bf16 => Some(cdr_core::ComputeDtype::BF16),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReductionArg {
    Sum,
    Mean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairStrategyArg {
    /// Highest vs lowest reward (the paper's setting).
    BestWorst,
    /// Highest vs a seeded random response scoring below it.
    BestRandom,
    /// Highest vs lowest `reward - alpha * length` (response tokens), one alpha for the whole
    /// file chosen so that chosen and rejected are equally long on average; samples at the token
    /// limit are dropped. Scores are kept in <output>.scores.jsonl (what resumes).
    LengthControlled,
}

/// The model pair and how it scores.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Strong (better aligned) model: a directory or an HF hub id found in the local cache.
    #[arg(long)]
    pub strong: String,

    /// Weak (less aligned) model: a directory or an HF hub id found in the local cache.
    #[arg(long)]
    pub weak: String,

    /// With --backend remote: the strong model's servers (vLLM-compatible `/v1/completions`),
    /// comma-separated replicas. --strong still names the model's files for its tokenizer and
    /// chat template.
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub strong_url: Vec<String>,

    /// With --backend remote: the weak model's servers.
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub weak_url: Vec<String>,

    #[command(flatten)]
    pub scoring: ScoringArgs,

    /// Tokenize separately for each model when their tokenizers disagree (with a warning)
    /// instead of failing.
    #[arg(long)]
    pub allow_tokenizer_mismatch: bool,
}

/// How texts are rendered, cut and scored: what every scoring command shares.
#[derive(Debug, Clone, Args)]
pub struct ScoringArgs {
    #[command(flatten)]
    pub compute: ComputeArgs,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub remote: RemoteArgs,

    /// Chat template: a built-in name (chatml, llama3, mistral, llama2) or a Jinja file. Default:
    /// the strong model's own (`logprobs`: the model's; `pairs`: each pair's strong model's).
    #[arg(long)]
    pub template: Option<String>,

    /// Longer prompts keep their LAST this many tokens.
    #[arg(long, default_value_t = 2048)]
    pub max_prompt_tokens: usize,

    /// Longer responses keep their FIRST this many tokens.
    #[arg(long, default_value_t = 2048)]
    pub max_response_tokens: usize,

    /// Sum (default) or per-token mean of the log-ratio over the response.
    #[arg(long, value_enum, default_value = "sum")]
    pub reduction: ReductionArg,
}

/// Where log-probs are computed: here, or on vLLM-compatible servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// This machine's CPU or GPU (--device).
    Local,
    /// Servers speaking vLLM's `/v1/completions` with `prompt_logprobs` (vLLM, `cdr serve
    /// --model`), named by --strong-url / --weak-url (--model-url for `logprobs`).
    Remote,
}

/// How cdr talks to remote log-prob servers.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Where the log-probs are computed.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendArg,

    /// A file holding the bearer token the servers require (vLLM's --api-key).
    #[arg(long, value_name = "FILE")]
    pub remote_token_file: Option<PathBuf>,

    /// Seconds one remote request may take.
    #[arg(long, default_value_t = 300)]
    pub remote_timeout: u64,

    /// Retries of a failed remote request (with exponential backoff, on the next URL).
    #[arg(long, default_value_t = 5)]
    pub remote_retries: u32,

    /// Remote requests in flight per URL.
    #[arg(long, default_value_t = 8)]
    pub remote_concurrency: usize,
}

/// Where per-model log-probs are cached.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Log-prob cache directory. `logprobs` and `pairs` always use one; `score`, `eval` and
    /// `annotate` when this is given or the default directory exists.
    #[arg(long, env = "CDR_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// Neither read nor write the log-prob cache (overrides --cache and CDR_CACHE).
    #[arg(long)]
    pub no_cache: bool,
}

/// The cache directory used when `--cache` is not given.
pub const DEFAULT_CACHE: &str = ".cache/cdr/logprobs";

impl CacheArgs {
    /// The cache directory to use: none with `--no-cache`; else `--cache`; else the default one,
    /// when `always` or when it already exists (a cache is reused where one is present).
    pub fn dir(&self, always: bool) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        let default = PathBuf::from(DEFAULT_CACHE);
        self.cache
            .clone()
            .or_else(|| (always || default.is_dir()).then_some(default))
    }
}

/// Where and how the models compute.
#[derive(Debug, Clone, Args)]
pub struct ComputeArgs {
    /// cpu, cuda, cuda:N or wgpu (the GPU backends only in a build with their cargo feature).
    #[arg(long, default_value = "cpu")]
    pub device: cdr_core::Device,

    /// Compute dtype: f32, f16, bf16 or auto (log-probs are always f32). auto: bf16 for GGUF
    /// models on a CPU with AMX (bf16 matrix units), f32 otherwise (the exact path).
    #[arg(long, value_enum, ignore_case = true, default_value = "auto")]
    pub dtype: DtypeArg,

    /// Most tokens (batch x padded length) in one forward pass.
    #[arg(long, default_value_t = 8192)]
    pub max_batch_tokens: usize,

    /// Keep one model in memory at a time: the strong model scores a chunk of rows, its weights
    /// are dropped, then the weak model scores it. Chosen automatically when the two models'
    /// weights would not fit in the available memory together.
    #[arg(long)]
    pub one_model_at_a_time: bool,
}

impl ComputeArgs {
    /// The compute dtype for `models` (resolved paths): `--dtype`, or for `auto` the default of
    /// [`cdr_models::kernels::default_dtype`] (bf16 only when every model is a GGUF file).
    pub fn dtype_for(&self, models: &[&std::path::Path]) -> cdr_core::ComputeDtype {
        cdr_core::engine::ScoringSettings {
            device: self.device,
            dtype: self.dtype.fixed(),
            ..Default::default()
        }
        .dtype_for(models)
    }

    /// Checks that need no model: combinations the backends would only fail on mid-run.
    pub fn validate(&self) -> anyhow::Result<()> {
        let bf16 = self.dtype == DtypeArg::Bf16;
        if self.device == cdr_core::Device::Wgpu && bf16 {
            // WGSL has no bf16: cubecl would panic inside a kernel compile instead of erroring.
            anyhow::bail!(
                "--device wgpu cannot compute in bf16 (WGSL has no bf16 type); use --dtype f16 or f32"
            );
        }
        anyhow::Context::context(self.device.check(), "--device")?;
        Ok(())
    }
}

/// Input and output files.
#[derive(Debug, Clone, Args)]
pub struct IoArgs {
    /// Input dataset: a .jsonl, .json or .parquet file, a dataset directory, or a hub id in the
    /// local HF cache (org/name[@revision]); DIR or id may end in :SPLIT (default train).
    #[arg(long, short)]
    pub input: PathBuf,

    /// Start over instead of resuming an existing output.
    #[arg(long)]
    pub fresh: bool,

    /// Skip invalid rows (reported on stderr) instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,

    /// Rows scored between writes: a killed run redoes at most this many.
    #[arg(long, default_value_t = 64)]
    pub chunk_rows: usize,

    /// Column holding the row id.
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Column holding the prompt (string or message list).
    #[arg(long, default_value = "prompt")]
    pub prompt_field: String,
    /// Column holding the preferred response.
    #[arg(long, default_value = "chosen")]
    pub chosen_field: String,
    /// Column holding the dispreferred response.
    #[arg(long, default_value = "rejected")]
    pub rejected_field: String,
    /// Column holding best-of-N candidate responses.
    #[arg(long, default_value = "responses")]
    pub responses_field: String,
    /// Column holding the subset label.
    #[arg(long, default_value = "subset")]
    pub subset_field: String,
    /// Column holding the domain label.
    #[arg(long, default_value = "domain")]
    pub domain_field: String,
    /// Column holding a single conversation ending in the response.
    #[arg(long, default_value = "messages")]
    pub messages_field: String,
}

/// What every scoring command takes: the pair, the customization, the input.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    #[command(flatten)]
    pub customize: CustomizeArgs,
    #[command(flatten)]
    pub io: IoArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Scored rows (.jsonl or .parquet, or DIR/ for a dataset directory `datasets` loads);
    /// re-running with the same path resumes.
    #[arg(long, short)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Also write the scored rows here (.jsonl or .parquet); re-running resumes from it.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write the JSON report here (default: <output>.report.json when --output is set).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a report with plots into this directory: README.md (Markdown, linked SVGs),
    /// report.html (self-contained), report.json and the SVGs.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Write a RewardBench results file, DIR/<strong model>.json (a hub id `org/name` nests as
    /// RewardBench's results/eval-set/org/name.json): per-subset scores of RewardBench v1
    /// (pairwise rows) or v2 (rows with lists of chosen and rejected), with `ref_model` = weak.
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogprobsArgs {
    /// The model: a directory, a .gguf file or an HF hub id found in the local cache.
    #[arg(long)]
    pub model: String,
    /// With --backend remote: the model's servers (comma-separated replicas).
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub model_url: Vec<String>,
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[command(flatten)]
    pub customize: CustomizeArgs,
    #[command(flatten)]
    pub io: IoArgs,
    /// Also write one row per input row here (.jsonl or .parquet): each response's log-prob sum,
    /// token counts and, with --per-token, its per-token log-probs.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Keep per-token log-probs (in the cache and the output), not only their sums.
    #[arg(long)]
    pub per_token: bool,
    /// Also write each response's token ids as scored (`prompt_ids`, `response_ids`: after the
    /// template, tokenizer and truncation), so another implementation can score the same tokens.
    #[arg(long, requires = "output")]
    pub token_ids: bool,
    /// Sharded runs fill a shared cache in parallel; `cdr pairs` then finds every text cached.
    #[command(flatten)]
    pub shard: ShardArgs,
}

#[derive(Debug, Args)]
pub struct PairsArgs {
    /// Two or more models (directories, .gguf files or hub ids); every ordered pair is evaluated.
    #[arg(long, num_args = 2.., required = true)]
    pub models: Vec<String>,
    #[command(flatten)]
    pub scoring: ScoringArgs,
    #[command(flatten)]
    pub customize: CustomizeArgs,
    #[command(flatten)]
    pub io: IoArgs,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a report with plots into this directory (see `cdr eval --report-dir`), with a
    /// strong x weak accuracy heat map.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnnotateArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Preference pairs in the TRL DPO/SimPO layout (.jsonl or .parquet); re-running resumes.
    #[arg(long, short)]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value = "best-worst")]
    pub pair_strategy: PairStrategyArg,
    /// Seed for --pair-strategy best-random.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generate the responses first: --input holds prompts, and N responses per prompt are
    /// sampled from this policy model into <output>.generated.jsonl, then scored and paired.
    #[arg(long)]
    pub policy: Option<String>,
    /// The policy's chat template (built-in name or Jinja file). Default: its own.
    #[arg(long, requires = "policy")]
    pub policy_template: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// How a long run is split over machines.
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Process only shard I of N (0-based): the rows whose id hashes to I. The output goes to
    /// OUTPUT.shard-I-of-N.EXT; `cdr merge` joins the shards. Default: from a Slurm job array
    /// (SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT), else a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX with --shards); `--shard 0/1` turns that detection off.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// The number of shards, for a Kubernetes Indexed Job (its `completions`).
    #[arg(long, env = "CDR_SHARDS", value_name = "N")]
    pub shards: Option<usize>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Where the merged rows go (.jsonl or .parquet): the file a single unsharded run writes.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Shard outputs. Default: every OUTPUT.shard-I-of-N.EXT beside --output.
    pub shards: Vec<PathBuf>,
    /// The sharded runs' input (prompts for `generate`): its row order is the merged order.
    #[command(flatten)]
    pub io: IoArgs,
}

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
}

/// `cdr serve`: a pair (`--strong`, `--weak`) or one model (`--model`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Strong model of the pair to serve (`/v1/score`, `/get_reward`).
    #[arg(long, requires = "weak", conflicts_with = "model")]
    pub strong: Option<String>,

    /// Weak model of the pair to serve.
    #[arg(long, requires = "strong")]
    pub weak: Option<String>,

    /// Serve this one model's prompt log-probs on a vLLM-compatible `/v1/completions` (for
    /// `--backend remote` clients, or any vLLM client).
    #[arg(long, required_unless_present = "strong")]
    pub model: Option<String>,

    /// The name `/v1/completions` and `/v1/models` know the model by (default: --model as given).
    #[arg(long)]
    pub served_model_name: Option<String>,

    /// With --backend remote: the strong model's servers (a pair server in front of vLLM).
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub strong_url: Vec<String>,

    /// With --backend remote: the weak model's servers.
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub weak_url: Vec<String>,

    #[command(flatten)]
    pub scoring: ScoringArgs,

    /// Tokenize separately for each model when their tokenizers disagree.
    #[arg(long)]
    pub allow_tokenizer_mismatch: bool,

    #[command(flatten)]
    pub customize: CustomizeArgs,

    /// Address to listen on. The default answers this machine only; binding elsewhere without
    /// --token-file is warned about.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,

    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,

    /// A file holding the bearer token every route but /health requires.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Longest a request waits for others to share its batch, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub max_wait_ms: u64,

    /// Requests waiting beyond this many are answered 503 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    pub max_queue: usize,

    /// Largest request body, in bytes (413 above).
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: usize,

    /// On SIGTERM, seconds the requests in flight may take to finish.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout: u64,

    /// Seconds a connection has to send its request line and headers (slow clients are
    /// dropped).
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,

    /// Seconds a request body has to arrive (408 after).
    #[arg(long, default_value_t = 30)]
    pub body_timeout: u64,
}
