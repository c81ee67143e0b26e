//! Loading a model from a Hugging Face model directory.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use cdr_types::hub::{self, HubId, RepoKind};
use tracing::info;

use crate::adapter::{self, Adapter};
use crate::config::Config;
use crate::error::Result;
use crate::gguf;
use crate::llama::LlamaForCausalLm;
use crate::safetensors::SafetensorsWeights;
use crate::tokenizer::{TOKENIZER_FILE, Tokenizer, as_transformers_loads, load_tokenizer};
use crate::weights::{ComputeDtype, Weights};

pub const CONFIG_FILE: &str = "config.json";

/// How to load a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// The dtype the weights are converted to and the forward runs in.
    pub dtype: ComputeDtype,
}

/// A model on disk: a Hugging Face directory (`config.json`, safetensors weights single or
/// sharded, `tokenizer.json`) or a single GGUF file (config, tokenizer and chat template from its
/// metadata, quantized weights dequantized on load).
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The directory, or the GGUF file.
    pub path: PathBuf,
}

/// A chat template shipped inside a checkpoint (GGUF `tokenizer.chat_template`), with the texts of
/// its special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedTemplate {
    /// The Jinja source.
    pub source: String,
    /// The text of the beginning-of-sequence token the template may use.
    pub bos_token: String,
    /// The text of the end-of-sequence token.
    pub eos_token: String,
}

impl ModelDir {
    /// A model at `path`: a Hugging Face directory or a `.gguf` file (nothing is read yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Whether this is a GGUF file rather than a directory.
    pub fn is_gguf(&self) -> bool {
        self.path.is_file()
            && self
                .path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    }

    /// Whether this is a PEFT adapter directory (`adapter_config.json`), whose base holds the
    /// config, tokenizer and most weights.
    pub fn is_adapter(&self) -> bool {
        adapter::is_adapter_dir(&self.path)
    }

    /// The adapter, for an adapter directory.
    pub fn adapter(&self) -> Result<Option<Adapter>> {
        if !self.is_adapter() {
            return Ok(None);
        }
        Adapter::open(&self.path).map(Some)
    }

    /// The model that holds the config, tokenizer and base weights: an adapter's base, else this.
    pub fn resolved(&self) -> Result<ModelDir> {
        match self.adapter()? {
            Some(adapter) => {
                let base = ModelDir::new(adapter.base()?);
                if base.is_adapter() {
                    return Err(crate::ModelError::Input(format!(
                        "adapter {}: its base {} is itself an adapter (stacked adapters are not \
                         supported; merge the first one)",
                        self.path.display(),
                        base.path.display()
                    )));
                }
                Ok(base)
            }
            None => Ok(self.clone()),
        }
    }

    /// Whether the weights (an adapter's base's) come from a GGUF file.
    pub fn weights_are_gguf(&self) -> bool {
        self.resolved().is_ok_and(|d| d.is_gguf())
    }

    /// The model's configuration: `config.json`, or a GGUF file's metadata (an adapter's base's).
    pub fn config(&self) -> Result<Config> {
        if self.is_adapter() {
            return self.resolved()?.config();
        }
        if self.is_gguf() {
            return gguf::config_from_gguf(&gguf::GgufFile::open(&self.path)?);
        }
        Config::from_file(self.path.join(CONFIG_FILE))
    }

    /// The model's tokenizer: `tokenizer.json`, or built from a GGUF file's metadata.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        // An adapter cannot change the vocabulary (a replaced embedding must keep its shape), so
        // the base's tokenizer is the one.
        if self.is_adapter() {
            return self.resolved()?.tokenizer();
        }
        if self.is_gguf() {
            return gguf_tokenizer(&gguf::GgufFile::open(&self.path)?);
        }
        let tokenizer = load_tokenizer(self.path.join(TOKENIZER_FILE))?;
        // The model type decides how transformers builds the tokenizer; a broken config.json is
        // reported where the model loads, so here it only leaves the file as written.
        match self.config() {
            Ok(config) => as_transformers_loads(tokenizer, &config.model_type),
            Err(_) => Ok(tokenizer),
        }
    }

    /// The chat template stored in a GGUF file. Directories keep theirs in
    /// `tokenizer_config.json`, which `cdr-prompt` reads; this returns `None` for them.
    pub fn embedded_template(&self) -> Result<Option<EmbeddedTemplate>> {
        if self.is_adapter() {
            return self.resolved()?.embedded_template();
        }
        if !self.is_gguf() {
            return Ok(None);
        }
        let file = gguf::GgufFile::open(&self.path)?;
        let Some(source) = gguf::chat_template(&file) else {
            return Ok(None);
        };
        let tokens = file.get_str_array("tokenizer.ggml.tokens")?.unwrap_or(&[]);
        let text = |key: &str| -> Result<String> {
            Ok(file
                .get_u32(key)?
                .and_then(|id| tokens.get(id as usize).cloned())
                .unwrap_or_default())
        };
        Ok(Some(EmbeddedTemplate {
            source,
            bos_token: text("tokenizer.ggml.bos_token_id")?,
            eos_token: text("tokenizer.ggml.eos_token_id")?,
        }))
    }

    /// Loads the model on `device`, converting weights to `options.dtype` tensor by tensor.
    pub fn load<B: Backend>(
        &self,
        device: &B::Device,
        options: LoadOptions,
    ) -> Result<LlamaForCausalLm<B>> {
        if let Some(adapter) = self.adapter()? {
            let base = self.resolved()?.load(device, options)?;
            return adapter.apply(&base);
        }
        let config = self.config()?;
        let start = std::time::Instant::now();
        let model = if self.is_gguf() {
            let source = gguf::GgufWeights::open(&self.path)?;
            LlamaForCausalLm::load(&Weights::new(&source, device, options.dtype), &config)?
        } else {
            let source = SafetensorsWeights::open_dir(&self.path)?;
            LlamaForCausalLm::load(&Weights::new(&source, device, options.dtype), &config)?
        };
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

/// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
fn gguf_tokenizer(file: &gguf::GgufFile) -> Result<Tokenizer> {
    let err = |message: String| crate::ModelError::Tokenizer {
        path: file.path().to_path_buf(),
        message,
    };
    let strings = |key: &str| -> Result<Vec<String>> {
        Ok(file
            .get_str_array(key)?
            .map(<[String]>::to_vec)
            .unwrap_or_default())
    };
    let scores = match file.get_array("tokenizer.ggml.scores")? {
        Some(gguf::MetadataArray::F32(v)) => v.clone(),
        Some(gguf::MetadataArray::F64(v)) => v.iter().map(|&x| x as f32).collect(),
        Some(other) => {
            return Err(err(format!(
                "tokenizer.ggml.scores holds {}, expected floats",
                other.element_type_name()
            )));
        }
        None => Vec::new(),
    };
    let data = gguf::tokenizer::GgufTokenizerData {
        model: file
            .get_str("tokenizer.ggml.model")?
            .ok_or_else(|| err("no tokenizer.ggml.model in the metadata".into()))?
            .to_string(),
        pre: file.get_str("tokenizer.ggml.pre")?.map(str::to_string),
        tokens: strings("tokenizer.ggml.tokens")?,
        token_types: file
            .get_i64_array("tokenizer.ggml.token_type")?
            .unwrap_or_default()
            .into_iter()
            .map(|t| t as i32)
            .collect(),
        scores,
        merges: strings("tokenizer.ggml.merges")?,
        bos_id: file.get_u32("tokenizer.ggml.bos_token_id")?,
        eos_id: file.get_u32("tokenizer.ggml.eos_token_id")?,
        unk_id: file.get_u32("tokenizer.ggml.unknown_token_id")?,
        pad_id: file.get_u32("tokenizer.ggml.padding_token_id")?,
        add_bos: file.get_bool("tokenizer.ggml.add_bos_token")?,
        add_eos: file.get_bool("tokenizer.ggml.add_eos_token")?,
    };
    gguf::tokenizer::build_tokenizer(&data).map_err(err)
}

/// Resolves a model argument: a local directory, a `.gguf` file, or a Hugging Face hub id
/// (`org/name`, `org/name@revision` for a branch, tag or commit) found in the local hub cache
/// (located as huggingface_hub locates it: [`cdr_types::hub::cache_dir`]). Never touches the
/// network.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() || (path.is_file() && ModelDir::new(path).is_gguf()) {
        return Ok(path.to_path_buf());
    }
    match HubId::parse(spec) {
        Some(id) => hub::snapshot(RepoKind::Model, &id).map_err(|e| {
            crate::ModelError::Input(format!("model `{spec}` is not a directory, and {e}"))
        }),
        None => Err(crate::ModelError::Input(format!(
            "model `{spec}` is not a directory, a .gguf file or a hub id (org/name[@revision])"
        ))),
    }
}
