//! From a rendered conversation to the token sequence both models score.

use cdr_models::Tokenizer;
use cdr_prompt::RenderedPair;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Token limits; METHOD.md: keep the LAST prompt tokens and the FIRST response tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longer prompts keep their last this many tokens.
    pub max_prompt_tokens: usize,
    /// Longer responses keep their first this many tokens.
    pub max_response_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_prompt_tokens: 2048,
            max_response_tokens: 2048,
        }
    }
}

/// A token sequence ready to score: `ids[response_start..]` are the response tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Prompt then response token ids.
    pub ids: Vec<u32>,
    /// Where the response starts in `ids`.
    pub response_start: usize,
    /// Prompt tokens before truncation.
    pub full_prompt_tokens: usize,
    /// Response tokens before truncation.
    pub full_response_tokens: usize,
    /// Whether the prompt or the response was cut to the limits.
    pub truncated: bool,
}

impl Encoded {
    /// Response tokens scored.
    pub fn n_response_tokens(&self) -> usize {
        self.ids.len() - self.response_start
    }

    /// Prompt tokens kept.
    pub fn n_prompt_tokens(&self) -> usize {
        self.response_start
    }
}

/// Tokenizes `rendered.full` (no special tokens added: the template already wrote them) and splits
/// it where the response begins.
///
/// The boundary comes from token offsets, not from tokenizing the prompt alone: BPE may merge the
/// last prompt characters with the first response characters. A token that contains any response
/// byte counts as a response token.
pub fn encode(tokenizer: &Tokenizer, rendered: &RenderedPair, limits: Limits) -> Result<Encoded> {
    let encoding = tokenizer
        .encode(rendered.full.as_str(), false)
        .map_err(|e| CoreError::Tokenize(e.to_string()))?;
    let ids = encoding.get_ids();
    let boundary = rendered.response_start();
    let start = encoding
        .get_offsets()
        .iter()
        .position(|&(_, end)| end > boundary)
        .ok_or(CoreError::EmptyResponse)?;
    if start == 0 {
        return Err(CoreError::EmptyPrompt);
    }
    let prompt = &ids[..start];
    let response = &ids[start..];
    let kept_prompt = &prompt[prompt.len().saturating_sub(limits.max_prompt_tokens)..];
    let kept_response = &response[..response.len().min(limits.max_response_tokens)];
    if kept_prompt.is_empty() {
        return Err(CoreError::Invalid(
            "max_prompt_tokens is 0: the first response token needs context".into(),
        ));
    }
    if kept_response.is_empty() {
        return Err(CoreError::Invalid("max_response_tokens is 0".into()));
    }
    let mut out = Vec::with_capacity(kept_prompt.len() + kept_response.len());
    out.extend_from_slice(kept_prompt);
    out.extend_from_slice(kept_response);
    Ok(Encoded {
        truncated: kept_prompt.len() < prompt.len() || kept_response.len() < response.len(),
        response_start: kept_prompt.len(),
        full_prompt_tokens: prompt.len(),
        full_response_tokens: response.len(),
        ids: out,
    })
}
