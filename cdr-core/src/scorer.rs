//! A strong/weak model pair and the batched scoring pipeline.

use std::path::Path;

use cdr_data::Message;
use cdr_models::{ComputeDtype, LlamaForCausalLm, LoadOptions, ModelDir, ScoreSpan, Tokenizer};
use cdr_prompt::{ChatTemplate, Customization};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::batch::plan_batches;
use crate::encode::{Encoded, Limits, encode};
use crate::error::{CoreError, Result};
use crate::reward::{Reduction, density_ratio, sum_logprobs};
use cdr_models::backend::Backend;

/// How strong and weak token sequences relate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenizerPolicy {
    /// Both tokenizers must produce identical ids on every scored text (the method's assumption).
    #[default]
    Identical,
    /// Tokenize separately for each model (a warning is logged): the two sums then cover different
    /// token sequences of the same text.
    Separate,
}

/// Options for a scoring run.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub reduction: Reduction,
    pub limits: Limits,
    /// Upper bound on `batch x padded length` per forward pass.
    pub max_batch_tokens: usize,
    pub dtype: ComputeDtype,
    pub tokenizer_policy: TokenizerPolicy,
    /// A built-in template name or a Jinja file; `None` uses the strong model's own template.
    pub template: Option<String>,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            reduction: Reduction::Sum,
            limits: Limits::default(),
            max_batch_tokens: 8192,
            dtype: ComputeDtype::F32,
            tokenizer_policy: TokenizerPolicy::Identical,
            template: None,
        }
    }
}

/// One response to score in the context of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The conversation before the response.
    pub messages: Vec<Message>,
    pub response: String,
    /// The row the item belongs to; picks the customization exemplar (same for all its items).
    #[serde(default)]
    pub id: Option<String>,
    /// The query's domain for customization; `None` means the config's default domain.
    #[serde(default)]
    pub domain: Option<String>,
}

impl Item {
    pub fn new(messages: Vec<Message>, response: impl Into<String>) -> Self {
        Self {
            messages,
            response: response.into(),
            id: None,
            domain: None,
        }
    }

    /// Sets the row id and domain used by customization.
    pub fn in_row(mut self, id: impl Into<String>, domain: Option<String>) -> Self {
        self.id = Some(id.into());
        self.domain = domain;
        self
    }
}

/// An item rendered and tokenized for both models.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub strong: Encoded,
    /// `None` when the weak model scores the same ids as the strong one.
    pub weak: Option<Encoded>,
}

impl Prepared {
    fn weak(&self) -> &Encoded {
        self.weak.as_ref().unwrap_or(&self.strong)
    }

    /// Tokens of the longer of the two sequences (what a forward pass costs).
    pub fn len(&self) -> usize {
        self.strong.ids.len().max(self.weak().ids.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The reward of one item, with what it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ItemScore {
    /// The reward under the run's reduction.
    pub reward: f64,
    /// Sum of the strong model's response-token log-probs.
    pub strong_logprob: f64,
    /// Sum of the weak model's response-token log-probs.
    pub weak_logprob: f64,
    pub n_response_tokens: usize,
    pub n_prompt_tokens: usize,
    pub truncated: bool,
}

/// One model with its tokenizer: sums of response-token log-probs of encoded sequences.
#[derive(Clone)]
pub struct ModelScorer<B: Backend> {
    pub model: LlamaForCausalLm<B>,
    pub tokenizer: Tokenizer,
}

impl<B: Backend> ModelScorer<B> {
    /// Loads a model directory.
    pub fn load(dir: &Path, device: &B::Device, dtype: ComputeDtype) -> Result<Self> {
        let dir = ModelDir::new(dir);
        Ok(Self {
            tokenizer: dir.tokenizer()?,
            model: dir.load(device, LoadOptions { dtype })?,
        })
    }

    /// Per-token log-probs of each sequence's response part, batched under `max_batch_tokens`;
    /// `progress(items, tokens)` after each batch. Results are in input order.
    pub fn response_logprobs(
        &self,
        items: &[&Encoded],
        max_batch_tokens: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Vec<f32>>> {
        let lengths: Vec<usize> = items.iter().map(|e| e.ids.len()).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); items.len()];
        for batch in plan_batches(&lengths, max_batch_tokens) {
            let spans: Vec<ScoreSpan<'_>> = batch.iter().map(|&i| span(items[i])).collect();
            for (&i, lp) in batch.iter().zip(self.model.score_spans(&spans)?) {
                out[i] = lp;
            }
            progress(batch.len(), batch.iter().map(|&i| lengths[i]).sum());
        }
        Ok(out)
    }
}

/// A loaded strong/weak pair: the customized density-ratio reward model.
pub struct DensityRatio<B: Backend> {
    strong: ModelScorer<B>,
    weak: ModelScorer<B>,
    template: ChatTemplate,
    customization: Option<Customization>,
    options: ScoreOptions,
}

impl<B: Backend> DensityRatio<B> {
    /// Loads both models from their directories on `device`. The chat template is
    /// `options.template` if set, else the strong model's own.
    pub fn load(
        strong: impl AsRef<Path>,
        weak: impl AsRef<Path>,
        device: &B::Device,
        options: ScoreOptions,
    ) -> Result<Self> {
        let (strong, weak) = (strong.as_ref(), weak.as_ref());
        let template = match &options.template {
            Some(spec) => ChatTemplate::resolve(spec, Some(strong))?,
            None => model_template(strong)?,
        };
        let pair = Self {
            strong: ModelScorer::load(strong, device, options.dtype)?,
            weak: ModelScorer::load(weak, device, options.dtype)?,
            template,
            customization: None,
            options,
        };
        let (sv, wv) = (
            pair.strong.model.config().vocab_size,
            pair.weak.model.config().vocab_size,
        );
        if sv != wv && pair.options.tokenizer_policy == TokenizerPolicy::Identical {
            warn!(
                strong = sv,
                weak = wv,
                "strong and weak vocabulary sizes differ; every scored text is checked for identical ids"
            );
        }
        info!(template = pair.template.name(), "density-ratio pair ready");
        Ok(pair)
    }

    /// Builds a pair from already loaded parts.
    pub fn from_parts(
        strong: ModelScorer<B>,
        weak: ModelScorer<B>,
        template: ChatTemplate,
        options: ScoreOptions,
    ) -> Self {
        Self {
            strong,
            weak,
            template,
            customization: None,
            options,
        }
    }

    /// Customizes every prompt before rendering (docs/customization.md).
    pub fn with_customization(mut self, customization: Customization) -> Self {
        self.customization = Some(customization);
        self
    }

    pub fn customization(&self) -> Option<&Customization> {
        self.customization.as_ref()
    }

    /// The strong model and its tokenizer (e.g. to serve as a router model).
    pub fn strong(&self) -> &ModelScorer<B> {
        &self.strong
    }

    pub fn options(&self) -> &ScoreOptions {
        &self.options
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Renders and tokenizes one item; errors here belong to the item (bad template input,
    /// tokenizer disagreement), not to the run.
    pub fn prepare(&self, item: &Item) -> Result<Prepared> {
        if item.response.trim().is_empty() {
            return Err(CoreError::Invalid("the response is empty".into()));
        }
        let customized;
        let messages = match &self.customization {
            Some(c) => {
                let domain = item.domain.as_deref().unwrap_or(&c.default_domain);
                customized = c.apply(&item.messages, domain, item.id.as_deref().unwrap_or(""))?;
                &customized.messages
            }
            None => &item.messages,
        };
        let rendered = self.template.render_pair(messages, &item.response)?;
        let limits = self.options.limits;
        let strong = encode(&self.strong.tokenizer, &rendered, limits)?;
        let weak = encode(&self.weak.tokenizer, &rendered, limits)?;
        if strong == weak {
            return Ok(Prepared { strong, weak: None });
        }
        match self.options.tokenizer_policy {
            TokenizerPolicy::Separate => Ok(Prepared {
                strong,
                weak: Some(weak),
            }),
            TokenizerPolicy::Identical => {
                let index = strong
                    .ids
                    .iter()
                    .zip(&weak.ids)
                    .position(|(a, b)| a != b)
                    .unwrap_or(strong.ids.len().min(weak.ids.len()));
                let show = |ids: &[u32]| ids.get(index).map_or("<end>".to_string(), u32::to_string);
                Err(CoreError::TokenizerMismatch {
                    index,
                    strong: show(&strong.ids),
                    weak: show(&weak.ids),
                })
            }
        }
    }

    /// Scores prepared items, batching under `max_batch_tokens`. Results are in input order.
    pub fn score_prepared(&self, items: &[Prepared]) -> Result<Vec<ItemScore>> {
        self.score_prepared_with(items, &mut |_, _| {})
    }

    /// As [`Self::score_prepared`], calling `progress(items_done, tokens_done)` after each batch.
    pub fn score_prepared_with(
        &self,
        items: &[Prepared],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<ItemScore>> {
        let max = self.options.max_batch_tokens;
        let strong_in: Vec<&Encoded> = items.iter().map(|p| &p.strong).collect();
        let weak_in: Vec<&Encoded> = items.iter().map(Prepared::weak).collect();
        let strong = self.strong.response_logprobs(&strong_in, max, progress)?;
        let weak = self.weak.response_logprobs(&weak_in, max, progress)?;
        Ok(items
            .iter()
            .zip(strong.iter().zip(&weak))
            .map(|(p, (s, w))| {
                let enc = &p.strong;
                let (s, w) = (sum_logprobs(s), sum_logprobs(w));
                ItemScore {
                    reward: density_ratio(s, w, enc.n_response_tokens(), self.options.reduction),
                    strong_logprob: s,
                    weak_logprob: w,
                    n_response_tokens: enc.n_response_tokens(),
                    n_prompt_tokens: enc.n_prompt_tokens(),
                    truncated: enc.truncated || p.weak().truncated,
                }
            })
            .collect())
    }

    /// Prepares and scores `items`; the first item that cannot be prepared fails the call.
    pub fn score(&self, items: &[Item]) -> Result<Vec<ItemScore>> {
        let prepared = items
            .iter()
            .map(|item| self.prepare(item))
            .collect::<Result<Vec<_>>>()?;
        self.score_prepared(&prepared)
    }
}

/// A model's own chat template: `tokenizer_config.json` in a directory, or the GGUF metadata.
pub fn model_template(model: &Path) -> Result<ChatTemplate> {
    if let Some(t) = ModelDir::new(model).embedded_template()? {
        return Ok(ChatTemplate::new(
            &model.display().to_string(),
            &t.source,
            &t.bos_token,
            &t.eos_token,
        )?);
    }
    let where_ = if model.is_dir() {
        model.join("tokenizer_config.json")
    } else {
        model.to_path_buf()
    };
    Ok(ChatTemplate::from_model_dir(model)?
        .ok_or(cdr_prompt::PromptError::NoTemplate { path: where_ })?)
}

fn span(enc: &Encoded) -> ScoreSpan<'_> {
    ScoreSpan {
        ids: &enc.ids,
        start: enc.response_start,
    }
}
