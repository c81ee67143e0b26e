//! Log-probabilities with their ranks and the most likely alternatives: what an OpenAI/vLLM-style
//! completions endpoint reports per prompt token (`prompt_logprobs`, `echo` + `logprobs`).
//!
//! The scoring path ([`LlamaForCausalLm::score_spans`]) reduces each position to one number on
//! the device. A rank and a top-k need the whole distribution, so here each position's logits
//! come back to the host (in chunks of at most `LOGIT_BUDGET` values) and are reduced there, with
//! the normalizer accumulated in f64.

use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

use crate::error::{ModelError, Result};
use crate::llama::LlamaForCausalLm;
use crate::logprobs::{LOGIT_BUDGET, ScoreSpan, read_f32};

/// One token of a sequence with its log-probability given the tokens before it.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedToken {
    /// The token id at this position.
    pub token: u32,
    /// `log p(token | tokens before)`.
    pub logprob: f32,
    /// 1 + the number of tokens the model found strictly more likely here.
    pub rank: usize,
    /// The `top` most likely tokens here, most likely first (ties by lower id).
    pub top: Vec<(u32, f32)>,
}

/// A span's ranked positions, and the distribution after its last token.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedSpan {
    /// `ids[start..]`, each with its log-probability, rank and alternatives.
    pub positions: Vec<RankedToken>,
    /// The most likely next tokens after the whole sequence (at least one: the greedy token).
    pub next: Vec<(u32, f32)>,
}

impl<B: Backend> LlamaForCausalLm<B> {
    /// For each span, every position from `start` on with its log-probability, rank and `top`
    /// alternatives, and the `max(top, 1)` most likely tokens to follow the sequence.
    pub fn ranked_logprobs(&self, batch: &[ScoreSpan<'_>], top: usize) -> Result<Vec<RankedSpan>> {
        self.validate(batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (hidden, mut rows, mut targets) = self.padded_states(batch);
        let width = batch.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let scored = rows.len();
        // The last position of each sequence predicts the next token; its target is unused.
        for (b, span) in batch.iter().enumerate() {
            rows.push((b * width + span.ids.len() - 1) as i32);
            targets.push(0);
        }
        let vocab = self.config().vocab_size;
        let chunk = (LOGIT_BUDGET / vocab).max(1);
        let device = self.device();
        let mut reduced: Vec<RankedToken> = Vec::with_capacity(rows.len());
        for (rows, targets) in rows.chunks(chunk).zip(targets.chunks(chunk)) {
            let n = rows.len();
            let index =
                Tensor::<B, 1, Int>::from_data(TensorData::new(rows.to_vec(), [n]), &device);
            let logits = self.logits(hidden.clone().select(0, index));
            // The scored positions' log-probs come from the scoring path's own log-softmax, so
            // a remote client gets the numbers local scoring computes.
            let picked = self.pick_logprobs(logits.clone(), targets)?;
            let values = read_f32(logits.cast(DType::F32))?;
            if values.len() != n * vocab {
                return Err(ModelError::Backend(format!(
                    "logits came back with {} values, expected {n} x {vocab}",
                    values.len()
                )));
            }
            for ((row, &target), lp) in values.chunks_exact(vocab).zip(targets).zip(picked) {
                // Rows past `scored` predict the next token: they have no target.
                let exact = (reduced.len() < scored).then_some(lp);
                reduced.push(reduce(row, target as u32, top, exact));
            }
        }
        let next = reduced.split_off(scored);
        let mut positions = reduced.into_iter();
        Ok(batch
            .iter()
            .zip(next)
            .map(|(span, after)| RankedSpan {
                positions: positions
                    .by_ref()
                    .take(span.ids.len() - span.start)
                    .collect(),
                next: if top == 0 {
                    after.top.into_iter().take(1).collect()
                } else {
                    after.top
                },
            })
            .collect())
    }
}

/// One position's logits reduced to the target's log-probability, its rank and the top
/// `max(top, 1)` tokens (the greedy token is always wanted for the next-token case).
///
/// `exact` is the target's log-prob from the scoring path; the alternatives are then offset from
/// it by their logit differences, so all share its normalizer. Without it (the next-token row)
/// the normalizer is accumulated here, in f64.
fn reduce(logits: &[f32], target: u32, top: usize, exact: Option<f32>) -> RankedToken {
    let value = logits.get(target as usize).copied().unwrap_or(f32::NAN);
    let log_norm = match exact {
        Some(lp) => f64::from(value) - f64::from(lp),
        None => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = logits.iter().map(|&x| f64::from(x - max).exp()).sum();
            f64::from(max) + sum.ln()
        }
    };
    let rank = 1 + logits.iter().filter(|&&x| x > value).count();
    // The next-token row always wants the greedy token; a scored position only what was asked.
    let keep = if exact.is_some() { top } else { top.max(1) };
    // Most likely first, ties by lower id; kept sorted, so each logit costs one comparison
    // against the current k-th unless it enters.
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(keep + 1);
    for (id, &x) in logits.iter().enumerate().filter(|_| keep > 0) {
        if best.len() == keep && best.last().is_some_and(|&(_, last)| x <= last) {
            continue;
        }
        let at = best.partition_point(|&(_, y)| y >= x);
        best.insert(at, (id as u32, x));
        best.truncate(keep);
    }
    let norm = |x: f32| (f64::from(x) - log_norm) as f32;
    RankedToken {
        token: target,
        logprob: exact.unwrap_or_else(|| norm(value)),
        rank,
        top: best.into_iter().map(|(id, x)| (id, norm(x))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::reduce;

    #[test]
    fn reduction_ranks_and_orders_ties_by_id() {
        let logits = [1.0f32, 3.0, 3.0, -2.0, 0.5];
        let r = reduce(&logits, 0, 3, None);
        let norm: f64 = logits.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
        assert!((f64::from(r.logprob) - (1.0 - norm)).abs() < 1e-6);
        assert_eq!(r.rank, 3);
        let ids: Vec<u32> = r.top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 2, 0]);
        assert_eq!(reduce(&logits, 1, 0, None).rank, 1);
        // With the scoring path's value, the alternatives share its normalizer.
        let e = reduce(&logits, 0, 2, Some(-2.0));
        assert_eq!(e.logprob, -2.0);
        assert!((e.top[0].1 - 0.0).abs() < 1e-6, "{:?}", e.top);
        assert_eq!(reduce(&logits, 3, 0, None).rank, 5);
        assert_eq!(reduce(&logits, 3, 0, None).top.len(), 1);
    }
}
