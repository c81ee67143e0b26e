//! Batched per-token log-probabilities: the scoring forward.

use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

use crate::error::{ModelError, Result};
use crate::llama::LlamaForCausalLm;

/// Upper bound on f32 logits held at once (64 MiB): the vocabulary projection runs over the scored
/// positions in chunks of `LOGIT_BUDGET / vocab` rows, so a full `[batch, seq, vocab]` tensor never
/// exists.
pub(crate) const LOGIT_BUDGET: usize = 16 << 20;

/// One sequence to score: token ids and the first position whose log-probability is wanted.
///
/// `start` must be at least 1 (token 0 has no context); the result holds
/// `log p(ids[t] | ids[..t])` for `t in start..ids.len()`.
#[derive(Debug, Clone, Copy)]
pub struct ScoreSpan<'a> {
    /// The token ids of the whole sequence.
    pub ids: &'a [u32],
    /// The first position whose log-probability is wanted (at least 1).
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
    /// vocabulary). Sequences may differ in length; they are right-padded into one batch, and each
    /// gets what it gets alone.
    pub fn token_logprobs(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let spans: Vec<ScoreSpan<'_>> = batch.iter().map(|ids| ScoreSpan::all(ids)).collect();
        self.score_spans(&spans)
    }

    /// Log-probabilities of the tokens `ids[start..]` of each span, in one padded forward pass. The
    /// vocabulary projection and log-softmax run only at the requested positions. When every span
    /// starts with the same tokens (at least [`MIN_SHARED_PREFIX`] before the first scored one), that
    /// prefix runs once and its keys/values serve all continuations. Each span gets what it gets
    /// scored alone, also with a length-dependent rope (dynamic, longrope), whose mixed-regime
    /// batches are scored one span at a time.
    pub fn score_spans(&self, batch: &[ScoreSpan<'_>]) -> Result<Vec<Vec<f32>>> {
        self.validate(batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Length-dependent rope (dynamic NTK, longrope) gives a forward the frequencies of the
        // longest position it reaches. transformers scores a sequence alone with its own; a batch
        // (or a shared prefix run on its own) whose lengths fall in another regime would not, so
        // such a batch is scored one sequence at a time.
        let longest = batch.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let rope = self.rope();
        if batch.len() > 1
            && !batch
                .iter()
                .all(|s| rope.same_frequencies(s.ids.len(), longest))
        {
            return batch
                .iter()
                .map(|span| {
                    Ok(self
                        .score_spans(std::slice::from_ref(span))?
                        .into_iter()
                        .next()
                        .unwrap_or_default())
                })
                .collect();
        }
        let prefix = shared_prefix(batch);
        if batch.len() > 1 && prefix >= MIN_SHARED_PREFIX && rope.same_frequencies(prefix, longest)
        {
            return self.score_continuations(batch, prefix);
        }
        let (hidden, rows, targets) = self.padded_states(batch);
        let flat = self.gather_logprobs(hidden, &rows, &targets)?;
        Ok(split(batch, &flat))
    }

    /// The shared prefix runs once; its keys/values then serve the continuations, which run in
    /// groups of similar length ([`length_groups`]) so that right-padding a short response to the
    /// longest of the batch does not cost a forward over padding.
    fn score_continuations(&self, batch: &[ScoreSpan<'_>], prefix: usize) -> Result<Vec<Vec<f32>>> {
        let device = self.device();
        let ids: Vec<i32> = batch[0].ids[..prefix].iter().map(|&id| id as i32).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, prefix]), &device);
        let mut prefix_cache = self.new_cache();
        self.forward_cached(ids, &mut prefix_cache)?;
        let lengths: Vec<usize> = batch.iter().map(|s| s.ids.len() - prefix).collect();
        let mut out = vec![Vec::new(); batch.len()];
        for group in length_groups(&lengths) {
            let spans: Vec<ScoreSpan<'_>> = group.iter().map(|&i| batch[i]).collect();
            let mut cache = prefix_cache.repeat_rows(spans.len());
            let (ids, rows, targets) = pad(&spans, prefix);
            let hidden = self.forward_cached(ids.to_tensor(&device), &mut cache)?;
            let flat = self.gather_logprobs(flatten(hidden), &rows, &targets)?;
            for (&i, lp) in group.iter().zip(split(&spans, &flat)) {
                out[i] = lp;
            }
        }
        Ok(out)
    }

    pub(crate) fn validate(&self, batch: &[ScoreSpan<'_>]) -> Result<()> {
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
        Ok(())
    }

    /// [`Self::score_spans`] without prefix sharing: one right-padded forward over whole sequences.
    /// The reference the shared path is checked against, and a baseline for benchmarks.
    pub fn score_spans_padded(&self, batch: &[ScoreSpan<'_>]) -> Result<Vec<Vec<f32>>> {
        self.validate(batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (hidden, rows, targets) = self.padded_states(batch);
        let flat = self.gather_logprobs(hidden, &rows, &targets)?;
        Ok(split(batch, &flat))
    }

    pub(crate) fn padded_states(
        &self,
        batch: &[ScoreSpan<'_>],
    ) -> (Tensor<B, 2>, Vec<i32>, Vec<i32>) {
        let (ids, rows, targets) = pad(batch, 0);
        let hidden = self.hidden_states(ids.to_tensor(&self.device()));
        (flatten(hidden), rows, targets)
    }

    /// `log p(target | row)` for each (hidden-state row, target token), projecting onto the
    /// vocabulary in chunks.
    fn gather_logprobs(
        &self,
        hidden: Tensor<B, 2>,
        rows: &[i32],
        targets: &[i32],
    ) -> Result<Vec<f32>> {
        let device = self.device();
        let chunk = (LOGIT_BUDGET / self.config().vocab_size).max(1);
        let mut flat = Vec::with_capacity(rows.len());
        for (rows, targets) in rows.chunks(chunk).zip(targets.chunks(chunk)) {
            let n = rows.len();
            let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows.to_vec(), [n]), &device);
            let logits = self.logits(hidden.clone().select(0, rows));
            flat.extend(self.pick_logprobs(logits, targets)?);
        }
        Ok(flat)
    }

    /// `log p(targets[i] | row i)` from vocabulary logits `[n, vocab]`: the one log-softmax every
    /// scoring path (and the ranked one) uses, so their numbers agree.
    pub(crate) fn pick_logprobs(&self, logits: Tensor<B, 2>, targets: &[i32]) -> Result<Vec<f32>> {
        if let Some(picked) = crate::kernels::log_softmax_gather(&logits, targets) {
            return Ok(picked);
        }
        let n = targets.len();
        let targets = Tensor::<B, 2, Int>::from_data(
            TensorData::new(targets.to_vec(), [n, 1]),
            &self.device(),
        );
        let logits = logits.cast(DType::F32);
        let max = logits.clone().max_dim(1);
        let log_sum = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
        let picked = logits.gather(1, targets) - log_sum;
        read_f32(picked)
    }
}

/// Shortest shared prefix worth running once for a whole batch: below it, the extra forward call
/// costs more than the positions it saves.
pub const MIN_SHARED_PREFIX: usize = 16;

/// Tokens every span starts with, short of each span's first scored position's context (the token
/// before `start` must be run with the continuation, whose hidden state predicts `ids[start]`).
fn shared_prefix(batch: &[ScoreSpan<'_>]) -> usize {
    let first = batch[0].ids;
    let mut len = batch.iter().map(|s| s.start - 1).min().unwrap_or(0);
    for span in &batch[1..] {
        len = len.min(
            first
                .iter()
                .zip(span.ids)
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    len
}

/// Padding a group of continuations may add, as a fraction of the longest: a response shorter than
/// `1 - GROUP_SLACK` of its group's longest starts a new group. Each group costs one more forward
/// call (and a copy of the prefix keys/values); padding costs its positions in every layer.
const GROUP_SLACK: f64 = 0.25;

/// Continuation indices in groups of similar length, longest first: a group's padded width is at
/// most `1 / (1 - GROUP_SLACK)` of any member's length.
fn length_groups(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut width = 0;
    for i in order {
        match groups.last_mut() {
            Some(g) if lengths[i] as f64 >= width as f64 * (1.0 - GROUP_SLACK) => g.push(i),
            _ => {
                width = lengths[i];
                groups.push(vec![i]);
            }
        }
    }
    // A group of few padded rows would take the CPU's few-rows product, whose f32 rounding
    // differs from the large-batch one: a sequence's bits would then depend on which other rows
    // share its batch (a sharded run would not reproduce a single one). Such groups join their
    // neighbours until every group is past that size.
    let mut merged: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for g in groups {
        current.extend(g);
        if current.len() * lengths[current[0]] > MIN_GROUP_ROWS {
            merged.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        match merged.last_mut() {
            Some(last) => last.extend(current),
            None => merged.push(current),
        }
    }
    merged
}

/// Padded rows a continuation group needs at least: more than the CPU's few-rows product takes
/// (`kernels::cpu::FEW_ROWS`).
const MIN_GROUP_ROWS: usize = 64;

struct Padded {
    ids: Vec<i32>,
    shape: [usize; 2],
}

impl Padded {
    fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(self.ids.clone(), self.shape), device)
    }
}

/// `ids[skip..]` of each span right-padded into one batch, with the hidden-state row that predicts
/// each scored token and that token.
fn pad(batch: &[ScoreSpan<'_>], skip: usize) -> (Padded, Vec<i32>, Vec<i32>) {
    let width = batch.iter().map(|s| s.ids.len() - skip).max().unwrap_or(0);
    let mut ids = vec![0i32; batch.len() * width];
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (b, span) in batch.iter().enumerate() {
        for (t, &id) in span.ids[skip..].iter().enumerate() {
            ids[b * width + t] = id as i32;
        }
        for t in span.start..span.ids.len() {
            rows.push((b * width + t - 1 - skip) as i32);
            targets.push(span.ids[t] as i32);
        }
    }
    let shape = [batch.len(), width];
    (Padded { ids, shape }, rows, targets)
}

/// Cuts the flat per-token results back into one vector per span.
fn split(batch: &[ScoreSpan<'_>], flat: &[f32]) -> Vec<Vec<f32>> {
    let mut offset = 0;
    batch
        .iter()
        .map(|span| {
            let n = span.ids.len() - span.start;
            offset += n;
            flat[offset - n..offset].to_vec()
        })
        .collect()
}

fn flatten<B: Backend>(hidden: Tensor<B, 3>) -> Tensor<B, 2> {
    let [b, s, h] = hidden.dims();
    hidden.reshape([b * s, h])
}

pub(crate) fn read_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    let data = t
        .try_into_data()
        .map_err(|e| ModelError::Backend(format!("{e:?}")))?;
    data.to_vec::<f32>()
        .map_err(|e| ModelError::Backend(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::length_groups;

    #[test]
    fn continuations_group_by_length_with_bounded_padding() {
        let lengths = [100, 800, 90, 620, 400, 610, 75];
        let groups = length_groups(&lengths);
        assert_eq!(groups, vec![vec![1, 3, 5], vec![4], vec![0, 2, 6]]);
        let mut seen: Vec<usize> = groups.concat();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        assert_eq!(length_groups(&[5, 5, 5]), vec![vec![0, 1, 2]]);
        // Groups of 64 padded rows or fewer join a neighbour.
        assert_eq!(length_groups(&[100, 30, 30]), vec![vec![0, 1, 2]]);
        assert_eq!(length_groups(&[60, 40, 40, 40]), vec![vec![0, 1, 2, 3]]);
        assert_eq!(length_groups(&[300, 100, 20]), vec![vec![0], vec![1, 2]]);
        assert!(length_groups(&[]).is_empty());
    }
}
