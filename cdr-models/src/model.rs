//! A loaded model on a run-time [`Device`]: the backend-generic [`LlamaForCausalLm`] behind one
//! type, so the crates above this one carry no backend parameter and a burn upgrade stays here.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use crate::backend;
use crate::checkpoint::{LoadOptions, ModelDir};
use crate::config::Config;
use crate::device::Device;
use crate::error::{ModelError, Result};
use crate::generate::{GenerateOptions, Generation, Generator};
use crate::llama::LlamaForCausalLm;
use crate::logprobs::ScoreSpan;
use crate::ranked::RankedSpan;
use crate::tokenizer::Tokenizer;
use crate::weights::ComputeDtype;

/// One variant per compiled backend.
#[derive(Debug, Clone)]
enum Inner {
    #[cfg(feature = "cpu")]
    Cpu(LlamaForCausalLm<backend::Cpu>),
    #[cfg(feature = "cuda")]
    Cuda(LlamaForCausalLm<backend::Cuda>),
    #[cfg(feature = "wgpu")]
    Wgpu(LlamaForCausalLm<backend::Wgpu>),
}

/// Runs `$body` with `$m` bound to the backend-typed value inside `$value` (one of the enums
/// here, whose variants share names).
macro_rules! on_backend {
    ($enum:ident, $value:expr, $m:ident => $body:expr) => {
        match $value {
            #[cfg(feature = "cpu")]
            $enum::Cpu($m) => $body,
            #[cfg(feature = "cuda")]
            $enum::Cuda($m) => $body,
            #[cfg(feature = "wgpu")]
            $enum::Wgpu($m) => $body,
        }
    };
}

/// A causal language model loaded on a [`Device`]: scoring forwards and generation.
///
/// Cloning shares the weights (burn tensors are reference counted).
#[derive(Debug, Clone)]
pub struct Model {
    inner: Inner,
    device: Device,
    /// For an adapter, the base it shares its tensors with: held so that a later
    /// [`Model::load_shared`] of the base finds it instead of loading a second copy.
    base: Option<Arc<Model>>,
}

/// What makes two loads the same model in memory.
type SharedKey = (PathBuf, Device, ComputeDtype);

/// Models loaded through [`Model::load_shared`] and still alive somewhere.
static SHARED: Mutex<Vec<(SharedKey, Weak<Model>)>> = Mutex::new(Vec::new());

impl Model {
    /// Loads a model directory, GGUF file or adapter directory on `device`. An adapter's base
    /// comes from [`Model::load_shared`], so an adapter and its base in one process hold the base
    /// once.
    pub fn load(dir: &ModelDir, device: &Device, options: LoadOptions) -> Result<Self> {
        device.check()?;
        if let Some(adapter) = dir.adapter()? {
            let base = Self::load_shared(&dir.resolved()?, device, options)?;
            let inner = match &base.inner {
                #[cfg(feature = "cpu")]
                Inner::Cpu(m) => Inner::Cpu(adapter.apply(m)?),
                #[cfg(feature = "cuda")]
                Inner::Cuda(m) => Inner::Cuda(adapter.apply(m)?),
                #[cfg(feature = "wgpu")]
                Inner::Wgpu(m) => Inner::Wgpu(adapter.apply(m)?),
            };
            return Ok(Self {
                inner,
                device: *device,
                base: Some(base),
            });
        }
        Self::load_unshared(dir, device, options)
    }

    /// The model at `dir`, shared with every other live `load_shared` of the same file, device and
    /// dtype in this process (an adapter pair's base, a strong model that is also the policy).
    pub fn load_shared(dir: &ModelDir, device: &Device, options: LoadOptions) -> Result<Arc<Self>> {
        let key = (
            std::fs::canonicalize(&dir.path).unwrap_or_else(|_| dir.path.clone()),
            *device,
            options.dtype,
        );
        // Held across the load: two threads asking for one model load it once.
        let mut shared = SHARED
            .lock()
            .map_err(|_| ModelError::Backend("a thread loading a model panicked".into()))?;
        shared.retain(|(_, w)| w.strong_count() > 0);
        if let Some(model) = shared
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            tracing::info!(model = %dir.path.display(), "sharing the weights already in memory");
            return Ok(model);
        }
        // An adapter's own base load takes this lock again: release it first.
        if dir.is_adapter() {
            drop(shared);
            let model = Arc::new(Self::load(dir, device, options)?);
            if let Ok(mut shared) = SHARED.lock() {
                shared.push((key, Arc::downgrade(&model)));
            }
            return Ok(model);
        }
        let model = Arc::new(Self::load_unshared(dir, device, options)?);
        shared.push((key, Arc::downgrade(&model)));
        Ok(model)
    }

    fn load_unshared(dir: &ModelDir, device: &Device, options: LoadOptions) -> Result<Self> {
        let inner = match *device {
            #[cfg(feature = "cpu")]
            Device::Cpu => Inner::Cpu(dir.load(&Default::default(), options)?),
            #[cfg(feature = "cuda")]
            Device::Cuda(index) => {
                Inner::Cuda(dir.load(&burn::backend::cuda::CudaDevice { index }, options)?)
            }
            #[cfg(feature = "wgpu")]
            Device::Wgpu => Inner::Wgpu(dir.load(&Default::default(), options)?),
            #[allow(unreachable_patterns)]
            other => {
                return Err(ModelError::Input(format!(
                    "no `{}` backend in this build",
                    other.feature()
                )));
            }
        };
        Ok(Self {
            inner,
            device: *device,
            base: None,
        })
    }

    /// Whether this model is an adapter over a base it shares.
    pub fn is_adapter(&self) -> bool {
        self.base.is_some()
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        on_backend!(Inner, &self.inner, m => m.config())
    }

    /// The dtype the weights compute in.
    pub fn dtype(&self) -> ComputeDtype {
        on_backend!(Inner, &self.inner, m => m.dtype())
    }

    /// Which product the projections take (e.g. "bf16 packed, amx" or "burn matmul").
    pub fn kernel(&self) -> String {
        on_backend!(Inner, &self.inner, m => m.kernel())
    }

    /// See [`LlamaForCausalLm::token_logprobs`].
    pub fn token_logprobs(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        on_backend!(Inner, &self.inner, m => m.token_logprobs(batch))
    }

    /// See [`LlamaForCausalLm::score_spans`].
    pub fn score_spans(&self, batch: &[ScoreSpan<'_>]) -> Result<Vec<Vec<f32>>> {
        on_backend!(Inner, &self.inner, m => m.score_spans(batch))
    }

    /// See [`LlamaForCausalLm::ranked_logprobs`].
    pub fn ranked_logprobs(&self, batch: &[ScoreSpan<'_>], top: usize) -> Result<Vec<RankedSpan>> {
        on_backend!(Inner, &self.inner, m => m.ranked_logprobs(batch, top))
    }

    /// A generator with fixed options (see [`Generator::new`]).
    pub fn generator(&self, options: GenerateOptions) -> Result<ModelGenerator<'_>> {
        Ok(ModelGenerator {
            inner: on_backend!(Inner, &self.inner, m => Generator::new(m, options)?.into()),
        })
    }
}

enum GeneratorInner<'a> {
    #[cfg(feature = "cpu")]
    Cpu(Generator<'a, backend::Cpu>),
    #[cfg(feature = "cuda")]
    Cuda(Generator<'a, backend::Cuda>),
    #[cfg(feature = "wgpu")]
    Wgpu(Generator<'a, backend::Wgpu>),
}

#[cfg(feature = "cpu")]
impl<'a> From<Generator<'a, backend::Cpu>> for GeneratorInner<'a> {
    fn from(g: Generator<'a, backend::Cpu>) -> Self {
        Self::Cpu(g)
    }
}

#[cfg(feature = "cuda")]
impl<'a> From<Generator<'a, backend::Cuda>> for GeneratorInner<'a> {
    fn from(g: Generator<'a, backend::Cuda>) -> Self {
        Self::Cuda(g)
    }
}

#[cfg(feature = "wgpu")]
impl<'a> From<Generator<'a, backend::Wgpu>> for GeneratorInner<'a> {
    fn from(g: Generator<'a, backend::Wgpu>) -> Self {
        Self::Wgpu(g)
    }
}

/// [`Generator`] over a [`Model`]: the same methods, no backend parameter.
pub struct ModelGenerator<'a> {
    inner: GeneratorInner<'a>,
}

/// [`on_backend!`] for the generator.
macro_rules! on_generator {
    ($value:expr, $g:ident => $body:expr) => {
        match $value {
            #[cfg(feature = "cpu")]
            GeneratorInner::Cpu($g) => $body,
            #[cfg(feature = "cuda")]
            GeneratorInner::Cuda($g) => $body,
            #[cfg(feature = "wgpu")]
            GeneratorInner::Wgpu($g) => $body,
        }
    };
}

impl<'a> ModelGenerator<'a> {
    /// Decodes texts and enables stop strings.
    pub fn with_tokenizer(self, tokenizer: &'a Tokenizer) -> Self {
        let inner = on_generator!(self.inner, g => g.with_tokenizer(tokenizer).into());
        Self { inner }
    }

    /// The options this generator was set up with.
    pub fn options(&self) -> &GenerateOptions {
        on_generator!(&self.inner, g => g.options())
    }

    /// See [`Generator::check_prompt`].
    pub fn check_prompt(&self, prompt: &[u32]) -> Result<()> {
        on_generator!(&self.inner, g => g.check_prompt(prompt))
    }

    /// See [`Generator::generate`].
    pub fn generate(&self, prompt: &[u32], seeds: &[u64]) -> Result<Vec<Generation>> {
        on_generator!(&self.inner, g => g.generate(prompt, seeds))
    }

    /// See [`Generator::generate_with`].
    pub fn generate_with(
        &self,
        prompt: &[u32],
        seeds: &[u64],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Generation>> {
        on_generator!(&self.inner, g => g.generate_with(prompt, seeds, progress))
    }

    /// See [`Generator::generate_many_with`].
    pub fn generate_many_with(
        &self,
        prompts: &[&[u32]],
        seeds: &[Vec<u64>],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<Generation>>> {
        on_generator!(&self.inner, g => g.generate_many_with(prompts, seeds, progress))
    }
}
