//! Batched per-token log-probabilities: the scoring forward.

use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

use crate::error::{ModelError, Result};
use crate::llama::LlamaForCausalLm;

/// Upper bound on f32 logits held at once (64 MiB): the vocabulary projection runs over the scored
/// positions in chunks of `LOGIT_BUDGET / vocab` rows, so a full `[batch, seq, vocab]` tensor never
/// exists.
const LOGIT_BUDGET: usize = 16 << 20;

/// One sequence to score: token ids and the first position whose log-probability is wanted.
///
/// `start` must be at least 1 (token 0 has no context); the result holds
/// `log p(ids[t] | ids[..t])` for `t in start..ids.len()`.
#[derive(Debug, Clone, Copy)]
pub struct ScoreSpan<'a> {
    pub ids: &'a [u32],
    pub start: usize,
}

impl<'a> ScoreSpan<'a> {
    /// Every token after the first.
    pub fn all(ids: &'a [u32]) -> Self {
        Self { ids, start: 1 }
    }
}

impl<B: Backend> LlamaForCausalLm<B> {
    /// `log p(ids[t] | ids[..t])` for `t in 1..len` of each sequence (f32, log-softmax over the full
    /// vocabulary). Sequences may differ in length; they are right-padded into one batch.
    pub fn token_logprobs(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let spans: Vec<ScoreSpan<'_>> = batch.iter().map(|ids| ScoreSpan::all(ids)).collect();
        self.score_spans(&spans)
    }

    /// Log-probabilities of the tokens `ids[start..]` of each span, in one padded forward pass. The
    /// vocabulary projection and log-softmax run only at the requested positions.
    pub fn score_spans(&self, batch: &[ScoreSpan<'_>]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.config().vocab_size;
        for (i, span) in batch.iter().enumerate() {
            if span.start == 0 || span.start > span.ids.len() {
                return Err(ModelError::Input(format!(
                    "sequence {i}: start {} is outside 1..={}",
                    span.start,
                    span.ids.len()
                )));
            }
            if let Some(&bad) = span.ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ModelError::Input(format!(
                    "sequence {i}: token id {bad} is outside the vocabulary (size {vocab})"
                )));
            }
        }
        let Some(max_len) = batch.iter().map(|s| s.ids.len()).max() else {
            return Ok(Vec::new());
        };
        let device = self.device();

        let mut padded = vec![0i32; batch.len() * max_len];
        // Row of the hidden state that predicts each scored token, and that token.
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (b, span) in batch.iter().enumerate() {
            for (t, &id) in span.ids.iter().enumerate() {
                padded[b * max_len + t] = id as i32;
            }
            for t in span.start..span.ids.len() {
                rows.push((b * max_len + t - 1) as i32);
                targets.push(span.ids[t] as i32);
            }
        }
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(padded, [batch.len(), max_len]),
            &device,
        );
        let hidden = self.hidden_states(ids);
        let hidden_size = hidden.dims()[2];
        let hidden = hidden.reshape([batch.len() * max_len, hidden_size]);

        let chunk = (LOGIT_BUDGET / vocab).max(1);
        let mut flat = Vec::with_capacity(rows.len());
        for (rows, targets) in rows.chunks(chunk).zip(targets.chunks(chunk)) {
            let n = rows.len();
            let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows.to_vec(), [n]), &device);
            let targets =
                Tensor::<B, 2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), &device);
            let logits = self.logits(hidden.clone().select(0, rows)).cast(DType::F32);
            let max = logits.clone().max_dim(1);
            let log_sum = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
            let picked = logits.gather(1, targets) - log_sum;
            flat.extend(read_f32(picked)?);
        }

        let mut out = Vec::with_capacity(batch.len());
        let mut offset = 0;
        for span in batch {
            let n = span.ids.len() - span.start;
            out.push(flat[offset..offset + n].to_vec());
            offset += n;
        }
        Ok(out)
    }
}

fn read_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    let data = t
        .try_into_data()
        .map_err(|e| ModelError::Backend(format!("{e:?}")))?;
    data.to_vec::<f32>()
        .map_err(|e| ModelError::Backend(format!("{e:?}")))
}
