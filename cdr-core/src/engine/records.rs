//! The records runs write, one schema for every consumer (the CLI's files, the Python package's
//! dicts): scored pairwise rows, scored best-of-N rows, the eval report.

use cdr_data::{BestOfNRow, MultiRow, PairwiseRow, PreferencePair};
use serde::{Deserialize, Serialize};

use crate::best_of_n::{NoPair, PairStrategy, select_pair};
use crate::eval::{Accuracy, prefers_chosen};
use crate::rewardbench::RewardBenchScores;
use crate::rewardbench2::{self, RewardBench2Scores, ScoredCompletions, is_ties};
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
    )
    // TRL's RewardTrainer reads a `margin` column.
    .with_extra("margin", rewards[sel.chosen] - rewards[sel.rejected]);
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
    /// RewardBench 2's subset scores, for rows in its layout (lists of chosen and rejected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewardbench2: Option<RewardBench2Scores>,
}

/// The `model_type` cdr's RewardBench results files give: the strong model's log-probabilities
/// against a reference (the weak model) is the DPO implicit reward at beta = 1.
pub const RESULTS_MODEL_TYPE: &str = "DPO";

impl EvalReport {
    /// The report as a RewardBench results file (`results/eval-set/<model>.json`): `model`,
    /// `ref_model` (the weak model), `model_type`, `chat_template` and one number per subset in
    /// `[0, 1]` (RewardBench 2's subset scores for its layout, else pairwise accuracies). Nothing
    /// else: RewardBench's leaderboard code averages every other column. `model` and
    /// `ref_model` are [`results_name`]s.
    pub fn rewardbench_results(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        out.insert("model".into(), results_name(&self.strong).into());
        out.insert("ref_model".into(), results_name(&self.weak).into());
        out.insert("model_type".into(), RESULTS_MODEL_TYPE.into());
        out.insert("chat_template".into(), self.template.clone().into());
        match &self.rewardbench2 {
            Some(rb2) => {
                for s in &rb2.subsets {
                    out.insert(s.subset.clone(), s.score.into());
                }
            }
            None => {
                for (subset, t) in &self.results.by_subset {
                    out.insert(subset.clone(), t.accuracy().into());
                }
            }
        }
        out
    }
}

/// A model's name in RewardBench results: a hub id (`org/name`) as given, else the model's
/// directory name or GGUF file stem. Results files go to `<dir>/<name>.json`, as RewardBench
/// writes `results/eval-set/<org>/<name>.json`.
pub fn results_name(spec: &str) -> String {
    if std::path::Path::new(spec).exists() {
        super::search::model_name(spec)
    } else {
        spec.trim_matches('/').to_string()
    }
}

/// A scored RewardBench 2 row: every completion's reward, the chosen ones first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiScore {
    /// The row's id.
    pub id: String,
    /// The row's subset, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The routed domain when customizing, else the row's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// How many of `rewards`, from the front, are the chosen completions'.
    pub num_correct: usize,
    /// One reward per completion: the chosen ones, then the rejected ones.
    pub rewards: Vec<f64>,
    /// Best-of-N credit (`1 / #ties at the top` when the first chosen completion scores
    /// highest, else 0); `None` in the Ties subset, which is scored as a whole.
    pub credit: Option<f64>,
    /// Every chosen completion outscores every rejected one, strictly.
    pub correct: bool,
    /// Each completion's score and log-prob sums, in `rewards`' order.
    pub scores: Vec<ItemScore>,
}

impl MultiScore {
    /// A RewardBench 2 row's record from its completions' scores.
    pub fn new(r: &MultiRow, s: &[ItemScore], domain: Option<String>) -> Self {
        let rewards: Vec<f64> = s.iter().map(|x| x.reward).collect();
        let (chosen, rejected) = rewards.split_at(r.num_chosen.min(rewards.len()));
        let worst_chosen = chosen.iter().copied().fold(f64::INFINITY, f64::min);
        let best_rejected = rejected.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ties = r.row.subset.as_deref().is_some_and(is_ties);
        Self {
            id: r.row.id.clone(),
            subset: r.row.subset.clone(),
            domain,
            num_correct: r.num_chosen,
            credit: (!ties).then(|| rewardbench2::best_of_n_credit(&rewards)),
            correct: prefers_chosen(worst_chosen, best_rejected),
            rewards,
            scores: s.to_vec(),
        }
    }
}

/// Accuracy (every chosen beats every rejected), truncated responses and RewardBench 2's scores
/// of scored RewardBench 2 rows. Rows without a subset count as subset `all`.
pub fn tally_multi(
    scored: &[MultiScore],
) -> crate::error::Result<(Accuracy, usize, Option<RewardBench2Scores>)> {
    let mut accuracy = Accuracy::default();
    let mut truncated = 0;
    let mut rows = Vec::with_capacity(scored.len());
    for s in scored {
        let subset = s.subset.as_deref().unwrap_or("all");
        accuracy.add(Some(subset), s.domain.as_deref(), s.correct);
        truncated += s.scores.iter().filter(|x| x.truncated).count();
        rows.push(ScoredCompletions {
            id: &s.id,
            subset,
            num_correct: s.num_correct,
            rewards: &s.rewards,
        });
    }
    let rb2 = rewardbench2::rewardbench2_scores(&rows)?;
    Ok((accuracy, truncated, rb2))
}
