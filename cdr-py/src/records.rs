//! What the Python calls return per row, in the layouts `cdr score`, `cdr eval` and
//! `cdr annotate` write.
//!
//! TODO(engine): these records, the tally and the pair selection live in cdr-cli today
//! (records.rs, commands.rs); use cdr_core's engine and records once they move there.

use std::collections::BTreeMap;

use cdr_core::ItemScore;
use cdr_core::best_of_n::{NoPair, PairStrategy, select_pair};
use cdr_core::eval::{Accuracy, prefers_chosen};
use cdr_core::rewardbench::RewardBenchScores;
use cdr_data::{PreferencePair, Row};
use serde::Serialize;

/// A scored pairwise row: `cdr score`'s / `cdr eval`'s record. TODO(engine)
#[derive(Debug, Clone, Serialize)]
pub struct PairScore {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub reward_chosen: f64,
    pub reward_rejected: f64,
    pub margin: f64,
    pub correct: bool,
    pub chosen: ItemScore,
    pub rejected: ItemScore,
}

/// A scored best-of-N (or single-response) row: `cdr score`'s record. TODO(engine)
#[derive(Debug, Clone, Serialize)]
pub struct ResponsesScore {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub rewards: Vec<f64>,
    pub scores: Vec<ItemScore>,
}

/// One of the two records, as `cdr score` writes a row of either shape.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ScoreRecord {
    Pair(PairScore),
    Responses(ResponsesScore),
}

/// `row`'s record from its responses' scores (chosen then rejected for a pairwise row).
pub fn score_record(row: &Row, scores: &[ItemScore], domain: Option<String>) -> ScoreRecord {
    match (row, scores) {
        (Row::Pairwise(p), [chosen, rejected]) => ScoreRecord::Pair(PairScore {
            id: p.id.clone(),
            subset: p.subset.clone(),
            domain,
            reward_chosen: chosen.reward,
            reward_rejected: rejected.reward,
            margin: chosen.reward - rejected.reward,
            correct: prefers_chosen(chosen.reward, rejected.reward),
            chosen: *chosen,
            rejected: *rejected,
        }),
        _ => ScoreRecord::Responses(ResponsesScore {
            id: row.id().to_string(),
            subset: row.subset().map(str::to_string),
            domain,
            rewards: scores.iter().map(|s| s.reward).collect(),
            scores: scores.to_vec(),
        }),
    }
}

/// `cdr eval`'s summary (its report JSON, less the input path). TODO(engine)
#[derive(Debug, Serialize)]
pub struct EvalSummary {
    pub strong: String,
    pub weak: String,
    pub template: String,
    pub reduction: String,
    pub rows: usize,
    pub accuracy: f64,
    pub truncated_responses: usize,
    pub skipped_rows: usize,
    pub results: Accuracy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewardbench: Option<RewardBenchScores>,
    /// The per-row records `cdr eval --output` writes.
    pub records: Vec<PairScore>,
}

/// Accuracy overall, per subset and per domain, and how many responses were cut. TODO(engine)
pub fn tally(scored: &[PairScore]) -> (Accuracy, usize) {
    let mut accuracy = Accuracy::default();
    let mut truncated = 0;
    for s in scored {
        accuracy.add(s.subset.as_deref(), s.domain.as_deref(), s.correct);
        truncated += usize::from(s.chosen.truncated) + usize::from(s.rejected.truncated);
    }
    (accuracy, truncated)
}

/// Parses `best-worst` / `best-random`.
pub fn strategy(name: &str, seed: u64) -> Option<PairStrategy> {
    match name {
        "best-worst" => Some(PairStrategy::BestWorst),
        "best-random" => Some(PairStrategy::BestRandom { seed }),
        _ => None,
    }
}

/// The preference pair `cdr annotate` writes for a best-of-N row, or why there is none.
/// TODO(engine)
pub fn annotate(
    row: &Row,
    scores: &[ItemScore],
    domain: Option<String>,
    strategy: PairStrategy,
) -> Result<PreferencePair, NoPair> {
    let Row::BestOfN(r) = row else {
        return Err(NoPair::TooFew);
    };
    let rewards: Vec<f64> = scores.iter().map(|x| x.reward).collect();
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

/// Rows that gave no pair, by reason (`TooFew`, `AllTied`, `IdenticalTexts`), as `cdr annotate`
/// reports them.
pub type Dropped = BTreeMap<String, usize>;
