use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use cdr_types::Message;

/// One preference pair in the layout TRL's DPO and SimPO trainers read (conversational form).
///
/// Serializes as `{"prompt": [...], "chosen": [{"role": "assistant", ...}], "rejected": [...],
/// "score_chosen": f64, "score_rejected": f64, "id": ..., ...extra}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The conversation before the responses.
    pub prompt: Vec<Message>,
    /// The preferred completion, usually one assistant message.
    pub chosen: Vec<Message>,
    /// The dispreferred completion, usually one assistant message.
    pub rejected: Vec<Message>,
    /// The score that ranked `chosen` first.
    pub score_chosen: f64,
    /// The score of `rejected`.
    pub score_rejected: f64,
    /// The id of the source row; writers use it to resume.
    pub id: String,
    /// Further columns to carry along (subset, source, margins...). Keys must not repeat the
    /// fields above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PreferencePair {
    /// A pair whose chosen and rejected completions are single assistant messages.
    pub fn new(
        id: impl Into<String>,
        prompt: Vec<Message>,
        chosen: impl Into<String>,
        rejected: impl Into<String>,
        score_chosen: f64,
        score_rejected: f64,
    ) -> Self {
        PreferencePair {
            prompt,
            chosen: vec![Message::assistant(chosen)],
            rejected: vec![Message::assistant(rejected)],
            score_chosen,
            score_rejected,
            id: id.into(),
            extra: Map::new(),
        }
    }

    /// Adds an extra column.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}
