//! Pairwise decisions and accuracy.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rewardbench::{RewardBenchScores, rewardbench_scores};

/// `r(chosen) > r(rejected)`, strictly: a tie counts as wrong.
pub fn prefers_chosen(chosen: f64, rejected: f64) -> bool {
    chosen > rejected
}

/// Correct decisions out of a total.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Rows where the chosen response got the higher reward.
    pub correct: usize,
    /// Rows counted.
    pub total: usize,
}

impl Tally {
    /// Counts one row.
    pub fn add(&mut self, correct: bool) {
        self.total += 1;
        self.correct += usize::from(correct);
    }

    /// `correct / total` (0 for no rows).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Accuracy overall and per group (subset, domain).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accuracy {
    /// Every row.
    pub overall: Tally,
    /// Rows by `subset`.
    pub by_subset: BTreeMap<String, Tally>,
    /// Rows by domain.
    pub by_domain: BTreeMap<String, Tally>,
}

impl Accuracy {
    /// Counts one row under its subset and domain.
    pub fn add(&mut self, subset: Option<&str>, domain: Option<&str>, correct: bool) {
        self.overall.add(correct);
        if let Some(s) = subset {
            self.by_subset
                .entry(s.to_string())
                .or_default()
                .add(correct);
        }
        if let Some(d) = domain {
            self.by_domain
                .entry(d.to_string())
                .or_default()
                .add(correct);
        }
    }

    /// RewardBench section scores, when some subsets are RewardBench's.
    pub fn rewardbench(&self) -> Option<RewardBenchScores> {
        let acc: BTreeMap<String, f64> = self
            .by_subset
            .iter()
            .map(|(k, t)| (k.clone(), t.accuracy()))
            .collect();
        rewardbench_scores(&acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_wrong_and_groups_add_up() {
        assert!(!prefers_chosen(1.0, 1.0));
        let mut acc = Accuracy::default();
        acc.add(Some("a"), None, true);
        acc.add(Some("a"), Some("CHAT"), false);
        acc.add(Some("b"), Some("CHAT"), true);
        assert_eq!(acc.overall.accuracy(), 2.0 / 3.0);
        assert_eq!(acc.by_subset["a"].accuracy(), 0.5);
        assert_eq!(acc.by_domain["CHAT"].total, 2);
    }
}
