//! The pair server's scoring thread: batches of `/v1/score` and `/get_reward` jobs, routed,
//! prepared and scored together with the engine the CLI's `cdr score` uses, so a reward over
//! HTTP is the reward `cdr score` writes for the same row.

use std::sync::Arc;
use std::time::Instant;

use cdr_core::engine::{Engine, Silent};
use cdr_core::{CoreError, Item, ItemScore, Message};
use cdr_data::BestOfNRow;
use serde_json::Map;
use tracing::{debug, warn};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::queue::{Batching, Job, Worker};

/// One response to score in its prompt's context.
#[derive(Debug, Clone)]
pub struct ScoreItem {
    /// The conversation before the response.
    pub prompt: Vec<Message>,
    /// The response.
    pub response: String,
    /// The (canonical) domain; `None` lets the router decide.
    pub domain: Option<String>,
}

/// What a pair job gets back: one score per item, in order, with the domain it was scored in.
pub type PairReply = Result<Vec<(ItemScore, Option<String>)>, ApiError>;

/// A queued pair job.
pub type PairJob = Job<Vec<ScoreItem>, PairReply>;

/// A rough token count for the batch budget (the scorer plans its forward passes exactly).
pub fn estimate_tokens(items: &[ScoreItem]) -> usize {
    items
        .iter()
        .map(|i| {
            let prompt: usize = i.prompt.iter().map(|m| m.content.len()).sum();
            (prompt + i.response.len()) / 4 + 8
        })
        .sum()
}

/// Scores batches until every queue handle is gone.
pub fn run(
    engine: Engine,
    worker: Worker<Vec<ScoreItem>, PairReply>,
    batching: Batching,
    metrics: Arc<Metrics>,
) {
    let mut next_id = 0u64;
    while let Some(batch) = worker.next_batch(batching) {
        let start = Instant::now();
        let (replies, tokens) = score_batch(&engine, &batch, &mut next_id);
        let seconds = start.elapsed().as_secs_f64();
        metrics.batch(tokens, seconds);
        debug!(jobs = batch.len(), tokens, seconds, "batch scored");
        for (job, reply) in batch.into_iter().zip(replies) {
            // The client may have gone (timeout, disconnect); its answer has nowhere to go.
            let _ = job.reply.send(reply);
        }
    }
}

fn score_batch(engine: &Engine, batch: &[PairJob], next_id: &mut u64) -> (Vec<PairReply>, usize) {
    // Ids for routing and for the scorer's per-row customization (exemplar draws).
    let mut ids: Vec<Vec<String>> = Vec::with_capacity(batch.len());
    for job in batch {
        ids.push(
            job.work
                .iter()
                .map(|_| {
                    *next_id += 1;
                    format!("request-{next_id}")
                })
                .collect(),
        );
    }
    let domains = match route(engine, batch, &ids) {
        Ok(d) => d,
        Err(e) => {
            let e = ApiError::internal(format!("routing failed: {e}"));
            return (batch.iter().map(|_| Err(e.clone())).collect(), 0);
        }
    };
    let pair = engine.pair();
    let mut replies: Vec<Option<PairReply>> = vec![None; batch.len()];
    let mut prepared = Vec::new();
    let mut spans = Vec::new();
    for (j, job) in batch.iter().enumerate() {
        let mut mine = Vec::with_capacity(job.work.len());
        let mut chosen = Vec::with_capacity(job.work.len());
        for (k, item) in job.work.iter().enumerate() {
            let id = &ids[j][k];
            let domain = item
                .domain
                .clone()
                .or_else(|| domains.as_ref().and_then(|d| d.get(id)).cloned());
            chosen.push(domain.clone());
            let scored =
                Item::new(item.prompt.clone(), item.response.clone()).in_row(id.clone(), domain);
            match pair.prepare(&scored) {
                Ok(p) => mine.push(p),
                Err(e) => {
                    let message = if job.work.len() > 1 {
                        format!("response {k}: {e}")
                    } else {
                        e.to_string()
                    };
                    replies[j] = Some(Err(match e {
                        CoreError::TokenizerMismatch { .. } => ApiError::unprocessable(message),
                        _ => ApiError::bad_request(message),
                    }));
                    break;
                }
            }
        }
        if replies[j].is_none() {
            spans.push((j, prepared.len(), chosen));
            prepared.extend(mine);
        }
    }
    let mut tokens = 0;
    match pair.score_prepared_with(&prepared, &mut |_, n| tokens += n) {
        Ok(scores) => {
            for (j, offset, domains) in spans {
                let mine = scores[offset..offset + domains.len()].iter().copied();
                replies[j] = Some(Ok(mine.zip(domains).collect()));
            }
        }
        Err(e) => {
            warn!("scoring failed: {e}");
            let e = ApiError::internal(format!("scoring failed: {e}"));
            for (j, _, _) in spans {
                replies[j] = Some(Err(e.clone()));
            }
        }
    }
    let replies = replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::internal("no answer was computed"))))
        .collect();
    (replies, tokens)
}

/// Domains of the items that came without one, when the pair is customized.
fn route(
    engine: &Engine,
    batch: &[PairJob],
    ids: &[Vec<String>],
) -> cdr_core::Result<Option<std::collections::HashMap<String, String>>> {
    if engine.pair().customization().is_none() {
        return Ok(None);
    }
    let rows: Vec<BestOfNRow> = batch
        .iter()
        .zip(ids)
        .flat_map(|(job, ids)| job.work.iter().zip(ids))
        .filter(|(item, _)| item.domain.is_none())
        .map(|(item, id)| BestOfNRow {
            id: id.clone(),
            prompt: item.prompt.clone(),
            responses: vec![item.response.clone()],
            subset: None,
            domain: None,
            extra: Map::new(),
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let refs: Vec<&BestOfNRow> = rows.iter().collect();
    engine.route(&refs, "request", &mut Silent)
}
