//! A strong/weak model pair and the batched scoring pipeline.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cdr_data::Message;
use cdr_models::{
    ComputeDtype, Config, Device, LoadOptions, Model, ModelDir, ScoreSpan, Tokenizer,
};
use cdr_prompt::{ChatTemplate, Customization, RenderedPair};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::batch::{SeqShape, plan_shared_batches};
use crate::cache::{CacheTable, CachedLogprobs, ids_key, text_key};
use crate::encode::{Encoded, Limits, encode};
use crate::error::{CoreError, Result};
use crate::remote::RemoteModel;
use crate::reward::{Reduction, density_ratio, sum_logprobs};

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
    /// Sum or mean of the per-token log-prob differences.
    pub reduction: Reduction,
    /// Prompt and response token limits.
    pub limits: Limits,
    /// Upper bound on `batch x padded length` per forward pass.
    pub max_batch_tokens: usize,
    /// The compute dtype.
    pub dtype: ComputeDtype,
    /// Whether the two models must tokenize every text identically.
    pub tokenizer_policy: TokenizerPolicy,
    /// A built-in template name or a Jinja file; `None` uses the strong model's own template.
    pub template: Option<String>,
    /// Score with one model in memory at a time (strong pass, its weights dropped, weak pass):
    /// `Some(true)` always, `Some(false)` never, `None` when the two models' weights would not
    /// fit in the memory available at load.
    pub one_model_at_a_time: Option<bool>,
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
            one_model_at_a_time: None,
        }
    }
}

/// One response to score in the context of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The conversation before the response.
    pub messages: Vec<Message>,
    /// The response to score.
    pub response: String,
    /// The row the item belongs to; picks the customization exemplar (same for all its items).
    #[serde(default)]
    pub id: Option<String>,
    /// The query's domain for customization; `None` means the config's default domain.
    #[serde(default)]
    pub domain: Option<String>,
}

impl Item {
    /// `response` after the conversation `messages`.
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
    /// The strong model's tokens.
    pub strong: Encoded,
    /// `None` when the weak model scores the same ids as the strong one.
    pub weak: Option<Encoded>,
    /// The rendered text's key in the log-prob cache ([`text_key`]).
    pub text: String,
}

impl Prepared {
    fn weak(&self) -> &Encoded {
        self.weak.as_ref().unwrap_or(&self.strong)
    }

    /// Tokens of the longer of the two sequences (what a forward pass costs).
    pub fn len(&self) -> usize {
        self.strong.ids.len().max(self.weak().ids.len())
    }

    /// Whether the sequences have no tokens.
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
    /// Response tokens scored.
    pub n_response_tokens: usize,
    /// Prompt tokens kept.
    pub n_prompt_tokens: usize,
    /// Whether the prompt or the response was cut to the limits.
    pub truncated: bool,
}

impl ItemScore {
    /// The reward from the two models' sums over `encoded`'s response tokens.
    pub fn from_sums(
        strong: f64,
        weak: f64,
        encoded: &Encoded,
        truncated: bool,
        reduction: Reduction,
    ) -> Self {
        let n = encoded.n_response_tokens();
        Self {
            reward: density_ratio(strong, weak, n, reduction),
            strong_logprob: strong,
            weak_logprob: weak,
            n_response_tokens: n,
            n_prompt_tokens: encoded.n_prompt_tokens(),
            truncated,
        }
    }
}

/// One model's log-probs on one text, from the cache or a forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLogprobs {
    /// Sum of the response tokens' log-probs.
    pub logprob: f64,
    /// Per-token log-probs, when asked for.
    pub tokens: Option<Vec<f32>>,
}

/// How many texts a scoring pass found in the cache and how many it computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassStats {
    /// Texts answered by the cache.
    pub cached: usize,
    /// Texts computed.
    pub computed: usize,
}

impl PassStats {
    /// Adds another pass's counts.
    pub fn add(&mut self, other: PassStats) {
        self.cached += other.cached;
        self.computed += other.computed;
    }
}

/// An encoded text with its cache key.
#[derive(Debug, Clone, Copy)]
pub struct KeyedText<'a> {
    /// Its tokens.
    pub encoded: &'a Encoded,
    /// [`text_key`] of the rendered text.
    pub text: &'a str,
}

/// One model with its tokenizer: sums of response-token log-probs of encoded sequences.
///
/// The weights load on first use ([`Self::model`]): a run whose log-probs all come from the cache
/// never reads them (for a 7B model, tens of seconds and gigabytes saved). They can be dropped
/// again ([`Self::release_weights`]) and reload when next needed.
pub struct ModelScorer {
    /// The model's tokenizer.
    pub tokenizer: Tokenizer,
    // Boxed: the config is large and scorers are moved around by value.
    config: Box<Config>,
    dir: PathBuf,
    device: Device,
    dtype: ComputeDtype,
    model: Mutex<Option<Arc<Model>>>,
    /// Log-probs come from servers instead of local weights.
    remote: Option<Arc<RemoteModel>>,
}

impl Clone for ModelScorer {
    fn clone(&self) -> Self {
        Self {
            tokenizer: self.tokenizer.clone(),
            config: self.config.clone(),
            dir: self.dir.clone(),
            device: self.device,
            dtype: self.dtype,
            model: Mutex::new(self.model.lock().ok().and_then(|m| m.clone())),
            remote: self.remote.clone(),
        }
    }
}

impl ModelScorer {
    /// Opens a model directory or GGUF file: its config and tokenizer now, its weights on first use.
    pub fn load(dir: &Path, device: &Device, dtype: ComputeDtype) -> Result<Self> {
        let model_dir = ModelDir::new(dir);
        Ok(Self {
            tokenizer: model_dir.tokenizer()?,
            config: Box::new(model_dir.config()?),
            dir: dir.to_path_buf(),
            device: *device,
            dtype,
            model: Mutex::new(None),
            remote: None,
        })
    }

    /// Takes its log-probs from `remote` (servers of this same model) instead of local weights;
    /// the config and tokenizer stay the local files'.
    pub fn with_remote(mut self, remote: RemoteModel) -> Self {
        self.remote = Some(Arc::new(remote));
        self
    }

    /// The served model's name when the log-probs are remote.
    pub fn remote_name(&self) -> Option<&str> {
        self.remote.as_deref().map(RemoteModel::name)
    }

    /// The model's configuration (no weights needed).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The model, its weights loaded on the first call (or the first after a release).
    pub fn model(&self) -> Result<Arc<Model>> {
        let mut slot = self
            .model
            .lock()
            .map_err(|_| CoreError::Invalid("a thread loading the model panicked".into()))?;
        if let Some(model) = slot.as_ref() {
            return Ok(model.clone());
        }
        if self.remote.is_some() {
            return Err(CoreError::Invalid(format!(
                "{} is served remotely (--backend remote): routers and generation need a local \
                 model",
                self.dir.display()
            )));
        }
        info!(model = %self.dir.display(), dtype = %self.dtype, "loading weights");
        // Shared: an adapter and its base (a strong/weak adapter pair) hold the base once.
        let model = Model::load_shared(
            &ModelDir::new(&self.dir),
            &self.device,
            LoadOptions { dtype: self.dtype },
        )?;
        info!(products = %model.kernel(), "weights loaded");
        *slot = Some(model.clone());
        Ok(model)
    }

    /// Drops the weights (they reload on next use); memory returns once no caller holds the model.
    pub fn release_weights(&self) {
        if let Ok(mut slot) = self.model.lock()
            && slot.take().is_some()
        {
            info!(model = %self.dir.display(), "weights released");
        }
    }

    /// Whether the weights are in memory.
    pub fn is_loaded(&self) -> bool {
        self.model.lock().is_ok_and(|m| m.is_some())
    }

    /// The checkpoint whose weights this model loads: an adapter's base, else the model itself
    /// (canonical where possible), so two scorers over one base can tell they share it.
    pub fn base_path(&self) -> PathBuf {
        let dir = ModelDir::new(&self.dir)
            .resolved()
            .map_or_else(|_| self.dir.clone(), |d| d.path);
        std::fs::canonicalize(&dir).unwrap_or(dir)
    }

    /// Bytes the weights take in the compute dtype.
    pub fn weight_bytes(&self) -> u64 {
        if self.remote.is_some() {
            return 0;
        }
        self.config.parameter_count() * self.dtype.size() as u64
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
        // A row's responses (chosen and rejected, or its N candidates) share the rendered prompt;
        // batched together, the model runs that prefix once.
        let shapes: Vec<SeqShape<'_>> = items
            .iter()
            .map(|e| {
                let s = span(e);
                SeqShape {
                    len: s.ids.len(),
                    prefix: &s.ids[..s.start.saturating_sub(1)],
                }
            })
            .collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); items.len()];
        if items.is_empty() {
            return Ok(out);
        }
        let local = match &self.remote {
            Some(_) => None,
            None => Some(self.model()?),
        };
        // Remote servers batch for themselves; bigger plans keep more requests in flight.
        let budget = match &self.remote {
            Some(_) => max_batch_tokens.saturating_mul(8),
            None => max_batch_tokens,
        };
        for batch in plan_shared_batches(&shapes, budget) {
            let spans: Vec<ScoreSpan<'_>> = batch.iter().map(|&i| span(items[i])).collect();
            let scored = match (&self.remote, &local) {
                (Some(remote), _) => remote.score_spans(&spans)?,
                (None, Some(model)) => model.score_spans(&spans)?,
                (None, None) => return Err(CoreError::Invalid("no model to score with".into())),
            };
            for (&i, lp) in batch.iter().zip(scored) {
                out[i] = lp;
            }
            progress(batch.len(), batch.iter().map(|&i| lengths[i]).sum());
        }
        Ok(out)
    }

    /// Log-probs of `items`, read from `table` where it holds them and computed (then stored)
    /// otherwise; `progress` sees the computed items only. Results are in input order.
    pub fn logprobs_cached(
        &self,
        items: &[KeyedText<'_>],
        table: Option<&CacheTable>,
        per_token: bool,
        max_batch_tokens: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Vec<TextLogprobs>, PassStats)> {
        let ids: Vec<String> = items.iter().map(|k| ids_key(k.encoded)).collect();
        let mut out: Vec<Option<TextLogprobs>> = items
            .iter()
            .zip(&ids)
            .map(|(k, ids)| {
                let hit = table?.get(k.text, ids, per_token)?;
                Some(TextLogprobs {
                    logprob: hit.logprob,
                    tokens: hit.tokens.filter(|_| per_token),
                })
            })
            .collect();
        let missing: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
        let stats = PassStats {
            cached: items.len() - missing.len(),
            computed: missing.len(),
        };
        let encoded: Vec<&Encoded> = missing.iter().map(|&i| items[i].encoded).collect();
        let computed = self.response_logprobs(&encoded, max_batch_tokens, progress)?;
        for (&i, tokens) in missing.iter().zip(computed) {
            let logprob = sum_logprobs(&tokens);
            // JSON has no infinities (serde_json writes null): such an entry would read back as
            // corrupt on every run, so it is not stored.
            let finite = logprob.is_finite() && tokens.iter().all(|t| t.is_finite());
            if let Some(table) = table.filter(|_| finite) {
                table.insert(CachedLogprobs {
                    text: items[i].text.to_string(),
                    ids: ids[i].clone(),
                    n: tokens.len(),
                    logprob,
                    tokens: per_token.then(|| tokens.clone()),
                })?;
            }
            out[i] = Some(TextLogprobs {
                logprob,
                tokens: per_token.then_some(tokens),
            });
        }
        Ok((out.into_iter().flatten().collect(), stats))
    }
}

/// Renders an item's conversation, customized when `customization` is set, with `template`.
pub fn render_item(
    template: &ChatTemplate,
    customization: Option<&Customization>,
    item: &Item,
) -> Result<RenderedPair> {
    if item.response.trim().is_empty() {
        return Err(CoreError::Invalid("the response is empty".into()));
    }
    let customized;
    let messages = match customization {
        Some(c) => {
            let domain = item.domain.as_deref().unwrap_or(&c.default_domain);
            customized = c.apply(&item.messages, domain, item.id.as_deref().unwrap_or(""))?;
            &customized.messages
        }
        None => &item.messages,
    };
    Ok(template.render_pair(messages, &item.response)?)
}

/// The cache tables of a pair's two models.
struct PairCache {
    strong: CacheTable,
    weak: CacheTable,
    stats: Mutex<(PassStats, PassStats)>,
}

/// A loaded strong/weak pair: the customized density-ratio reward model.
pub struct DensityRatio {
    strong: ModelScorer,
    weak: ModelScorer,
    template: ChatTemplate,
    customization: Option<Customization>,
    options: ScoreOptions,
    cache: Option<PairCache>,
    /// Release each model's weights after its pass ([`ScoreOptions::one_model_at_a_time`]).
    one_at_a_time: bool,
}

impl DensityRatio {
    /// Loads both models from their directories on `device`. The chat template is
    /// `options.template` if set, else the strong model's own.
    pub fn load(
        strong: impl AsRef<Path>,
        weak: impl AsRef<Path>,
        device: &Device,
        options: ScoreOptions,
    ) -> Result<Self> {
        let (strong, weak) = (strong.as_ref(), weak.as_ref());
        let template = pair_template(strong, &options)?;
        let pair = Self::from_parts(
            ModelScorer::load(strong, device, options.dtype)?,
            ModelScorer::load(weak, device, options.dtype)?,
            template,
            options,
        );
        let (sv, wv) = (
            pair.strong.config().vocab_size,
            pair.weak.config().vocab_size,
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
        strong: ModelScorer,
        weak: ModelScorer,
        template: ChatTemplate,
        options: ScoreOptions,
    ) -> Self {
        let one_at_a_time = options.one_model_at_a_time.unwrap_or_else(|| {
            // An adapter pair over one base holds that base once.
            let need = if strong.remote.is_none()
                && weak.remote.is_none()
                && strong.base_path() == weak.base_path()
            {
                strong.weight_bytes().max(weak.weight_bytes())
            } else {
                strong.weight_bytes() + weak.weight_bytes()
            };
            // Activations, the other model's packing buffers and the OS need room too.
            let room = cdr_models::memory::available_bytes().map(|a| a / 10 * 9);
            let fits = room.is_none_or(|room| need <= room);
            if !fits {
                info!(
                    need_gib = need as f64 / (1u64 << 30) as f64,
                    available_gib = room.unwrap_or(0) as f64 / (1u64 << 30) as f64,
                    "the two models do not fit in memory together: scoring one model at a time"
                );
            }
            !fits
        });
        Self {
            strong,
            weak,
            template,
            customization: None,
            options,
            cache: None,
            one_at_a_time,
        }
    }

    /// Whether this pair scores with one model in memory at a time.
    pub fn one_model_at_a_time(&self) -> bool {
        self.one_at_a_time
    }

    /// Customizes every prompt before rendering (docs/customization.md).
    pub fn with_customization(mut self, customization: Customization) -> Self {
        self.customization = Some(customization);
        self
    }

    /// Reads and stores each model's log-probs in its cache table (see [`crate::cache`]); the
    /// tables' keys must match this pair's template, customization, limits and dtype.
    pub fn with_cache(mut self, strong: CacheTable, weak: CacheTable) -> Self {
        self.cache = Some(PairCache {
            strong,
            weak,
            stats: Mutex::default(),
        });
        self
    }

    /// What the cache answered so far, strong and weak, when there is one.
    pub fn cache_stats(&self) -> Option<(PassStats, PassStats)> {
        let cache = self.cache.as_ref()?;
        cache.stats.lock().ok().map(|s| *s)
    }

    /// The customization, if any.
    pub fn customization(&self) -> Option<&Customization> {
        self.customization.as_ref()
    }

    /// The strong model and its tokenizer (e.g. to serve as a router model).
    pub fn strong(&self) -> &ModelScorer {
        &self.strong
    }

    /// The weak model and its tokenizer.
    pub fn weak(&self) -> &ModelScorer {
        &self.weak
    }

    /// The scoring options.
    pub fn options(&self) -> &ScoreOptions {
        &self.options
    }

    /// The chat template texts are rendered with.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Renders and tokenizes one item; errors here belong to the item (bad template input,
    /// tokenizer disagreement), not to the run.
    pub fn prepare(&self, item: &Item) -> Result<Prepared> {
        let rendered = render_item(&self.template, self.customization.as_ref(), item)?;
        let text = text_key(&rendered.full, rendered.response_start());
        let limits = self.options.limits;
        let strong = encode(&self.strong.tokenizer, &rendered, limits)?;
        let weak = encode(&self.weak.tokenizer, &rendered, limits)?;
        if strong == weak {
            return Ok(Prepared {
                strong,
                weak: None,
                text,
            });
        }
        match self.options.tokenizer_policy {
            TokenizerPolicy::Separate => Ok(Prepared {
                strong,
                weak: Some(weak),
                text,
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
        let keyed = |enc: fn(&Prepared) -> &Encoded| -> Vec<KeyedText<'_>> {
            items
                .iter()
                .map(|p| KeyedText {
                    encoded: enc(p),
                    text: &p.text,
                })
                .collect()
        };
        let (strong_table, weak_table) = match &self.cache {
            Some(c) => (Some(&c.strong), Some(&c.weak)),
            None => (None, None),
        };
        let (strong, s_stats) = self.strong.logprobs_cached(
            &keyed(|p| &p.strong),
            strong_table,
            false,
            max,
            progress,
        )?;
        if self.one_at_a_time {
            self.strong.release_weights();
        }
        let (weak, w_stats) =
            self.weak
                .logprobs_cached(&keyed(Prepared::weak), weak_table, false, max, progress)?;
        if self.one_at_a_time {
            self.weak.release_weights();
        }
        if let Some(Ok(mut stats)) = self.cache.as_ref().map(|c| c.stats.lock()) {
            stats.0.add(s_stats);
            stats.1.add(w_stats);
        }
        Ok(items
            .iter()
            .zip(strong.iter().zip(&weak))
            .map(|(p, (s, w))| {
                ItemScore::from_sums(
                    s.logprob,
                    w.logprob,
                    &p.strong,
                    p.strong.truncated || p.weak().truncated,
                    self.options.reduction,
                )
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

/// The template a pair renders with: `options.template` if set, else the strong model's own.
pub fn pair_template(strong: &Path, options: &ScoreOptions) -> Result<ChatTemplate> {
    match &options.template {
        Some(spec) => Ok(ChatTemplate::resolve(spec, Some(strong))?),
        None => model_template(strong),
    }
}

/// A model's own chat template: from a directory as transformers finds it
/// ([`ChatTemplate::from_model_dir`]), or from the GGUF metadata.
pub fn model_template(model: &Path) -> Result<ChatTemplate> {
    let dir = ModelDir::new(model);
    if dir.is_adapter() {
        // A template saved with the adapter (TRL saves the tokenizer there) wins, else the base's.
        if let Some(t) = ChatTemplate::from_model_dir(model)? {
            return Ok(t);
        }
        return model_template(&dir.resolved()?.path);
    }
    if let Some(t) = ModelDir::new(model).embedded_template()? {
        return Ok(ChatTemplate::new(
            &model.display().to_string(),
            &t.source,
            &t.bos_token,
            &t.eos_token,
        )?);
    }
    Ok(
        ChatTemplate::from_model_dir(model)?.ok_or(cdr_prompt::PromptError::NoTemplate {
            path: model.to_path_buf(),
        })?,
    )
}

fn span(enc: &Encoded) -> ScoreSpan<'_> {
    ScoreSpan {
        ids: &enc.ids,
        start: enc.response_start,
    }
}
