//! Anthropic HH-RLHF transcripts: a whole conversation in one string,
//! `"\n\nHuman: ...\n\nAssistant: ...\n\nHuman: ...\n\nAssistant: ..."`, as `chosen` and `rejected`
//! with no prompt column. They become messages, so the shared turns are the prompt and the last
//! assistant turn the response.

use cdr_types::Message;

const HUMAN: &str = "\n\nHuman:";
const ASSISTANT: &str = "\n\nAssistant:";

/// The turns of an HH transcript, or `None` when `text` is not one (it must open with a Human turn
/// and end with an Assistant turn). Turn texts lose the space after the colon and surrounding
/// whitespace, as the transcript's own formatting, not content.
pub(crate) fn hh_turns(text: &str) -> Option<Vec<Message>> {
    // Some copies drop the leading blank line.
    let text = if text.starts_with("Human:") {
        std::borrow::Cow::Owned(format!("\n\n{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    if !text.starts_with(HUMAN) {
        return None;
    }
    let mut turns = Vec::new();
    let mut rest: &str = &text;
    while !rest.is_empty() {
        let (is_user, body) = if let Some(body) = rest.strip_prefix(HUMAN) {
            (true, body)
        } else if let Some(body) = rest.strip_prefix(ASSISTANT) {
            (false, body)
        } else {
            return None;
        };
        let end = [body.find(HUMAN), body.find(ASSISTANT)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len());
        let content = body[..end].trim().to_string();
        turns.push(if is_user {
            Message::user(content)
        } else {
            Message::assistant(content)
        });
        rest = &body[end..];
    }
    turns
        .last()
        .is_some_and(Message::is_assistant)
        .then_some(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_turn_transcript() {
        let turns = hh_turns(
            "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Name a colour.\n\nAssistant: Blue.",
        )
        .unwrap();
        assert_eq!(
            turns,
            vec![
                Message::user("Hi there"),
                Message::assistant("Hello! How can I help?"),
                Message::user("Name a colour."),
                Message::assistant("Blue."),
            ]
        );
    }

    #[test]
    fn without_leading_blank_line_and_with_an_empty_last_turn() {
        let turns = hh_turns("Human: 2+2?\n\nAssistant:").unwrap();
        assert_eq!(turns, vec![Message::user("2+2?"), Message::assistant("")]);
    }

    #[test]
    fn other_text_is_not_a_transcript() {
        assert!(hh_turns("The answer is 4.").is_none());
        assert!(hh_turns("\n\nHuman: only a question").is_none());
    }

    #[test]
    fn other_markers_stay_inside_a_turn() {
        let turns = hh_turns("\n\nHuman: a\n\nSystem: b\n\nAssistant: c").unwrap();
        assert_eq!(turns[0], Message::user("a\n\nSystem: b"));
    }
}
