/// Column names of an input dataset.
///
/// The defaults match the common preference-data layouts (TRL, RewardBench, UltraFeedback); rename
/// a field when a dataset uses another name, e.g. `question` for `prompt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Row id; string or integer. Default `id`.
    pub id: String,
    /// The prompt: a string or a list of messages. Default `prompt`.
    pub prompt: String,
    /// The preferred response. Default `chosen`.
    pub chosen: String,
    /// The dispreferred response. Default `rejected`.
    pub rejected: String,
    /// Best-of-N candidate responses. Default `responses`.
    pub responses: String,
    /// Optional subset label (RewardBench's `subset`). Default `subset`.
    pub subset: String,
    /// Optional domain label. Default `domain`.
    pub domain: String,
    /// A single conversation whose last message is the response. Default `messages`.
    pub messages: String,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            id: "id".into(),
            prompt: "prompt".into(),
            chosen: "chosen".into(),
            rejected: "rejected".into(),
            responses: "responses".into(),
            subset: "subset".into(),
            domain: "domain".into(),
            messages: "messages".into(),
        }
    }
}

impl Fields {
    /// Whether `name` is one of the configured columns, i.e. not an extra to carry along.
    pub fn is_known(&self, name: &str) -> bool {
        [
            &self.id,
            &self.prompt,
            &self.chosen,
            &self.rejected,
            &self.responses,
            &self.subset,
            &self.domain,
            &self.messages,
        ]
        .iter()
        .any(|field| field.as_str() == name)
    }
}
