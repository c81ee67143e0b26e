//! Sampling responses from a policy model: the first step of on-policy preference data (N samples
//! per prompt, scored by the density ratio, best vs worst kept as a pair).

use std::path::Path;

use cdr_data::Message;
use cdr_models::{
    ComputeDtype, Device, GenerateOptions, Generation, LoadOptions, Model, ModelDir, Sampling,
    Tokenizer, model_stop_ids,
};
use cdr_prompt::{ChatTemplate, draw};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::scorer::{ModelScorer, model_template};

/// How many responses to sample per prompt, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleOptions {
    /// Responses per prompt.
    pub n: usize,
    /// Most tokens generated per response.
    pub max_new_tokens: usize,
    /// How each token is drawn.
    pub sampling: Sampling,
    /// With the prompt's id, picks each sample's random stream: a prompt gets the same samples
    /// whenever (and in whatever order) it is generated.
    pub seed: u64,
    /// Texts that end a response (left out of it).
    pub stop_strings: Vec<String>,
    /// Longer prompts keep their last this many tokens.
    pub max_prompt_tokens: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            n: 4,
            max_new_tokens: 512,
            sampling: Sampling {
                temperature: 0.7,
                top_k: 0,
                top_p: 1.0,
            },
            seed: 0,
            stop_strings: Vec::new(),
            max_prompt_tokens: 2048,
        }
    }
}

/// The seed of sample `index` of the prompt `id`.
pub fn sample_seed(seed: u64, id: &str, index: usize) -> u64 {
    draw(seed, &format!("{id}\u{1f}{index}"))
}

/// A model that writes responses: its tokenizer, the chat template prompts are rendered with, and
/// the token ids that end a response.
pub struct Policy {
    /// The model.
    pub model: Model,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The chat template prompts are rendered with.
    pub template: ChatTemplate,
    stop_ids: Vec<u32>,
}

impl Policy {
    /// Loads a model directory or GGUF file. `template` is a built-in name or a Jinja file;
    /// `None` uses the model's own.
    pub fn load(
        path: &Path,
        template: Option<&str>,
        device: &Device,
        dtype: ComputeDtype,
    ) -> Result<Self> {
        let dir = ModelDir::new(path);
        let template = match template {
            Some(spec) => ChatTemplate::resolve(spec, Some(path))?,
            None => model_template(path)?,
        };
        let model = Model::load(&dir, device, LoadOptions { dtype })?;
        let stop_ids = model_stop_ids(&dir, model.config())?;
        Ok(Self::new(model, dir.tokenizer()?, template, stop_ids))
    }

    /// A policy on an already loaded model (e.g. the strong model serving as a router). Its stop
    /// ids are the config's eos ids; a model directory's `generation_config.json` is not read.
    pub fn from_scorer(scorer: &ModelScorer, template: ChatTemplate) -> Result<Self> {
        let stop_ids = scorer.config().eos_token_ids();
        Ok(Self::new(
            (*scorer.model()?).clone(),
            scorer.tokenizer.clone(),
            template,
            stop_ids,
        ))
    }

    /// Adds the template's end-of-turn token to `stop_ids`: chat models end an answer with it,
    /// and some configs name only the end-of-text token.
    pub fn new(
        model: Model,
        tokenizer: Tokenizer,
        template: ChatTemplate,
        mut stop_ids: Vec<u32>,
    ) -> Self {
        let eos = template.eos_token();
        if let Some(id) = (!eos.is_empty())
            .then(|| tokenizer.token_to_id(eos))
            .flatten()
            && !stop_ids.contains(&id)
        {
            stop_ids.push(id);
        }
        Self {
            model,
            tokenizer,
            template,
            stop_ids,
        }
    }

    /// The ids a response ends on.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The conversation rendered with the generation prompt and tokenized (no special tokens
    /// added: the template writes them), keeping the last `max_prompt_tokens` ids.
    pub fn encode_prompt(
        &self,
        messages: &[Message],
        max_prompt_tokens: usize,
    ) -> Result<Vec<u32>> {
        let text = self.template.render(messages, true)?;
        let encoding = self
            .tokenizer
            .encode(text.as_str(), false)
            .map_err(|e| CoreError::Tokenize(e.to_string()))?;
        let ids = encoding.get_ids();
        if ids.is_empty() {
            return Err(CoreError::EmptyPrompt);
        }
        Ok(ids[ids.len().saturating_sub(max_prompt_tokens.max(1))..].to_vec())
    }

    /// `options.n` responses to `messages` (the row `id` seeds them), sharing one prompt prefill;
    /// `progress(tokens)` after each decoding step.
    pub fn sample(
        &self,
        id: &str,
        messages: &[Message],
        options: &SampleOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Generation>> {
        self.sample_many(&[(id, messages)], options, progress)?
            .pop()
            .unwrap_or(Err(CoreError::EmptyPrompt))
    }

    /// [`Self::sample`] for several rows `(id, messages)` at once: their samples decode in one
    /// batch (faster: the weights are read once per step for all of them), each row getting the
    /// responses it would get alone. A row whose prompt cannot be encoded gets its error in its
    /// place; the others go on.
    pub fn sample_many(
        &self,
        rows: &[(&str, &[Message])],
        options: &SampleOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Result<Vec<Generation>>>> {
        let generator = self
            .model
            .generator(GenerateOptions {
                max_new_tokens: options.max_new_tokens,
                sampling: options.sampling,
                stop_ids: self.stop_ids.clone(),
                stop_strings: options.stop_strings.clone(),
            })?
            .with_tokenizer(&self.tokenizer);
        // A prompt that cannot be generated from fails its own row, not the batch.
        let encoded: Vec<Result<Vec<u32>>> = rows
            .iter()
            .map(|(_, messages)| {
                let ids = self.encode_prompt(messages, options.max_prompt_tokens)?;
                generator.check_prompt(&ids)?;
                Ok(ids)
            })
            .collect();
        let ok: Vec<usize> = (0..rows.len()).filter(|&i| encoded[i].is_ok()).collect();
        let prompts: Vec<&[u32]> = ok
            .iter()
            .filter_map(|&i| encoded[i].as_ref().ok().map(Vec::as_slice))
            .collect();
        let seeds: Vec<Vec<u64>> = ok
            .iter()
            .map(|&i| {
                (0..options.n)
                    .map(|k| sample_seed(options.seed, rows[i].0, k))
                    .collect()
            })
            .collect();
        let mut generated = generator
            .generate_many_with(&prompts, &seeds, progress)?
            .into_iter();
        Ok(encoded
            .into_iter()
            .map(|e| e.map(|_| generated.next().unwrap_or_default()))
            .collect())
    }
}
