//! Picking the next token from a row of logits: greedy, or a seeded draw after temperature,
//! top-k and top-p (nucleus) filtering, in the order transformers applies them.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// How the next token is chosen.
///
/// `temperature == 0` is greedy decoding (the most likely token, the lowest id on ties, as
/// `torch.argmax`); otherwise the logits are divided by `temperature`, only the `top_k` most likely
/// tokens are kept (`0`: all; ties with the k-th are kept too), then only the smallest set of most
/// likely tokens whose probabilities add up to at least `top_p` (`1.0`: all), and a token is drawn
/// from what is left, renormalized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Divides the logits; 0 is greedy decoding.
    pub temperature: f32,
    /// Draw from the `top_k` most likely tokens only (0: all).
    pub top_k: usize,
    /// Draw from the smallest set of tokens holding this much probability (1: all).
    pub top_p: f32,
}

impl Default for Sampling {
    fn default() -> Self {
        Self::greedy()
    }
}

impl Sampling {
    /// Always the most likely token.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }

    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(ModelError::Input(format!(
                "temperature must be a finite number >= 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::Input(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        Ok(())
    }

    /// Whether this draws the most likely token (temperature 0).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// A seeded source of draws for one sampled sequence. ChaCha8 is specified bit for bit, so a seed
/// gives the same stream on every platform and version of this crate.
#[derive(Debug, Clone)]
pub struct SampleRng(ChaCha8Rng);

impl SampleRng {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A uniform draw in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The next token for one row of logits.
///
/// Fails on a non-finite logit (NaN or +inf): a broken forward pass must not pass for a sample.
pub fn next_token(logits: &[f32], sampling: &Sampling, rng: &mut SampleRng) -> Result<u32> {
    if logits.is_empty() {
        return Err(ModelError::Input("empty logits row".into()));
    }
    if let Some(bad) = logits.iter().find(|x| x.is_nan() || **x == f32::INFINITY) {
        return Err(ModelError::Backend(format!(
            "the model produced a non-finite logit ({bad}) while decoding"
        )));
    }
    if sampling.is_greedy() {
        return Ok(argmax(logits) as u32);
    }
    let candidates = candidates(logits, sampling);
    let u = rng.uniform();
    Ok(draw_from(&candidates, u))
}

/// Index of the largest value, the first one on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// The tokens a draw can pick, with their renormalized probabilities (f64, summing to 1), most
/// likely first when filtered.
pub fn candidates(logits: &[f32], sampling: &Sampling) -> Vec<(u32, f64)> {
    let t = f64::from(sampling.temperature);
    let mut kept: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite())
        .map(|(i, &x)| (i as u32, f64::from(x) / t))
        .collect();
    let filter_k = sampling.top_k > 0 && sampling.top_k < kept.len();
    let filter_p = sampling.top_p < 1.0;
    if filter_k {
        // Everything at least as large as the k-th largest stays (transformers keeps ties).
        let k = sampling.top_k;
        let mut scaled: Vec<f64> = kept.iter().map(|&(_, x)| x).collect();
        let (_, kth, _) = scaled.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = *kth;
        kept.retain(|&(_, x)| x >= kth);
    }
    if filter_p {
        kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    softmax_in_place(&mut kept);
    if filter_p {
        let p = f64::from(sampling.top_p);
        let mut mass = 0.0;
        let mut keep = 0;
        for &(_, prob) in &kept {
            if keep > 0 && mass >= p {
                break;
            }
            mass += prob;
            keep += 1;
        }
        kept.truncate(keep);
        softmax_renormalize(&mut kept);
    }
    kept
}

/// Turns logits into probabilities.
fn softmax_in_place(items: &mut [(u32, f64)]) {
    let max = items
        .iter()
        .map(|&(_, x)| x)
        .fold(f64::NEG_INFINITY, f64::max);
    for item in items.iter_mut() {
        item.1 = (item.1 - max).exp();
    }
    softmax_renormalize(items);
}

/// Rescales probabilities to sum to 1.
fn softmax_renormalize(items: &mut [(u32, f64)]) {
    let total: f64 = items.iter().map(|&(_, p)| p).sum();
    for item in items.iter_mut() {
        item.1 /= total;
    }
}

/// The candidate whose cumulative-probability interval holds `u` (in `[0, 1)`).
fn draw_from(candidates: &[(u32, f64)], u: f64) -> u32 {
    let mut cumulative = 0.0;
    for &(id, p) in candidates {
        cumulative += p;
        if u < cumulative {
            return id;
        }
    }
    // Rounding can leave the total a hair under 1: the last candidate takes the remainder.
    candidates.last().map_or(0, |&(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, 3.0, -1.0, 0.5]
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut rng = SampleRng::new(0);
        let id = next_token(&logits(), &Sampling::greedy(), &mut rng).unwrap();
        assert_eq!(id, 1);
    }

    #[test]
    fn top_k_keeps_ties_with_the_kth() {
        let s = Sampling {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
        };
        let mut ids: Vec<u32> = candidates(&logits(), &s).iter().map(|c| c.0).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 3]);
        let s = Sampling { top_k: 3, ..s };
        let mut ids: Vec<u32> = candidates(&logits(), &s).iter().map(|c| c.0).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Probabilities 0.5, 0.3, 0.2 (logits are their logs).
        let logits = [0.2f32.ln(), 0.5f32.ln(), 0.3f32.ln()];
        let at = |p: f32| -> Vec<u32> {
            let s = Sampling {
                temperature: 1.0,
                top_k: 0,
                top_p: p,
            };
            candidates(&logits, &s).iter().map(|c| c.0).collect()
        };
        assert_eq!(at(0.4), vec![1]);
        assert_eq!(at(0.5), vec![1]);
        assert_eq!(at(0.7), vec![1, 2]);
        assert_eq!(at(0.81), vec![1, 2, 0]);
        let probs: Vec<f64> = candidates(
            &logits,
            &Sampling {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.7,
            },
        )
        .iter()
        .map(|c| c.1)
        .collect();
        assert!((probs[0] - 0.625).abs() < 1e-6 && (probs[1] - 0.375).abs() < 1e-6);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [0.0f32, 1.0];
        let p1 = |t: f32| {
            let s = Sampling {
                temperature: t,
                top_k: 0,
                top_p: 1.0,
            };
            candidates(&logits, &s).iter().find(|c| c.0 == 1).unwrap().1
        };
        assert!(p1(0.5) > p1(1.0) && p1(1.0) > p1(2.0));
        assert!((p1(1.0) - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-9);
    }

    #[test]
    fn draws_follow_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // 1:3
        let s = Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        };
        let mut rng = SampleRng::new(42);
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| next_token(&logits, &s, &mut rng).unwrap() == 1)
            .count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.015, "{frac}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut rng = SampleRng::new(0);
        assert!(next_token(&[], &Sampling::greedy(), &mut rng).is_err());
        assert!(next_token(&[1.0, f32::NAN], &Sampling::greedy(), &mut rng).is_err());
        for bad in [
            Sampling {
                temperature: -1.0,
                ..Sampling::greedy()
            },
            Sampling {
                top_p: 0.0,
                ..Sampling::greedy()
            },
            Sampling {
                top_p: 1.5,
                ..Sampling::greedy()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
