//! Length-controlled preference pairs: chosen and rejected picked by `reward - alpha * length`,
//! with one `alpha` for the whole file, found by bisection so that the chosen responses are on
//! average as long as the rejected ones.
//!
//! Why a global `alpha`: a reward that grows with length turns best-vs-worst pairs into
//! long-vs-short pairs, and a policy trained on them learns verbosity. Penalizing length by the
//! same rate everywhere keeps the ranking within a row a reward ranking, only shifted.

use serde::Serialize;

/// One row's usable candidates (truncated samples already left out).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    /// The candidates' texts (identical texts give no pair).
    pub texts: Vec<String>,
    /// Their rewards.
    pub rewards: Vec<f64>,
    /// Their lengths (response tokens).
    pub lengths: Vec<f64>,
}

/// Indices of a row's chosen and rejected candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Highest `reward - alpha * length` (first on ties).
    pub chosen: usize,
    /// Lowest `reward - alpha * length` (first on ties).
    pub rejected: usize,
}

impl Candidates {
    /// `reward - alpha * length` of candidate `i`.
    pub fn penalized(&self, i: usize, alpha: f64) -> f64 {
        self.rewards[i] - alpha * self.lengths[i]
    }

    /// The pair at `alpha`; `None` with fewer than two candidates, all penalized rewards equal,
    /// or identical chosen and rejected texts.
    pub fn pick(&self, alpha: f64) -> Option<Pick> {
        let n = self
            .rewards
            .len()
            .min(self.lengths.len())
            .min(self.texts.len());
        if n < 2 {
            return None;
        }
        let p = |i: usize| self.penalized(i, alpha);
        let chosen = (0..n).fold(0, |b, i| if p(i) > p(b) { i } else { b });
        let rejected = (0..n).fold(0, |w, i| if p(i) < p(w) { i } else { w });
        (p(chosen) > p(rejected) && self.texts[chosen] != self.texts[rejected])
            .then_some(Pick { chosen, rejected })
    }
}

/// Mean chosen-minus-rejected length over the rows that give a pair at `alpha` (0 for none).
pub fn length_gap(rows: &[Candidates], alpha: f64) -> f64 {
    let (sum, n) = rows
        .iter()
        .filter_map(|r| {
            r.pick(alpha)
                .map(|p| r.lengths[p.chosen] - r.lengths[p.rejected])
        })
        .fold((0.0, 0usize), |(s, n), d| (s + d, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// What the search found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlphaSearch {
    /// The length penalty per token.
    pub alpha: f64,
    /// The mean chosen-minus-rejected length at `alpha = 0` (plain best vs worst).
    pub gap_before: f64,
    /// The same at `alpha`.
    pub gap_after: f64,
}

/// The `alpha` whose mean length gap is closest to 0. The gap falls as `alpha` grows (the
/// argmax of `r - alpha * L` can only move to shorter candidates, the argmin to longer ones),
/// so the sign change is bracketed by doubling and then bisected; the gap is a step function,
/// and of the bracket's two ends the one with the smaller gap is kept.
pub fn search_alpha(rows: &[Candidates]) -> AlphaSearch {
    let gap_before = length_gap(rows, 0.0);
    let done = |alpha, gap_after| AlphaSearch {
        alpha,
        gap_before,
        gap_after,
    };
    if gap_before == 0.0 || !gap_before.is_finite() {
        return done(0.0, gap_before);
    }
    // Longer chosen responses need a positive penalty, shorter ones a bonus.
    let sign = gap_before.signum();
    let crossed = |gap: f64| gap * sign <= 0.0;
    let (mut lo, mut hi) = (0.0, 1e-9);
    let mut hi_gap = length_gap(rows, sign * hi);
    let mut doublings = 0;
    while !crossed(hi_gap) {
        if doublings == 2000 {
            // Every candidate the same length: no penalty changes anything.
            return done(0.0, gap_before);
        }
        lo = hi;
        hi *= 2.0;
        hi_gap = length_gap(rows, sign * hi);
        doublings += 1;
    }
    let mut lo_gap = length_gap(rows, sign * lo);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        let gap = length_gap(rows, sign * mid);
        if crossed(gap) {
            (hi, hi_gap) = (mid, gap);
        } else {
            (lo, lo_gap) = (mid, gap);
        }
    }
    if hi_gap.abs() <= lo_gap.abs() {
        done(sign * hi, hi_gap)
    } else {
        done(sign * lo, lo_gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A best-of-8 set whose rewards favour length: reward = 0.05 * length + noise in [-3, 3],
    /// lengths uniform in [20, 400), drawn from a fixed linear congruential generator.
    fn length_biased_set(rows: usize) -> Vec<Candidates> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..rows)
            .map(|r| {
                let lengths: Vec<f64> = (0..8).map(|_| (20.0 + 380.0 * next()).floor()).collect();
                let rewards = lengths
                    .iter()
                    .map(|l| 0.05 * l + 6.0 * next() - 3.0)
                    .collect();
                let texts = (0..8).map(|i| format!("row {r} response {i}")).collect();
                Candidates {
                    texts,
                    rewards,
                    lengths,
                }
            })
            .collect()
    }

    #[test]
    fn the_gap_closes_to_within_five_percent_of_the_mean_length() {
        let rows = length_biased_set(400);
        let mean_length =
            rows.iter().flat_map(|r| r.lengths.iter()).sum::<f64>() / (rows.len() * 8) as f64;
        let s = search_alpha(&rows);
        eprintln!("{s:?}, mean length {mean_length}");
        assert!(
            s.gap_before > 0.5 * mean_length,
            "{s:?}, mean {mean_length}"
        );
        assert!(s.alpha > 0.0);
        assert!(
            s.gap_after.abs() <= 0.05 * mean_length,
            "{s:?}, mean {mean_length}"
        );
        assert_eq!(s.gap_after, length_gap(&rows, s.alpha));
        let pairs = rows.iter().filter(|r| r.pick(s.alpha).is_some()).count();
        assert_eq!(pairs, rows.len());
    }

    #[test]
    fn rewards_favouring_brevity_get_a_negative_alpha() {
        let rows: Vec<Candidates> = length_biased_set(200)
            .into_iter()
            .map(|mut r| {
                r.rewards.iter_mut().for_each(|x| *x = -*x);
                r
            })
            .collect();
        let s = search_alpha(&rows);
        assert!(s.gap_before < 0.0 && s.alpha < 0.0, "{s:?}");
        assert!(s.gap_after.abs() < s.gap_before.abs());
    }

    #[test]
    fn the_gap_never_rises_with_alpha() {
        let rows = length_biased_set(50);
        let gaps: Vec<f64> = (0..60)
            .map(|i| length_gap(&rows, 0.005 * i as f64))
            .collect();
        assert!(gaps.windows(2).all(|w| w[1] <= w[0] + 1e-9), "{gaps:?}");
    }

    #[test]
    fn equal_lengths_and_too_few_candidates() {
        let same = Candidates {
            texts: vec!["a".into(), "b".into()],
            rewards: vec![1.0, 0.0],
            lengths: vec![5.0, 5.0],
        };
        let s = search_alpha(std::slice::from_ref(&same));
        assert_eq!((s.alpha, s.gap_before, s.gap_after), (0.0, 0.0, 0.0));
        let one = Candidates {
            texts: vec!["a".into()],
            rewards: vec![1.0],
            lengths: vec![5.0],
        };
        assert_eq!(one.pick(0.0), None);
    }
}
