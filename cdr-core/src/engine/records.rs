//! The records runs write, one schema for every consumer (the CLI's files, the Python package's
//! dicts): scored pairwise rows, scored best-of-N rows, the eval report.

use cdr_data::{BestOfNRow, PairwiseRow, PreferencePair};
use serde::{Deserialize, Serialize};

use crate::best_of_n::{NoPair, PairStrategy, select_pair};
use crate::eval::{Accuracy, prefers_chosen};
use crate::rewardbench::RewardBenchScores;
use crate::scorer::ItemScore;

/// A scored pairwise row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairScore {
    /// The row's id.
    pub id: String,
    /// The row's subset, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The routed domain when customizing, else the row's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The reward of the chosen response.
    pub reward_chosen: f64,
    /// The reward of the rejected response.
    pub reward_rejected: f64,
    /// `reward_chosen - reward_rejected`.
    pub margin: f64,
    /// `reward_chosen > reward_rejected`, strictly.
    pub correct: bool,
    /// The chosen response's score and log-prob sums.
    pub chosen: ItemScore,
    /// The rejected response's score and log-prob sums.
    pub rejected: ItemScore,
}

impl PairScore {
    /// A pairwise row's record from its `[chosen, rejected]` scores.
    pub fn new(r: &PairwiseRow, s: &[ItemScore], domain: Option<String>) -> Self {
        let (chosen, rejected) = (s[0], s[1]);
        Self {
            id: r.id.clone(),
            subset: r.subset.clone(),
            domain,
            reward_chosen: chosen.reward,
            reward_rejected: rejected.reward,
            margin: chosen.reward - rejected.reward,
            correct: prefers_chosen(chosen.reward, rejected.reward),
            chosen,
            rejected,
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
    /// The row's id.
    pub id: String,
    /// The row's subset, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The routed domain when customizing, else the row's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// One reward per response, in input order.
    pub rewards: Vec<f64>,
    /// Each response's score and log-prob sums, in input order.
    pub scores: Vec<ItemScore>,
}

impl ResponsesScore {
    /// A best-of-N row's record from its responses' scores.
    pub fn new(r: &BestOfNRow, s: &[ItemScore], domain: Option<String>) -> Self {
        Self {
            id: r.id.clone(),
            subset: r.subset.clone(),
            domain,
            rewards: s.iter().map(|x| x.reward).collect(),
            scores: s.to_vec(),
        }
    }
}

/// The preference pair `strategy` picks from a scored best-of-N row (in the TRL layout, with
/// `subset` and `domain` carried over), or why the row gives none.
pub fn preference_pair(
    r: &BestOfNRow,
    s: &[ItemScore],
    domain: Option<&str>,
    strategy: PairStrategy,
) -> Result<PreferencePair, NoPair> {
    let rewards: Vec<f64> = s.iter().map(|x| x.reward).collect();
    let texts: Vec<&str> = r.responses.iter().map(String::as_str).collect();
    let sel = select_pair(&r.id, &texts, &rewards, strategy)?;
    let mut pair = PreferencePair::new(
        &r.id,
        r.prompt.clone(),
        &r.responses[sel.chosen],
        &r.responses[sel.rejected],
        rewards[sel.chosen],
        rewards[sel.rejected],
    );
    if let Some(subset) = &r.subset {
        pair = pair.with_extra("subset", subset.as_str());
    }
    if let Some(domain) = domain {
        pair = pair.with_extra("domain", domain);
    }
    Ok(pair)
}

/// An eval's result: accuracies overall, per subset and per domain, and RewardBench's section
/// scores when the subsets are RewardBench's.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The rows' origin (a file path).
    pub input: String,
    /// The strong model as given.
    pub strong: String,
    /// The weak model as given.
    pub weak: String,
    /// The chat template's name.
    pub template: String,
    /// `sum` or `mean`.
    pub reduction: String,
    /// Rows evaluated.
    pub rows: usize,
    /// Overall accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// Responses cut to the token limits.
    pub truncated_responses: usize,
    /// Rows left out (while reading and while scoring).
    pub skipped_rows: usize,
    /// Accuracy overall, per subset and per domain.
    pub results: Accuracy,
    /// RewardBench's section scores, when the subsets are RewardBench's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewardbench: Option<RewardBenchScores>,
}
