//! What the Python calls return per row: the records `cdr score`, `cdr eval` and
//! `cdr annotate` write (the library's engine types), as one enum for rows of either shape.

use std::collections::BTreeMap;

use cdr_core::ItemScore;
use cdr_core::best_of_n::{NoPair, PairStrategy};
use cdr_core::engine::{EvalReport, PairScore, ResponsesScore, preference_pair};
use cdr_data::{PreferencePair, Row};
use serde::Serialize;

/// One of the two records, as `cdr score` writes a row of either shape.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ScoreRecord {
    Pair(PairScore),
    Responses(ResponsesScore),
}

/// `row`'s record from its responses' scores (chosen then rejected for a pairwise row).
pub fn score_record(row: &Row, scores: &[ItemScore], domain: Option<String>) -> ScoreRecord {
    match row {
        Row::Pairwise(p) => ScoreRecord::Pair(PairScore::new(p, scores, domain)),
        Row::BestOfN(b) => ScoreRecord::Responses(ResponsesScore::new(b, scores, domain)),
    }
}

/// `cdr eval`'s report and the per-row records `cdr eval --output` writes.
#[derive(Debug, Serialize)]
pub struct EvalSummary {
    #[serde(flatten)]
    pub report: EvalReport,
    pub records: Vec<PairScore>,
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
pub fn annotate(
    row: &Row,
    scores: &[ItemScore],
    domain: Option<String>,
    strategy: PairStrategy,
) -> Result<PreferencePair, NoPair> {
    match row {
        Row::BestOfN(r) => preference_pair(r, scores, domain.as_deref(), strategy),
        Row::Pairwise(_) => Err(NoPair::TooFew),
    }
}

/// Rows that gave no pair, by reason (`TooFew`, `AllTied`, `IdenticalTexts`), as `cdr annotate`
/// reports them.
pub type Dropped = BTreeMap<String, usize>;
