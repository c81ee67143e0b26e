//! Best-of-N preference pairs from scored candidates.

use cdr_prompt::draw;
use serde::{Deserialize, Serialize};

/// Which rejected response goes with the best one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairStrategy {
    /// The lowest-reward response (the paper's setting).
    BestWorst,
    /// A uniformly drawn response among those scoring below the best, from `seed` and the row id.
    BestRandom {
        /// Seeds the draw (with the row id).
        seed: u64,
    },
}

/// Why no pair came out of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoPair {
    /// Fewer than two responses.
    TooFew,
    /// Every response has the same reward.
    AllTied,
    /// The chosen and rejected texts are identical.
    IdenticalTexts,
}

/// Indices of the chosen and rejected response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// Index of the chosen (best) response.
    pub chosen: usize,
    /// Index of the rejected response.
    pub rejected: usize,
}

/// Picks the best response (first on ties) and a rejected one by `strategy`.
pub fn select_pair(
    id: &str,
    responses: &[&str],
    rewards: &[f64],
    strategy: PairStrategy,
) -> Result<Selection, NoPair> {
    if rewards.len() < 2 || responses.len() != rewards.len() {
        return Err(NoPair::TooFew);
    }
    let argbest = (0..rewards.len()).fold(0, |b, i| if rewards[i] > rewards[b] { i } else { b });
    let argworst = (0..rewards.len()).fold(0, |w, i| if rewards[i] < rewards[w] { i } else { w });
    if rewards[argbest] <= rewards[argworst] {
        return Err(NoPair::AllTied);
    }
    let rejected = match strategy {
        PairStrategy::BestWorst => argworst,
        PairStrategy::BestRandom { seed } => {
            let below: Vec<usize> = (0..rewards.len())
                .filter(|&i| rewards[i] < rewards[argbest])
                .collect();
            below[(draw(seed, id) % below.len() as u64) as usize]
        }
    };
    if responses[argbest] == responses[rejected] {
        return Err(NoPair::IdenticalTexts);
    }
    Ok(Selection {
        chosen: argbest,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_vs_worst() {
        let s = select_pair(
            "r",
            &["a", "b", "c"],
            &[0.5, 2.0, -1.0],
            PairStrategy::BestWorst,
        );
        assert_eq!(
            s,
            Ok(Selection {
                chosen: 1,
                rejected: 2
            })
        );
    }

    #[test]
    fn ties_and_identical_texts_are_dropped() {
        assert_eq!(
            select_pair("r", &["a", "b"], &[1.0, 1.0], PairStrategy::BestWorst),
            Err(NoPair::AllTied)
        );
        assert_eq!(
            select_pair("r", &["same", "same"], &[2.0, 1.0], PairStrategy::BestWorst),
            Err(NoPair::IdenticalTexts)
        );
        assert_eq!(
            select_pair("r", &["a"], &[1.0], PairStrategy::BestWorst),
            Err(NoPair::TooFew)
        );
    }

    #[test]
    fn random_non_best_is_seeded_and_never_the_best() {
        let responses = ["a", "b", "c", "d", "e"];
        let rewards = [0.1, 3.0, 0.2, 0.3, 3.0];
        let mut seen = std::collections::HashSet::new();
        for id in 0..200 {
            let id = format!("row-{id}");
            let s = select_pair(
                &id,
                &responses,
                &rewards,
                PairStrategy::BestRandom { seed: 7 },
            )
            .unwrap();
            let again = select_pair(
                &id,
                &responses,
                &rewards,
                PairStrategy::BestRandom { seed: 7 },
            )
            .unwrap();
            assert_eq!(s, again);
            assert_eq!(s.chosen, 1);
            assert!(rewards[s.rejected] < 3.0);
            seen.insert(s.rejected);
        }
        assert_eq!(seen.len(), 3, "all non-best responses get drawn");
    }
}
