//! Text generation: incremental decoding over the key/value cache.
//!
//! One prompt is prefilled once; its cache is repeated for the N samples drawn from it, and each
//! step then runs only the newest token of every unfinished sample. A sample ends on any of the
//! stop token ids (the model's end-of-sequence ids), on a stop string, or after `max_new_tokens`.
//! Prompts of different lengths run one after another, each with its own prefill, so no row is ever
//! padded and every sample computes exactly what a batch of one would.

use std::path::Path;

use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::cache::KvCache;
use crate::checkpoint::ModelDir;
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::llama::LlamaForCausalLm;
use crate::logprobs::read_f32;
use crate::sampling::{SampleRng, Sampling, next_token};
use crate::tokenizer::Tokenizer;

/// What to generate and when to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    /// Most tokens generated per response.
    pub max_new_tokens: usize,
    /// How each token is drawn.
    pub sampling: Sampling,
    /// Token ids that end a sample (kept as its last id, left out of its text).
    pub stop_ids: Vec<u32>,
    /// Texts that end a sample; its text is cut before the first one. Needs a tokenizer.
    pub stop_strings: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            sampling: Sampling::greedy(),
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    /// A stop token id.
    Eos,
    /// A stop string.
    StopString,
    /// `max_new_tokens` reached.
    Length,
}

/// One generated sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// The new token ids, including the stop id that ended the sample, if one did.
    pub ids: Vec<u32>,
    /// Why the response ended.
    pub finish: FinishReason,
    /// The decoded response (special tokens skipped, the stop id and any stop string left out);
    /// `None` without a tokenizer.
    pub text: Option<String>,
}

/// The end-of-sequence ids generation should stop on: `eos_token_id` of the model config and, for a
/// model directory, of `generation_config.json` (chat models often list their end-of-turn token
/// only there, e.g. Llama 3's `<|eot_id|>`).
pub fn model_stop_ids(dir: &ModelDir, config: &Config) -> Result<Vec<u32>> {
    let mut ids = config.eos_token_ids();
    let dir = &dir.resolved()?;
    if !dir.is_gguf() {
        let path = dir.path.join("generation_config.json");
        if path.is_file() {
            ids.extend(generation_config_eos(&path)?);
        }
    }
    let mut unique = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

fn read_generation_config(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The sampling settings a model directory recommends in `generation_config.json` (what
/// transformers' `generate(do_sample=True)` uses when the caller sets none); each `None` when
/// absent, and all `None` for GGUF files and directories without the file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SamplingDefaults {
    /// `temperature`, if the file sets it.
    pub temperature: Option<f32>,
    /// `top_p`, if the file sets it.
    pub top_p: Option<f32>,
    /// `top_k`, if the file sets it.
    pub top_k: Option<usize>,
}

/// Reads [`SamplingDefaults`]; a value of the wrong type is an error naming the key.
pub fn model_sampling_defaults(dir: &ModelDir) -> Result<SamplingDefaults> {
    let dir = &dir.resolved()?;
    let path = dir.path.join("generation_config.json");
    if dir.is_gguf() || !path.is_file() {
        return Ok(SamplingDefaults::default());
    }
    let value = read_generation_config(&path)?;
    let number = |key: &str| -> Result<Option<f64>> {
        match value.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| ModelError::Config {
                path: path.clone(),
                message: format!("`{key}` must be a number, got {v}"),
            }),
        }
    };
    Ok(SamplingDefaults {
        temperature: number("temperature")?.map(|t| t as f32),
        top_p: number("top_p")?.map(|p| p as f32),
        // transformers treats top_k 0 as "no limit", as cdr does.
        top_k: number("top_k")?.map(|k| k.max(0.0) as usize),
    })
}

fn generation_config_eos(path: &Path) -> Result<Vec<u32>> {
    let value = read_generation_config(path)?;
    let bad = || ModelError::Config {
        path: path.to_path_buf(),
        message: "eos_token_id must be a token id or a list of them".into(),
    };
    let as_id = |v: &serde_json::Value| v.as_u64().and_then(|x| u32::try_from(x).ok());
    match value.get("eos_token_id") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => {
            items.iter().map(|v| as_id(v).ok_or_else(bad)).collect()
        }
        Some(v) => Ok(vec![as_id(v).ok_or_else(bad)?]),
    }
}

/// A model (and optionally its tokenizer) set up to generate with fixed options.
pub struct Generator<'a, B: Backend> {
    model: &'a LlamaForCausalLm<B>,
    tokenizer: Option<&'a Tokenizer>,
    options: GenerateOptions,
    /// Tokens decoded per stop-string check: enough to hold the longest stop string.
    stop_window: usize,
}

impl<'a, B: Backend> Generator<'a, B> {
    /// Checks the options; stop strings need [`Self::with_tokenizer`].
    pub fn new(model: &'a LlamaForCausalLm<B>, options: GenerateOptions) -> Result<Self> {
        options.sampling.validate()?;
        let vocab = model.config().vocab_size;
        if let Some(&bad) = options.stop_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "stop token id {bad} is outside the vocabulary (size {vocab})"
            )));
        }
        if options.stop_strings.iter().any(String::is_empty) {
            return Err(ModelError::Input("empty stop string".into()));
        }
        // A token decodes to at least one byte, except special tokens, which decoding skips:
        // the margin covers a few of those inside a stop string's span.
        let stop_window = options
            .stop_strings
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            + 8;
        Ok(Self {
            model,
            tokenizer: None,
            options,
            stop_window,
        })
    }

    /// Decodes texts and enables stop strings.
    pub fn with_tokenizer(mut self, tokenizer: &'a Tokenizer) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }

    /// The options this generator was set up with.
    pub fn options(&self) -> &GenerateOptions {
        &self.options
    }

    /// One sample per seed, all continuing `prompt` (prefilled once).
    pub fn generate(&self, prompt: &[u32], seeds: &[u64]) -> Result<Vec<Generation>> {
        self.generate_with(prompt, seeds, &mut |_| {})
    }

    /// Each prompt's samples (one per seed of `seeds[i]`), all decoded together
    /// ([`Self::generate_many_with`]).
    pub fn generate_batch(
        &self,
        prompts: &[&[u32]],
        seeds: &[Vec<u64>],
    ) -> Result<Vec<Vec<Generation>>> {
        self.generate_many_with(prompts, seeds, &mut |_| {})
    }

    /// Several prompts' samples in one decoding batch: each prompt is prefilled alone (its samples
    /// share that prefill), then every unfinished sample of every prompt advances one token per
    /// step together, shorter prompts left-padded in the key/value cache. Each prompt gets the
    /// samples [`Self::generate`] gives it alone (same seeds, same tokens); a batch only runs
    /// faster, as the weights are read once per step for all rows. `progress(tokens)` after each
    /// step.
    pub fn generate_many_with(
        &self,
        prompts: &[&[u32]],
        seeds: &[Vec<u64>],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<Generation>>> {
        if prompts.len() != seeds.len() {
            return Err(ModelError::Input(format!(
                "{} prompts but {} seed lists",
                prompts.len(),
                seeds.len()
            )));
        }
        for prompt in prompts {
            self.check_prompt(prompt)?;
        }
        let vocab = self.model.config().vocab_size;
        // Samples of all prompts, prompt by prompt; `owner[s]` is sample s's prompt.
        let mut samples: Vec<Sample> = seeds.iter().flatten().map(|&s| Sample::new(s)).collect();
        let owner: Vec<usize> = seeds
            .iter()
            .enumerate()
            .flat_map(|(p, s)| std::iter::repeat_n(p, s.len()))
            .collect();
        if !samples.is_empty() && self.options.max_new_tokens > 0 {
            // Prefill prompt by prompt and draw each sample's first token from its prompt's row.
            let mut caches = Vec::new();
            let mut active = Vec::new();
            let mut tokens = Vec::new();
            for (p, prompt) in prompts.iter().enumerate() {
                let mine: Vec<usize> = (0..samples.len()).filter(|&s| owner[s] == p).collect();
                if mine.is_empty() {
                    continue;
                }
                let mut cache = self.model.new_cache();
                let logits = self.step(ids_tensor(&[prompt], &self.model.device()), &mut cache)?;
                let mut going = 0;
                for &s in &mine {
                    if let Some(token) = self.advance(&mut samples[s], &logits[..vocab])? {
                        active.push(s);
                        tokens.push(token);
                        going += 1;
                    }
                }
                progress(mine.len());
                if going > 0 {
                    caches.push(if going > 1 {
                        cache.repeat_rows(going)
                    } else {
                        cache
                    });
                }
            }
            if !active.is_empty() {
                let cache = if caches.len() == 1 {
                    caches
                        .pop()
                        .ok_or_else(|| ModelError::Input("no cache".into()))?
                } else {
                    KvCache::concat(caches)?
                };
                self.decode(&mut samples, active, tokens, cache, progress)?;
            }
        }
        debug!(
            prompts = prompts.len(),
            samples = samples.len(),
            new_tokens = samples.iter().map(|s| s.ids.len()).sum::<usize>(),
            "generated"
        );
        let mut out: Vec<Vec<Generation>> = prompts.iter().map(|_| Vec::new()).collect();
        for (sample, p) in samples.into_iter().zip(owner) {
            out[p].push(self.finish(sample)?);
        }
        Ok(out)
    }

    /// Decodes the samples `active` (cache row i holds `active[i]`, whose latest token is
    /// `tokens[i]`) until every one has finished.
    fn decode(
        &self,
        samples: &mut [Sample],
        mut active: Vec<usize>,
        mut tokens: Vec<u32>,
        mut cache: KvCache<B>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        let vocab = self.model.config().vocab_size;
        while !active.is_empty() {
            let ids: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
            let logits = self.step(ids_tensor(&ids, &self.model.device()), &mut cache)?;
            let mut still = Vec::with_capacity(active.len());
            let mut next = Vec::with_capacity(active.len());
            for (row, &s) in active.iter().enumerate() {
                let at = row * vocab;
                if let Some(token) = self.advance(&mut samples[s], &logits[at..at + vocab])? {
                    still.push(row);
                    next.push(token);
                }
            }
            progress(active.len());
            if still.len() < active.len() && !still.is_empty() {
                cache = cache.select_rows(&still)?;
            }
            active = still.iter().map(|&row| active[row]).collect();
            tokens = next;
        }
        Ok(())
    }

    /// Draws a sample's next token from its logits; returns it if the sample goes on.
    fn advance(&self, sample: &mut Sample, logits: &[f32]) -> Result<Option<u32>> {
        let token = next_token(logits, &self.options.sampling, &mut sample.rng)?;
        sample.ids.push(token);
        sample.finish = self.stop(&sample.ids)?;
        Ok(sample.finish.is_none().then_some(token))
    }

    /// Why `prompt` cannot be generated from (empty, an id outside the vocabulary, stop strings
    /// without a tokenizer), if it cannot.
    pub fn check_prompt(&self, prompt: &[u32]) -> Result<()> {
        let vocab = self.model.config().vocab_size;
        if prompt.is_empty() {
            return Err(ModelError::Input(
                "cannot generate from an empty prompt".into(),
            ));
        }
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "prompt token id {bad} is outside the vocabulary (size {vocab})"
            )));
        }
        if !self.options.stop_strings.is_empty() && self.tokenizer.is_none() {
            return Err(ModelError::Input(
                "stop strings need a tokenizer to decode the generated text".into(),
            ));
        }
        Ok(())
    }

    /// As [`Self::generate`], calling `progress(tokens)` after each step with the tokens it
    /// produced.
    pub fn generate_with(
        &self,
        prompt: &[u32],
        seeds: &[u64],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Generation>> {
        let mut out = self.generate_many_with(&[prompt], &[seeds.to_vec()], progress)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Runs `ids` `[rows, seq]` on the cache; returns the f32 logits of each row's last position,
    /// `rows x vocab` flat.
    fn step(&self, ids: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Result<Vec<f32>> {
        // Row-stable products: a sample's tokens must not depend on which others decode with it.
        crate::kernels::row_stable_scope(|| {
            let hidden = self.model.forward_cached(ids, cache)?;
            let [rows, seq, h] = hidden.dims();
            let last = hidden.narrow(1, seq - 1, 1).reshape([rows, h]);
            read_f32(self.model.logits(last).cast(DType::F32))
        })
    }

    /// Whether the sample must stop after its latest token, and why.
    fn stop(&self, ids: &[u32]) -> Result<Option<FinishReason>> {
        let Some(&last) = ids.last() else {
            return Ok(None);
        };
        if self.options.stop_ids.contains(&last) {
            return Ok(Some(FinishReason::Eos));
        }
        if let Some(tokenizer) = self.tokenizer
            && !self.options.stop_strings.is_empty()
        {
            // Only a match that includes the newest token can be new; older ones stopped earlier.
            let tail = &ids[ids.len().saturating_sub(self.stop_window)..];
            let text = decode(tokenizer, tail)?;
            if self.options.stop_strings.iter().any(|s| text.contains(s)) {
                return Ok(Some(FinishReason::StopString));
            }
        }
        if ids.len() >= self.options.max_new_tokens {
            return Ok(Some(FinishReason::Length));
        }
        Ok(None)
    }

    fn finish(&self, sample: Sample) -> Result<Generation> {
        let finish = sample.finish.unwrap_or(FinishReason::Length);
        let text = match self.tokenizer {
            None => None,
            Some(tokenizer) => {
                let content = match finish {
                    FinishReason::Eos => &sample.ids[..sample.ids.len().saturating_sub(1)],
                    _ => &sample.ids[..],
                };
                let mut text = decode(tokenizer, content)?;
                if finish == FinishReason::StopString
                    && let Some(cut) = self
                        .options
                        .stop_strings
                        .iter()
                        .filter_map(|s| text.find(s.as_str()))
                        .min()
                {
                    text.truncate(cut);
                }
                Some(text)
            }
        };
        Ok(Generation {
            ids: sample.ids,
            finish,
            text,
        })
    }
}

/// A sample in progress.
struct Sample {
    ids: Vec<u32>,
    rng: SampleRng,
    finish: Option<FinishReason>,
}

impl Sample {
    fn new(seed: u64) -> Self {
        Self {
            ids: Vec::new(),
            rng: SampleRng::new(seed),
            finish: None,
        }
    }
}

fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer
        .decode(ids, true)
        .map_err(|e| ModelError::Input(format!("cannot decode generated ids: {e}")))
}

/// Equal-length rows as an id tensor.
fn ids_tensor<B: Backend>(rows: &[&[u32]], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows.first().map_or(0, |r| r.len());
    let flat: Vec<i32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&id| id as i32))
        .collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
}
