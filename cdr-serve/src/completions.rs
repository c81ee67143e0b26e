//! The model server: `POST /v1/completions` with vLLM's prompt log-prob fields, and
//! `GET /v1/models`, for one model.
//!
//! The response shapes follow vLLM's OpenAI-compatible server: `choices[i].prompt_logprobs` is a
//! list with `null` first (the first token has no context) and, per later token, an object
//! `{token_id: {logprob, rank, decoded_token}}` holding that token and the top alternatives;
//! `echo` + `logprobs` fill the legacy `logprobs` object (`tokens`, `token_logprobs` with a
//! leading `null`, `top_logprobs`, `text_offset`).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cdr_models::{Model, RankedSpan, ScoreSpan, Tokenizer};
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use crate::api::{CompletionRequest, PromptInput};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::queue::{Batching, Worker};

/// Sequences to rank, with how many alternatives and from which position.
#[derive(Debug, Clone)]
pub struct RankWork {
    /// Token ids of each prompt.
    pub sequences: Vec<Vec<u32>>,
    /// Alternatives per position.
    pub top: usize,
    /// First position wanted (at least 1).
    pub start: usize,
}

/// What a ranking job gets back: one span per sequence.
pub type RankReply = Result<Vec<RankedSpan>, ApiError>;

/// Ranks batches until every queue handle is gone.
pub fn run(
    model: Model,
    worker: Worker<RankWork, RankReply>,
    batching: Batching,
    metrics: Arc<Metrics>,
) {
    while let Some(batch) = worker.next_batch(batching) {
        let start = Instant::now();
        let top = batch.iter().map(|j| j.work.top).max().unwrap_or(0);
        // One forward per job group under the token budget: sequences of a batch are padded to
        // the longest, so the budget counts `count x longest`.
        let mut groups: Vec<Vec<(usize, usize)>> = Vec::new();
        let (mut widest, mut count) = (0usize, 0usize);
        for (j, job) in batch.iter().enumerate() {
            for (s, seq) in job.work.sequences.iter().enumerate() {
                let w = widest.max(seq.len());
                if groups.is_empty() || (count > 0 && w * (count + 1) > batching.max_tokens) {
                    groups.push(Vec::new());
                    widest = 0;
                    count = 0;
                }
                widest = widest.max(seq.len());
                count += 1;
                if let Some(g) = groups.last_mut() {
                    g.push((j, s));
                }
            }
        }
        let mut results: Vec<Vec<Option<RankedSpan>>> = batch
            .iter()
            .map(|j| vec![None; j.work.sequences.len()])
            .collect();
        let mut failed: Option<ApiError> = None;
        let mut tokens = 0;
        for group in &groups {
            let spans: Vec<ScoreSpan<'_>> = group
                .iter()
                .map(|&(j, s)| {
                    let ids = &batch[j].work.sequences[s];
                    ScoreSpan {
                        ids,
                        start: batch[j].work.start.clamp(1, ids.len()),
                    }
                })
                .collect();
            tokens += spans.iter().map(|s| s.ids.len()).sum::<usize>();
            match model.ranked_logprobs(&spans, top) {
                Ok(ranked) => {
                    for (&(j, s), r) in group.iter().zip(ranked) {
                        results[j][s] = Some(r);
                    }
                }
                Err(e) => {
                    warn!("ranking failed: {e}");
                    failed = Some(ApiError::bad_request(e.to_string()));
                    break;
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        metrics.batch(tokens, seconds);
        debug!(jobs = batch.len(), tokens, seconds, "batch ranked");
        for (job, spans) in batch.into_iter().zip(results) {
            let reply = match (&failed, spans.into_iter().collect::<Option<Vec<_>>>()) {
                (_, Some(spans)) => Ok(spans),
                (Some(e), None) => Err(e.clone()),
                (None, None) => Err(ApiError::internal("no answer was computed")),
            };
            let _ = job.reply.send(reply);
        }
    }
}

/// The served model's tokenizer, name and context length.
pub struct Served {
    /// The name clients address it by (`model` in requests).
    pub name: String,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its vocabulary size (ids at or above are refused).
    pub vocab: usize,
    /// Its context length.
    pub max_model_len: usize,
}

impl Served {
    /// The token ids of each prompt, checked against the vocabulary and context length.
    pub fn sequences(&self, request: &CompletionRequest) -> Result<Vec<Vec<u32>>, ApiError> {
        request
            .prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ids = match p {
                    PromptInput::Ids(ids) => ids.clone(),
                    PromptInput::Text(text) => self
                        .tokenizer
                        .encode(text.as_str(), request.add_special_tokens)
                        .map_err(|e| ApiError::bad_request(format!("prompt {i}: {e}")))?
                        .get_ids()
                        .to_vec(),
                };
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.vocab) {
                    return Err(ApiError::bad_request(format!(
                        "prompt {i}: token id {bad} is outside the vocabulary (size {})",
                        self.vocab
                    )));
                }
                if ids.is_empty() {
                    return Err(ApiError::bad_request(format!("prompt {i} has no tokens")));
                }
                if ids.len() + request.max_tokens > self.max_model_len {
                    return Err(ApiError::bad_request(format!(
                        "prompt {i} has {} tokens; this model's context is {} ({} with the \
                         requested completion)",
                        ids.len(),
                        self.max_model_len,
                        ids.len() + request.max_tokens
                    )));
                }
                Ok(ids)
            })
            .collect()
    }

    fn decode(&self, id: u32) -> String {
        self.tokenizer.decode(&[id], false).unwrap_or_default()
    }

    /// The vLLM-shaped response for `request`, whose prompts were `sequences` and ranked as
    /// `spans` (from position `start`).
    pub fn response(
        &self,
        request: &CompletionRequest,
        sequences: &[Vec<u32>],
        spans: &[RankedSpan],
        start: usize,
    ) -> Value {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut choices = Vec::with_capacity(spans.len());
        let mut prompt_tokens = 0;
        for (index, (ids, span)) in sequences.iter().zip(spans).enumerate() {
            prompt_tokens += ids.len();
            let start = start.clamp(1, ids.len());
            let generated = (request.max_tokens == 1)
                .then(|| span.next.first().copied())
                .flatten();
            let generated_text = generated.map(|(id, _)| self.decode(id)).unwrap_or_default();
            let prompt_text = match &request.prompts[index] {
                PromptInput::Text(t) => t.clone(),
                PromptInput::Ids(ids) => self.tokenizer.decode(ids, false).unwrap_or_default(),
            };
            let text = if request.echo {
                format!("{prompt_text}{generated_text}")
            } else {
                generated_text
            };
            let mut choice = Map::new();
            choice.insert("index".into(), json!(index));
            choice.insert("text".into(), json!(text));
            choice.insert(
                "logprobs".into(),
                match request.logprobs {
                    Some(k) => self.legacy_logprobs(request.echo, ids, span, start, generated, k),
                    None => Value::Null,
                },
            );
            choice.insert("finish_reason".into(), json!("length"));
            choice.insert("stop_reason".into(), Value::Null);
            if let Some(k) = request.prompt_logprobs {
                choice.insert(
                    "prompt_logprobs".into(),
                    self.prompt_logprobs(ids, span, start, k),
                );
            }
            choices.push(Value::Object(choice));
        }
        let completion_tokens = request.max_tokens * sequences.len();
        json!({
            "id": format!("cmpl-{created}-{}", sequences.len()),
            "object": "text_completion",
            "created": created,
            "model": self.name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        })
    }

    /// `[null, {id: {logprob, rank, decoded_token}}, ...]`, `null` before `start`.
    fn prompt_logprobs(&self, ids: &[u32], span: &RankedSpan, start: usize, k: usize) -> Value {
        let mut out = vec![Value::Null; start];
        for p in &span.positions {
            let mut entry = Map::new();
            entry.insert(
                p.token.to_string(),
                json!({"logprob": p.logprob, "rank": p.rank, "decoded_token": self.decode(p.token)}),
            );
            for (rank, &(id, lp)) in p.top.iter().take(k).enumerate() {
                entry.entry(id.to_string()).or_insert_with(
                    || json!({"logprob": lp, "rank": rank + 1, "decoded_token": self.decode(id)}),
                );
            }
            out.push(Value::Object(entry));
        }
        debug_assert_eq!(out.len(), ids.len());
        Value::Array(out)
    }

    /// The legacy (OpenAI completions) `logprobs` object: the prompt's tokens when echoing, then
    /// the generated token.
    fn legacy_logprobs(
        &self,
        echo: bool,
        ids: &[u32],
        span: &RankedSpan,
        start: usize,
        generated: Option<(u32, f32)>,
        k: usize,
    ) -> Value {
        let mut tokens = Vec::new();
        let mut token_logprobs = Vec::new();
        let mut top_logprobs = Vec::new();
        let mut text_offset = Vec::new();
        let mut offset = 0usize;
        let mut push = |token: String, lp: Value, top: Value| {
            text_offset.push(offset);
            offset += token.len();
            tokens.push(token);
            token_logprobs.push(lp);
            top_logprobs.push(top);
        };
        let top_map = |top: &[(u32, f32)]| -> Value {
            let mut m = Map::new();
            for &(id, lp) in top.iter().take(k) {
                m.entry(self.decode(id)).or_insert(json!(lp));
            }
            Value::Object(m)
        };
        if echo {
            for (i, &id) in ids.iter().enumerate() {
                let ranked = i.checked_sub(start).and_then(|at| span.positions.get(at));
                match ranked {
                    Some(p) => push(self.decode(id), json!(p.logprob), top_map(&p.top)),
                    None => push(self.decode(id), Value::Null, Value::Null),
                }
            }
        }
        if let Some((id, lp)) = generated {
            push(self.decode(id), json!(lp), top_map(&span.next));
        }
        json!({
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
            "text_offset": text_offset,
        })
    }

    /// `GET /v1/models`, advertising cdr's `prompt_logprobs_start` extension.
    pub fn models(&self) -> Value {
        json!({
            "object": "list",
            "data": [{
                "id": self.name,
                "object": "model",
                "created": 0,
                "owned_by": "cdr",
                "root": self.name,
                "parent": null,
                "max_model_len": self.max_model_len,
                "cdr": {"prompt_logprobs_start": true},
            }],
        })
    }
}
