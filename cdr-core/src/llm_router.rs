//! The `llm` router: a model answers the classification prompt in words, and the domain is read
//! out of its answer.

use cdr_data::Message;
use cdr_models::Sampling;
use cdr_prompt::Customization;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::generation::{Policy, SampleOptions};

/// One routed conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmRoute {
    /// The domain: the one the answer names, else the config's default domain.
    pub domain: String,
    /// What the router model wrote.
    pub answer: String,
    /// Whether the answer named a domain (false: the default was used).
    pub parsed: bool,
}

/// Routes by generation: the classification prompt as a user turn, a short greedy answer, and
/// [`parse_label`] on it.
pub struct LlmRouter {
    policy: Policy,
    max_new_tokens: usize,
}

impl LlmRouter {
    /// `max_new_tokens` bounds the answer; a label needs a few tokens.
    pub fn new(policy: Policy, max_new_tokens: usize) -> Self {
        Self {
            policy,
            max_new_tokens,
        }
    }

    /// Each conversation's route; `progress(conversations, tokens)` after each one.
    pub fn route(
        &self,
        customization: &Customization,
        conversations: &[&[Message]],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<LlmRoute>> {
        let options = SampleOptions {
            n: 1,
            max_new_tokens: self.max_new_tokens,
            sampling: Sampling::greedy(),
            seed: 0,
            stop_strings: Vec::new(),
            max_prompt_tokens: 4096,
        };
        conversations
            .iter()
            .map(|convo| {
                let question = [Message::user(customization.router_prompt(convo))];
                let mut tokens = 0;
                let generated = self
                    .policy
                    .sample("router", &question, &options, &mut |n| tokens += n)?;
                let answer = generated
                    .into_iter()
                    .next()
                    .and_then(|g| g.text)
                    .unwrap_or_default();
                progress(1, tokens);
                let label = parse_label(&answer, customization);
                Ok(LlmRoute {
                    parsed: label.is_some(),
                    domain: label.unwrap_or_else(|| customization.default_domain.clone()),
                    answer,
                })
            })
            .collect()
    }
}

/// The domain an answer names: the text between `[START]` and `[END]` when the answer has both
/// (a prompt may ask for that form), else the configured domain name that occurs first as a whole
/// word, case-insensitive. `None` when it names none.
pub fn parse_label(answer: &str, customization: &Customization) -> Option<String> {
    if let Some((_, rest)) = answer.split_once("[START]")
        && let Some((inside, _)) = rest.split_once("[END]")
    {
        return customization.canonical_domain(inside).map(str::to_string);
    }
    let lower = answer.to_lowercase();
    customization
        .domain_names()
        .filter_map(|d| first_word_match(&lower, &d.to_lowercase()).map(|at| (at, d)))
        .min_by_key(|&(at, _)| at)
        .map(|(_, d)| d.to_string())
}

/// Byte offset of the first occurrence of `word` in `text` not inside a longer word.
fn first_word_match(text: &str, word: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let at = from + found;
        let end = at + word.len();
        let before = text[..at].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return Some(at);
        }
        from = at + word.chars().next().map_or(1, char::len_utf8);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Customization {
        Customization::default_config().unwrap()
    }

    #[test]
    fn labels_are_read_from_the_answer() {
        let c = config();
        let names: Vec<&str> = c.domain_names().collect();
        assert!(
            names.contains(&"SAFETY") && names.contains(&"CHAT"),
            "{names:?}"
        );
        assert_eq!(parse_label("SAFETY", &c).as_deref(), Some("SAFETY"));
        assert_eq!(parse_label("  safety\n", &c).as_deref(), Some("SAFETY"));
        assert_eq!(
            parse_label("The domain is Chat, not safety.", &c).as_deref(),
            Some("CHAT"),
            "the first named domain wins"
        );
        assert_eq!(
            parse_label("I think [START]reasoning[END] because of CHAT", &c).as_deref(),
            Some("REASONING")
        );
        assert_eq!(parse_label("[START]poetry[END] SAFETY", &c), None);
        assert_eq!(
            parse_label("chatter and unsafety", &c),
            None,
            "whole words only"
        );
        assert_eq!(parse_label("", &c), None);
    }
}
