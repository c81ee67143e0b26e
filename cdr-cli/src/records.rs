//! What `cdr score` and `cdr eval` write per row.

use cdr_core::ItemScore;
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
