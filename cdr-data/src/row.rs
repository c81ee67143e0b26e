use serde_json::{Map, Value};

use cdr_types::Message;

/// A prompt with a preferred and a dispreferred response.
#[derive(Debug, Clone, PartialEq)]
pub struct PairwiseRow {
    /// The row's id, or `row-{index}` when the file has none.
    pub id: String,
    /// The conversation before the response; never empty.
    pub prompt: Vec<Message>,
    /// The preferred response text.
    pub chosen: String,
    /// The dispreferred response text.
    pub rejected: String,
    /// Optional subset label.
    pub subset: Option<String>,
    /// Optional domain label.
    pub domain: Option<String>,
    /// Columns cdr does not interpret, carried along to the output.
    pub extra: Map<String, Value>,
}

/// A prompt with one or more candidate responses to rank.
#[derive(Debug, Clone, PartialEq)]
pub struct BestOfNRow {
    /// The row's id, or `row-{index}` when the file has none.
    pub id: String,
    /// The conversation before the responses; never empty.
    pub prompt: Vec<Message>,
    /// The candidate response texts, in file order; at least one.
    pub responses: Vec<String>,
    /// Optional subset label.
    pub subset: Option<String>,
    /// Optional domain label.
    pub domain: Option<String>,
    /// Columns cdr does not interpret, carried along to the output.
    pub extra: Map<String, Value>,
}

/// One input row, in whichever shape the file holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// `chosen` / `rejected` rows.
    Pairwise(PairwiseRow),
    /// `responses` rows, and single-response `messages` rows (one response).
    BestOfN(BestOfNRow),
}

impl Row {
    /// The row's id.
    pub fn id(&self) -> &str {
        match self {
            Row::Pairwise(row) => &row.id,
            Row::BestOfN(row) => &row.id,
        }
    }

    /// The conversation before the response(s).
    pub fn prompt(&self) -> &[Message] {
        match self {
            Row::Pairwise(row) => &row.prompt,
            Row::BestOfN(row) => &row.prompt,
        }
    }

    /// The row's subset label, if any.
    pub fn subset(&self) -> Option<&str> {
        match self {
            Row::Pairwise(row) => row.subset.as_deref(),
            Row::BestOfN(row) => row.subset.as_deref(),
        }
    }

    /// The row's domain label, if any.
    pub fn domain(&self) -> Option<&str> {
        match self {
            Row::Pairwise(row) => row.domain.as_deref(),
            Row::BestOfN(row) => row.domain.as_deref(),
        }
    }

    /// The columns cdr does not interpret.
    pub fn extra(&self) -> &Map<String, Value> {
        match self {
            Row::Pairwise(row) => &row.extra,
            Row::BestOfN(row) => &row.extra,
        }
    }
}
