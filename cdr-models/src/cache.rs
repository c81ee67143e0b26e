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
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    position: usize,
    windows: Vec<Option<usize>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for decoder layers with these attention windows (`None`: full attention).
    pub fn new(windows: Vec<Option<usize>>) -> Self {
        Self {
            layers: vec![None; windows.len()],
            position: 0,
            windows,
        }
    }

    /// Absolute position of the next token (the number of tokens run so far).
    pub fn position(&self) -> usize {
        self.position
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
        self.map_rows(|t| {
            let [b, s, h, d] = t.dims();
            t.unsqueeze_dim::<5>(1)
                .expand([b, n, s, h, d])
                .reshape([b * n, s, h, d])
        })
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
        Ok(self.map_rows(|t| {
            let idx = Tensor::<B, 1, Int>::from_data(
                TensorData::new(indices.clone(), [indices.len()]),
                &t.device(),
            );
            t.select(0, idx)
        }))
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
