//! What `cdr score` and `cdr eval` write per row.

use cdr_core::ItemScore;
use cdr_core::eval::{Accuracy, prefers_chosen};
use cdr_data::PairwiseRow;
use serde::{Deserialize, Serialize};

/// A scored pairwise row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairScore {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub reward_chosen: f64,
    pub reward_rejected: f64,
    /// `reward_chosen - reward_rejected`.
    pub margin: f64,
    /// `reward_chosen > reward_rejected`, strictly.
    pub correct: bool,
    pub chosen: ItemScore,
    pub rejected: ItemScore,
}

impl PairScore {
    /// A pairwise row's record from its `[chosen, rejected]` scores.
    pub fn new(r: &PairwiseRow, s: &[ItemScore], domain: Option<String>) -> Self {
        Self {
            id: r.id.clone(),
            subset: r.subset.clone(),
            domain,
            reward_chosen: s[0].reward,
            reward_rejected: s[1].reward,
            margin: s[0].reward - s[1].reward,
            correct: prefers_chosen(s[0].reward, s[1].reward),
            chosen: s[0],
            rejected: s[1],
        }
    }
}

/// Accuracy (overall, per subset, per domain) of scored rows, and how many responses were cut.
pub fn tally(scored: &[PairScore]) -> (Accuracy, usize) {
    let mut accuracy = Accuracy::default();
    let mut truncated = 0;
    for s in scored {
        accuracy.add(s.subset.as_deref(), s.domain.as_deref(), s.correct);
        truncated += usize::from(s.chosen.truncated) + usize::from(s.rejected.truncated);
    }
    (accuracy, truncated)
}

/// A scored best-of-N (or single-response) row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponsesScore {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// One reward per response, in input order.
    pub rewards: Vec<f64>,
    pub scores: Vec<ItemScore>,
}
