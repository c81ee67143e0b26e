//! Loading a model from a Hugging Face model directory.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use tracing::info;

use crate::config::Config;
use crate::error::Result;
use crate::llama::LlamaForCausalLm;
use crate::safetensors::SafetensorsWeights;
use crate::tokenizer::{TOKENIZER_FILE, Tokenizer, load_tokenizer};
use crate::weights::{ComputeDtype, Weights};

pub const CONFIG_FILE: &str = "config.json";

/// How to load a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// The dtype the weights are converted to and the forward runs in.
    pub dtype: ComputeDtype,
}

/// A model directory: `config.json`, safetensors weights (single or sharded), `tokenizer.json`.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
}

impl ModelDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn config(&self) -> Result<Config> {
        Config::from_file(self.path.join(CONFIG_FILE))
    }

    pub fn tokenizer(&self) -> Result<Tokenizer> {
        load_tokenizer(self.path.join(TOKENIZER_FILE))
    }

    /// Loads the model on `device`, converting weights to `options.dtype` tensor by tensor.
    pub fn load<B: Backend>(
        &self,
        device: &B::Device,
        options: LoadOptions,
    ) -> Result<LlamaForCausalLm<B>> {
        let config = self.config()?;
        let source = SafetensorsWeights::open_dir(&self.path)?;
        let start = std::time::Instant::now();
        let model = LlamaForCausalLm::load(&Weights::new(&source, device, options.dtype), &config)?;
        info!(
            dir = %self.path.display(),
            model_type = %config.model_type,
            layers = config.num_hidden_layers,
            dtype = %options.dtype,
            secs = start.elapsed().as_secs_f32(),
            "loaded model"
        );
        Ok(model)
    }
}

/// Shorthand for `ModelDir::new(dir).load(device, options)`.
pub fn load_model<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
    options: LoadOptions,
) -> Result<LlamaForCausalLm<B>> {
    ModelDir::new(dir.as_ref()).load(device, options)
}

/// Resolves a model argument: a local directory, or a Hugging Face hub id (`org/name`) found in the
/// local hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). Never
/// touches the network.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let cache = hub_cache_dir();
    if let (Some(cache), Some((org, name))) = (&cache, spec.split_once('/'))
        && !org.is_empty()
        && !name.is_empty()
        && !name.contains('/')
    {
        let repo = cache.join(format!("models--{org}--{name}"));
        let snapshots = repo.join("snapshots");
        let pinned = std::fs::read_to_string(repo.join("refs").join("main"))
            .ok()
            .map(|r| snapshots.join(r.trim()))
            .filter(|p| p.is_dir());
        let any = || {
            std::fs::read_dir(&snapshots)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.is_dir())
        };
        if let Some(dir) = pinned.or_else(any) {
            return Ok(dir);
        }
    }
    Err(crate::ModelError::Input(format!(
        "model `{spec}` is not a directory{}",
        match cache {
            Some(c) => format!(" and not in the local Hugging Face cache ({})", c.display()),
            None => String::new(),
        }
    )))
}

fn hub_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))
}
