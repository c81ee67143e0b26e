//! PEFT LoRA adapters over a base checkpoint, computed unmerged so the base is shared.
//!
//! An adapter directory (`adapter_config.json` + `adapter_model.safetensors`, as PEFT's
//! `save_pretrained` writes it) names its base in `base_model_name_or_path`. cdr builds the adapted
//! model from the already loaded base: every tensor of the base is shared (burn tensors and packed
//! weights are reference counted), and each adapted projection adds `scaling · (x Aᵀ) Bᵀ`, in f32
//! as PEFT computes it (PEFT casts adapter weights to f32 and adds in f32 before rounding to the
//! base's dtype). So an adapter over its base beside the base itself costs one base plus the
//! low-rank factors in memory, where merging would cost a second full model.
//!
//! The strong pass cannot reuse the weak pass's `x·W`: the hidden states differ from the first
//! adapted projection on, so only work before it (the embedding lookup) would be shared, which is
//! not worth a coupled forward. What is shared is the weights.

mod config;
pub(crate) mod lora;
mod modules;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use cdr_types::hub::{self, HubId, RepoKind};

pub use config::ADAPTER_CONFIG_FILE;
use config::AdapterConfig;
use lora::LoraDelta;

use crate::error::{ModelError, Result};
use crate::llama::LlamaForCausalLm;
use crate::safetensors::SafetensorsWeights;
use crate::weights::{ComputeDtype, WeightSource, convert};

/// The adapter's weights file.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// Where PEFT's state dict puts the transformers model's parameters.
const KEY_PREFIX: &str = "base_model.model.";

/// The base for adapters whose recorded `base_model_name_or_path` does not exist here
/// (`--adapter-base`).
static FALLBACK_BASE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Whether `path` is a PEFT adapter directory.
pub fn is_adapter_dir(path: &Path) -> bool {
    path.is_dir() && path.join(ADAPTER_CONFIG_FILE).is_file()
}

/// Uses `base` for every adapter whose recorded base path does not exist on this machine (a CLI's
/// `--adapter-base`): settings resolved once, for the whole process. A recorded base that exists
/// still wins, so one flag can serve a strong and a weak adapter over different bases.
pub fn set_fallback_base(base: impl Into<PathBuf>) {
    if let Ok(mut slot) = FALLBACK_BASE.lock() {
        *slot = Some(base.into());
    }
}

fn fallback_base() -> Option<PathBuf> {
    FALLBACK_BASE.lock().ok()?.clone()
}

/// A LoRA adapter directory, read and checked (no tensors loaded yet).
#[derive(Debug, Clone)]
pub struct Adapter {
    dir: PathBuf,
    config: AdapterConfig,
}

impl Adapter {
    /// Reads `dir/adapter_config.json`, refusing settings cdr does not compute (naming the key),
    /// and checks the weights file is there.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = AdapterConfig::from_dir(dir)?;
        let weights = dir.join(ADAPTER_WEIGHTS_FILE);
        if !weights.is_file() {
            if dir.join("adapter_model.bin").is_file() {
                return Err(ModelError::Input(format!(
                    "{}: adapter_model.bin (a pickle) is not read; save the adapter with \
                     safe_serialization=True (PEFT's default) to get {ADAPTER_WEIGHTS_FILE}",
                    dir.display()
                )));
            }
            return Err(ModelError::NoWeights { path: weights });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// An adapter at `dir` from the text of its `adapter_config.json` (checked as [`Self::open`]
    /// checks it; the weights are not looked for). For tests and the fuzz target.
    #[doc(hidden)]
    pub fn from_config_text(text: &str, dir: &Path) -> Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            config: AdapterConfig::parse(text, &dir.join(ADAPTER_CONFIG_FILE))?,
        })
    }

    /// The rank and scaling module `name` (`model.layers.0.self_attn.q_proj`) gets, if the config
    /// targets it.
    pub fn module(&self, name: &str) -> Option<(usize, f64)> {
        self.config
            .targets(name)
            .then(|| (self.config.rank_alpha(name).0, self.config.scaling(name)))
    }

    /// The adapter directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A one-line summary: `LoRA r 16, alpha 32, rank-stabilized, modules_to_save [lm_head]`.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let mut out = format!("LoRA r {}, alpha {}", c.r, c.lora_alpha);
        if c.use_rslora {
            out.push_str(", rank-stabilized");
        }
        if !c.rank_pattern.is_empty() || !c.alpha_pattern.is_empty() {
            out.push_str(", per-module rank/alpha patterns");
        }
        if !c.modules_to_save.is_empty() {
            out.push_str(&format!(", modules_to_save {:?}", c.modules_to_save));
        }
        out
    }

    /// The base model: `base_model_name_or_path` as a path (a relative one against the adapter's
    /// directory, where PEFT would take the current directory: an adapter folder moved together
    /// with its base keeps working), a GGUF file, or a hub id in the local cache; else the
    /// fallback base ([`set_fallback_base`]).
    pub fn base(&self) -> Result<PathBuf> {
        let recorded = self.config.base_model_name_or_path.as_deref();
        if let Some(spec) = recorded {
            let path = Path::new(spec);
            let candidates = if path.is_absolute() {
                vec![path.to_path_buf()]
            } else {
                vec![self.dir.join(path), path.to_path_buf()]
            };
            for c in candidates {
                if c.is_dir() || c.is_file() {
                    return Ok(c);
                }
            }
            if let Some(id) = HubId::parse(spec)
                && let Ok(snapshot) = hub::snapshot(RepoKind::Model, &id)
            {
                return Ok(snapshot);
            }
        }
        if let Some(base) = fallback_base() {
            return Ok(base);
        }
        Err(ModelError::Input(match recorded {
            Some(spec) => format!(
                "adapter {}: its base `{spec}` (base_model_name_or_path) is neither a path here \
                 nor a hub id in the local cache (cdr never downloads); name the base with \
                 --adapter-base",
                self.dir.display()
            ),
            None => format!(
                "adapter {}: adapter_config.json names no base (base_model_name_or_path); name \
                 it with --adapter-base",
                self.dir.display()
            ),
        }))
    }

    /// The adapted model: `base`'s tensors shared, the adapter's low-rank paths and replacement
    /// tensors added.
    pub fn apply<B: Backend>(&self, base: &LlamaForCausalLm<B>) -> Result<LlamaForCausalLm<B>> {
        let path = self.dir.join(ADAPTER_WEIGHTS_FILE);
        let source = SafetensorsWeights::open_files(&path, std::slice::from_ref(&path))?;
        let bad = |message: String| ModelError::Checkpoint {
            path: path.clone(),
            message,
        };
        let mut a: BTreeMap<String, String> = BTreeMap::new();
        let mut b: HashMap<String, String> = HashMap::new();
        let mut emb_a: BTreeMap<String, String> = BTreeMap::new();
        let mut emb_b: HashMap<String, String> = HashMap::new();
        let mut replaced: Vec<(String, String)> = Vec::new();
        for key in source.names() {
            let rest = key.strip_prefix(KEY_PREFIX).ok_or_else(|| {
                bad(format!(
                    "tensor `{key}` does not start with `{KEY_PREFIX}` (not a PEFT state dict)"
                ))
            })?;
            if let Some(m) = rest.strip_suffix(".lora_A.weight") {
                a.insert(m.to_string(), key.clone());
            } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
                b.insert(m.to_string(), key.clone());
            } else if let Some(m) = rest.strip_suffix(".lora_embedding_A") {
                emb_a.insert(m.to_string(), key.clone());
            } else if let Some(m) = rest.strip_suffix(".lora_embedding_B") {
                emb_b.insert(m.to_string(), key.clone());
            } else if let Some(why) = refused_tensor(rest) {
                return Err(bad(format!("tensor `{key}`: {why} is not supported")));
            } else {
                let (module, _) = rest.rsplit_once('.').unwrap_or(("", rest));
                let saved = self
                    .config
                    .modules_to_save
                    .iter()
                    .any(|m| module.ends_with(m.as_str()))
                    || module == "model.embed_tokens"
                    || module == "lm_head";
                if !saved {
                    return Err(bad(format!(
                        "tensor `{key}` is neither a LoRA factor nor part of a module in \
                         modules_to_save"
                    )));
                }
                replaced.push((rest.to_string(), key.clone()));
            }
        }
        let device = base.device();
        let f32_tensor = |key: &str| load_f32::<B>(&source, key, &device);
        let mut model = base.clone();
        let mut adapted = Vec::new();
        for (module, a_key) in &a {
            let b_key = b.remove(module).ok_or_else(|| {
                bad(format!(
                    "`{a_key}` has no matching lora_B (`{module}.lora_B.weight`)"
                ))
            })?;
            adapted.push(module.clone());
            let (a_t, b_t) = (f32_tensor(a_key)?, f32_tensor(&b_key)?);
            let delta = self.delta(module, a_key, a_t, &b_key, b_t, &bad)?;
            let slot = model.lora_slot(module).ok_or_else(|| {
                bad(format!(
                    "`{a_key}`: this model has no linear module `{module}` to adapt"
                ))
            })?;
            let [out_f, in_f] = slot.dims();
            delta
                .check_dims(in_f, out_f)
                .map_err(|m| bad(format!("`{module}`: {m}")))?;
            *slot.lora = Some(delta);
        }
        if let Some((module, _)) = b.iter().next() {
            return Err(bad(format!(
                "`{module}.lora_B.weight` has no matching lora_A"
            )));
        }
        for (module, a_key) in &emb_a {
            let b_key = emb_b.remove(module).ok_or_else(|| {
                bad(format!(
                    "`{a_key}` has no matching `{module}.lora_embedding_B`"
                ))
            })?;
            if module != "model.embed_tokens" {
                return Err(bad(format!("`{a_key}`: no embedding `{module}` to adapt")));
            }
            adapted.push(module.clone());
            // PEFT's embedding factors: A `[r, vocab]`, B `[hidden, r]`; same math as a linear
            // layer on a one-hot input.
            let (a_t, b_t) = (f32_tensor(a_key)?, f32_tensor(&b_key)?);
            let delta = self.delta(module, a_key, a_t, &b_key, b_t, &bad)?;
            let [vocab, hidden] = model.model.embed_tokens.weight.dims();
            delta
                .check_dims(vocab, hidden)
                .map_err(|m| bad(format!("`{module}`: {m}")))?;
            model.model.embed_tokens.lora = Some(delta);
        }
        if let Some((module, _)) = emb_b.iter().next() {
            return Err(bad(format!(
                "`{module}.lora_embedding_B` has no matching A"
            )));
        }
        // Every module the config targets must have its factors, so a truncated file or a
        // config edited by hand cannot pass for a smaller adapter.
        for module in model.adaptable_modules() {
            if self.config.targets(&module) && !adapted.contains(&module) {
                return Err(bad(format!(
                    "{} targets `{module}`, but the file has no LoRA factors for it",
                    ADAPTER_CONFIG_FILE
                )));
            }
        }
        for (name, key) in &replaced {
            model
                .replace_tensor(name, &source, key)
                .map_err(|m| bad(format!("`{key}`: {m}")))?;
        }
        tracing::info!(
            adapter = %self.dir.display(),
            modules = adapted.len(),
            replaced = replaced.len(),
            "LoRA adapter applied"
        );
        Ok(model)
    }

    /// Checks module `module`'s factors against the config and builds its delta.
    fn delta<B: Backend>(
        &self,
        module: &str,
        a_key: &str,
        a: Tensor<B, 2>,
        b_key: &str,
        b: Tensor<B, 2>,
        bad: &dyn Fn(String) -> ModelError,
    ) -> Result<LoraDelta<B>> {
        if !self.config.targets(module) {
            return Err(bad(format!(
                "`{a_key}`: {ADAPTER_CONFIG_FILE} does not target `{module}` (target_modules, \
                 exclude_modules, layers_to_transform)"
            )));
        }
        let [r, _] = a.dims();
        let [_, rb] = b.dims();
        if rb != r {
            return Err(bad(format!("`{b_key}` has rank {rb}, `{a_key}` rank {r}")));
        }
        let (config_r, _) = self.config.rank_alpha(module);
        if config_r != r {
            return Err(bad(format!(
                "`{a_key}` has rank {r}, but {ADAPTER_CONFIG_FILE} gives `{module}` rank \
                 {config_r} (r / rank_pattern)"
            )));
        }
        Ok(LoraDelta::new(a, b, self.config.scaling(module)))
    }
}

/// Tensors of LoRA variants and options cdr refuses, by key suffix.
fn refused_tensor(rest: &str) -> Option<&'static str> {
    if rest.ends_with(".lora_magnitude_vector") {
        Some("DoRA's magnitude vector")
    } else if rest.ends_with(".lora_B.bias") {
        Some("a lora_B bias (lora_bias)")
    } else if rest.contains(".base_layer.") {
        Some("a trained base-layer parameter (bias=\"lora_only\"/\"all\")")
    } else if rest.contains(".token_adapter.") {
        Some("a trainable-token delta (trainable_token_indices)")
    } else if rest.contains(".lora_") {
        Some("a LoRA tensor of an unknown kind")
    } else {
        None
    }
}

/// Loads `key` in f32 as a 2-D tensor, whatever its stored dtype.
fn load_f32<B: Backend>(
    source: &SafetensorsWeights,
    key: &str,
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    let data = read(source, key, ComputeDtype::F32)?;
    if data.shape.len() != 2 {
        return Err(ModelError::Checkpoint {
            path: source.file_of(key),
            message: format!(
                "tensor `{key}` has shape {:?}, expected a matrix",
                data.shape
            ),
        });
    }
    Ok(Tensor::from_data(data, (device, DType::F32)))
}

/// A tensor converted to `dtype`, with its stored shape.
pub(crate) fn read(
    source: &dyn WeightSource,
    key: &str,
    dtype: ComputeDtype,
) -> Result<TensorData> {
    source
        .with_tensor(key, &mut |raw| Ok(convert(&raw, dtype)))?
        .ok_or_else(|| ModelError::MissingTensor {
            name: key.to_string(),
            path: source.file_of(key),
        })
}
