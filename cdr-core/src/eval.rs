//! Pairwise decisions and accuracy.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rewardbench::{RewardBenchScores, rewardbench_scores};

/// `r(chosen) > r(rejected)`, strictly: a tie counts as wrong.
pub fn prefers_chosen(chosen: f64, rejected: f64) -> bool {
    chosen > rejected
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub correct: usize,
    pub total: usize,
}

impl Tally {
    pub fn add(&mut self, correct: bool) {
        self.total += 1;
        self.correct += usize::from(correct);
    }

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
    pub overall: Tally,
    pub by_subset: BTreeMap<String, Tally>,
    pub by_domain: BTreeMap<String, Tally>,
}

impl Accuracy {
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
