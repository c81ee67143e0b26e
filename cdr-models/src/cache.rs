//! Key/value cache: the keys and values of positions already run, per layer, so that new tokens
//! (decoding) or several continuations of one shared prefix (scoring N responses to one prompt) cost
//! only their own positions.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::error::{ModelError, Result};

/// Keys and values `[batch, kept, kv_heads, head_dim]` per layer, and the absolute position of the
/// next token.
///
/// A sliding-window layer keeps only the last `window` positions: no later query can see further
/// back, and attention masks by relative position, so dropping older keys changes nothing.
///
/// Rows of different lengths ([`Self::concat`] of caches prefilled apart) are left-padded: row `r`
/// starts `pad[r]` columns late, its padding columns hold zeros that attention never sees, and its
/// next token sits at position `position - pad[r]`. Sliding-window layers drop leading columns
/// (`trimmed` per layer) and the padding with them.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    position: usize,
    windows: Vec<Option<usize>>,
    /// Leading padding columns per row; empty when no row is padded.
    pad: Vec<usize>,
    /// Columns each layer has dropped from the front (sliding windows).
    trimmed: Vec<usize>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for decoder layers with these attention windows (`None`: full attention).
    pub fn new(windows: Vec<Option<usize>>) -> Self {
        Self {
            layers: vec![None; windows.len()],
            position: 0,
            trimmed: vec![0; windows.len()],
            windows,
            pad: Vec::new(),
        }
    }

    /// Absolute position of the next token (the number of tokens run so far); for left-padded
    /// rows, of the longest row ([`Self::row_positions`] has each row's).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Each row's next position when rows are left-padded to different lengths, else `None`.
    pub fn row_positions(&self) -> Option<Vec<usize>> {
        (!self.pad.is_empty()).then(|| {
            self.pad
                .iter()
                .map(|&p| self.position.saturating_sub(p))
                .collect()
        })
    }

    /// Leading padding columns per row among the keys `layer` holds, or `None` when there are
    /// none (what attention must mask besides causality and the window).
    pub fn layer_pad(&self, layer: usize) -> Option<Vec<usize>> {
        let trimmed = self.trimmed.get(layer).copied().unwrap_or(0);
        let pad: Vec<usize> = self
            .pad
            .iter()
            .map(|&p| p.saturating_sub(trimmed))
            .collect();
        pad.iter().any(|&p| p > 0).then_some(pad)
    }

    /// Caches of single prompts (each possibly repeated into several rows, none padded) as one
    /// batch, rows in order, shorter ones left-padded, so their continuations decode together.
    pub fn concat(caches: Vec<Self>) -> Result<Self> {
        let Some(first) = caches.first() else {
            return Err(ModelError::Input("no caches to join".into()));
        };
        let windows = first.windows.clone();
        if let Some(bad) = caches
            .iter()
            .position(|c| c.windows != windows || !c.pad.is_empty() || c.batch().is_none())
        {
            return Err(ModelError::Input(format!(
                "cache {bad} cannot be joined: it is empty, padded, or of another model"
            )));
        }
        let position = caches.iter().map(|c| c.position).max().unwrap_or(0);
        let mut pad = Vec::new();
        for c in &caches {
            pad.extend(std::iter::repeat_n(
                position - c.position,
                c.batch().unwrap_or(0),
            ));
        }
        if pad.iter().all(|&p| p == 0) {
            pad.clear();
        }
        let mut layers = Vec::with_capacity(windows.len());
        let mut trimmed = Vec::with_capacity(windows.len());
        for layer in 0..windows.len() {
            let parts: Vec<&(Tensor<B, 4>, Tensor<B, 4>)> = caches
                .iter()
                .filter_map(|c| c.layers[layer].as_ref())
                .collect();
            if parts.len() != caches.len() {
                return Err(ModelError::Input(format!(
                    "layer {layer} is missing from a cache to join"
                )));
            }
            let stored = parts.iter().map(|(k, _)| k.dims()[1]).max().unwrap_or(0);
            let left = |t: &Tensor<B, 4>| {
                let [b, s, h, d] = t.dims();
                if s == stored {
                    t.clone()
                } else {
                    let zeros =
                        Tensor::<B, 4>::zeros([b, stored - s, h, d], &t.device()).cast(t.dtype());
                    Tensor::cat(vec![zeros, t.clone()], 1)
                }
            };
            let k = Tensor::cat(parts.iter().map(|(k, _)| left(k)).collect(), 0);
            let v = Tensor::cat(parts.iter().map(|(_, v)| left(v)).collect(), 0);
            layers.push(Some((k, v)));
            trimmed.push(position - stored);
        }
        Ok(Self {
            layers,
            position,
            windows,
            pad,
            trimmed,
        })
    }

    /// Rows held, or `None` before the first forward.
    pub fn batch(&self) -> Option<usize> {
        self.layers
            .iter()
            .flatten()
            .next()
            .map(|(k, _)| k.dims()[0])
    }

    /// Positions stored per row, layer by layer (0 before the first forward).
    pub fn stored_by_layer(&self) -> Vec<usize> {
        self.layers
            .iter()
            .map(|kv| kv.as_ref().map_or(0, |(k, _)| k.dims()[1]))
            .collect()
    }

    /// Most positions stored per row by any layer (at most the window for sliding-window layers).
    pub fn stored(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, _)| k.dims()[1])
            .max()
            .unwrap_or(0)
    }

    /// Each row repeated `n` times in place (`[a, b]` → `[a, a, b, b]` for `n = 2`): a prompt
    /// prefilled once serves `n` samples or `n` scored responses.
    pub fn repeat_rows(&self, n: usize) -> Self {
        let mut out = self.map_rows(|t| {
            let [b, s, h, d] = t.dims();
            t.unsqueeze_dim::<5>(1)
                .expand([b, n, s, h, d])
                .reshape([b * n, s, h, d])
        });
        out.pad = self
            .pad
            .iter()
            .flat_map(|&p| std::iter::repeat_n(p, n))
            .collect();
        out
    }

    /// Only the given rows, in the given order (finished sequences leave a decoding batch).
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(batch) = self.batch()
            && let Some(&bad) = rows.iter().find(|&&r| r >= batch)
        {
            return Err(ModelError::Input(format!(
                "cache row {bad} does not exist (the cache holds {batch} rows)"
            )));
        }
        let indices: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let mut out = self.map_rows(|t| {
            let idx = Tensor::<B, 1, Int>::from_data(
                TensorData::new(indices.clone(), [indices.len()]),
                &t.device(),
            );
            t.select(0, idx)
        });
        if !self.pad.is_empty() {
            out.pad = rows
                .iter()
                .map(|&r| self.pad.get(r).copied().unwrap_or(0))
                .collect();
        }
        Ok(out)
    }

    fn map_rows(&self, f: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>) -> Self {
        Self {
            layers: self
                .layers
                .iter()
                .map(|kv| kv.clone().map(|(k, v)| (f(k), f(v))))
                .collect(),
            position: self.position,
            windows: self.windows.clone(),
            pad: self.pad.clone(),
            trimmed: self.trimmed.clone(),
        }
    }

    /// Appends a layer's new keys/values and returns all of them (what this step's queries attend
    /// to); stores only what later steps can still see.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.layers[layer].take() {
            Some((old_k, old_v)) => (
                Tensor::cat(vec![old_k, k], 1),
                Tensor::cat(vec![old_v, v], 1),
            ),
            None => (k, v),
        };
        let len = k.dims()[1];
        let window = self.windows.get(layer).copied().flatten();
        let keep = window.map_or(len, |w| w.max(1).min(len));
        if let Some(t) = self.trimmed.get_mut(layer) {
            *t += len - keep;
        }
        self.layers[layer] = Some((
            k.clone().narrow(1, len - keep, keep),
            v.clone().narrow(1, len - keep, keep),
        ));
        (k, v)
    }

    pub(crate) fn advance(&mut self, tokens: usize) {
        self.position += tokens;
    }

    /// Checks that `batch` new rows can follow this cache.
    pub(crate) fn check_batch(&self, batch: usize) -> Result<()> {
        match self.batch() {
            Some(rows) if rows != batch => Err(ModelError::Input(format!(
                "{batch} sequences given for a cache of {rows} rows"
            ))),
            _ => Ok(()),
        }
    }
}
