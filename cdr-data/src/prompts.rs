//! Reading prompts to generate responses for.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::Result;
use crate::fields::Fields;
use crate::normalize::{RowError, parse_messages, parse_prompt, take, take_id, take_label};
use crate::read::{HasId, ReadOptions, ReadOutcome, read_objects};
use cdr_types::Message;

/// A conversation waiting for a response.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRow {
    /// The row's id, or `row-{index}` when the file has none.
    pub id: String,
    /// The conversation to respond to; never empty, never ending with the assistant.
    pub prompt: Vec<Message>,
    /// Optional subset label.
    pub subset: Option<String>,
    /// Optional domain label.
    pub domain: Option<String>,
    /// Columns cdr does not interpret, carried along to the output. Response columns (`chosen`,
    /// `rejected`, `responses`) are left out: generated responses take their place.
    pub extra: Map<String, Value>,
}

impl HasId for PromptRow {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Reads the prompts of a dataset: the `prompt` column (a string, i.e. one user turn, or a list of
/// messages) or else the `messages` column, a conversation; a final assistant turn there (a
/// reference answer) is dropped, so any single-response or best-of-N dataset can serve as prompts.
pub fn read_prompts(
    path: impl AsRef<Path>,
    options: &ReadOptions,
) -> Result<ReadOutcome<PromptRow>> {
    read_objects(path.as_ref(), options, |object, index| {
        prompt_row(object, &options.fields, index)
    })
}

fn prompt_row(
    mut object: Map<String, Value>,
    fields: &Fields,
    index: usize,
) -> std::result::Result<PromptRow, RowError> {
    let id = take_id(&mut object, &fields.id, index)?;
    let subset = take_label(&mut object, &fields.subset)?;
    let domain = take_label(&mut object, &fields.domain)?;
    let prompt = if let Some(value) = take(&mut object, &fields.prompt) {
        parse_prompt(&value, &fields.prompt)?
    } else if let Some(value) = take(&mut object, &fields.messages) {
        let mut messages = parse_messages(&value, &fields.messages)?;
        if messages.last().is_some_and(Message::is_assistant) {
            messages.pop();
        }
        if messages.is_empty() {
            return Err(RowError::new(
                &fields.messages,
                "no turns before the assistant's answer",
            ));
        }
        messages
    } else {
        return Err(RowError {
            field: None,
            message: format!(
                "no prompt: expected a `{}` or a `{}` column",
                fields.prompt, fields.messages
            ),
        });
    };
    if let Some(last) = prompt.last().filter(|m| m.is_assistant()) {
        return Err(RowError::new(
            &fields.prompt,
            format!(
                "the conversation ends with the assistant (`{}`), so there is nothing to respond to",
                last.content.chars().take(40).collect::<String>()
            ),
        ));
    }
    for field in [
        &fields.chosen,
        &fields.rejected,
        &fields.responses,
        &fields.messages,
    ] {
        object.remove(field);
    }
    Ok(PromptRow {
        id,
        prompt,
        subset,
        domain,
        extra: object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &str) -> Result<ReadOutcome<PromptRow>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prompts.jsonl");
        std::fs::write(&path, lines).unwrap();
        read_prompts(&path, &ReadOptions::default())
    }

    #[test]
    fn prompts_from_text_messages_and_response_datasets() {
        let rows = read(concat!(
            r#"{"id": 1, "prompt": "Name a prime.", "subset": "math", "source": "x"}"#,
            "\n",
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}"#,
            "\n",
            r#"{"prompt": [{"role": "user", "content": "Why?"}], "chosen": "Because.", "rejected": "No."}"#,
            "\n",
        ))
        .unwrap()
        .rows;
        assert_eq!(rows[0].id, "1");
        assert_eq!(rows[0].prompt, vec![Message::user("Name a prime.")]);
        assert_eq!(rows[0].subset.as_deref(), Some("math"));
        assert_eq!(rows[0].extra.get("source"), Some(&Value::from("x")));
        assert_eq!(
            rows[1].prompt,
            vec![Message::system("Be brief."), Message::user("Hi")]
        );
        assert_eq!(rows[1].id, "row-1");
        assert_eq!(rows[2].prompt, vec![Message::user("Why?")]);
        assert!(rows[2].extra.is_empty(), "response columns are not carried");
    }

    #[test]
    fn rows_without_a_prompt_are_errors_naming_the_line() {
        let err = read("{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("no prompt"), "{err}");
        let err = read(r#"{"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ends with the assistant"), "{err}");
        let err = read(
            r#"{"id": "a", "prompt": "x"}
{"id": "a", "prompt": "y"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a"), "{err}");
    }
}
