//! Turns one parsed row (a JSON object, whatever file it came from) into a [`Row`].
//!
//! Every accepted layout ends up as "a conversation before the response" plus response texts, so
//! the scorer sees one shape no matter how the dataset spelled it.

use serde_json::{Map, Value};

use crate::fields::Fields;
use crate::row::{BestOfNRow, PairwiseRow, Row};
use cdr_types::{Message, ROLES};

/// Why a row was rejected, before the reader adds file and position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowError {
    pub field: Option<String>,
    pub message: String,
}

impl RowError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        RowError {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn missing(field: &str) -> Self {
        RowError::new(field, "missing required field")
    }

    fn wrong_type(field: &str, expected: &str, got: &Value) -> Self {
        RowError::new(
            field,
            format!("expected {expected}, got {}", type_name(got)),
        )
    }
}

/// A response as the file spelled it, before it is resolved against the prompt.
enum Response {
    Text(String),
    Conversation(Vec<Message>),
}

/// Which response column to read, and under what name to report it.
struct Candidate {
    field: String,
    response: Response,
    /// Whether a list that continues the prompt may hold user turns too (`messages`), or only
    /// the assistant's (`chosen` / `rejected` / `responses`, as in TRL's explicit-prompt form).
    any_turns: bool,
}

/// Columns that hold a row's only response, tried in this order after `responses` and `messages`.
pub(crate) const SINGLE_RESPONSE: [&str; 2] = ["response", "completion"];

/// The `i`-th column of a wide best-of-N row (`resp0`, `resp1`, ...).
pub(crate) fn wide_response(i: usize) -> String {
    format!("resp{i}")
}

/// Normalizes `object`, the row at `index` (0-based, used for the derived id).
pub(crate) fn normalize(
    mut object: Map<String, Value>,
    fields: &Fields,
    index: usize,
) -> Result<Row, RowError> {
    let id = take_id(&mut object, &fields.id, index)?;
    let subset = take_label(&mut object, &fields.subset)?;
    let domain = take_label(&mut object, &fields.domain)?;
    let prompt = match take(&mut object, &fields.prompt) {
        Some(value) => Some(parse_prompt(&value, &fields.prompt)?),
        None => None,
    };

    // Pairwise wins over the other layouts so that a stray `messages` column in a pairwise
    // dataset is carried as an extra rather than changing what gets scored.
    if object.contains_key(&fields.chosen) || object.contains_key(&fields.rejected) {
        let mut candidates = Vec::with_capacity(2);
        for field in [&fields.chosen, &fields.rejected] {
            let value = take(&mut object, field).ok_or_else(|| RowError::missing(field))?;
            candidates.push(Candidate {
                field: field.clone(),
                response: parse_response(&value, field)?,
                any_turns: false,
            });
        }
        let (prompt, mut texts) = resolve(prompt, candidates, &fields.prompt)?;
        let rejected = texts.pop().unwrap_or_default();
        let chosen = texts.pop().unwrap_or_default();
        return Ok(Row::Pairwise(PairwiseRow {
            id,
            prompt,
            chosen,
            rejected,
            subset,
            domain,
            extra: object,
        }));
    }

    let candidates = if let Some(value) = take(&mut object, &fields.responses) {
        let Value::Array(items) = &value else {
            return Err(RowError::wrong_type(
                &fields.responses,
                "a list of responses",
                &value,
            ));
        };
        if items.is_empty() {
            return Err(RowError::new(&fields.responses, "no responses"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("{}[{i}]", fields.responses);
                let response = parse_response(item, &field)?;
                Ok(Candidate {
                    field,
                    response,
                    any_turns: false,
                })
            })
            .collect::<Result<Vec<_>, RowError>>()?
    } else if let Some(value) = take(&mut object, &fields.messages) {
        if !value.is_array() {
            return Err(RowError::wrong_type(
                &fields.messages,
                "a list of messages",
                &value,
            ));
        }
        vec![Candidate {
            field: fields.messages.clone(),
            response: parse_response(&value, &fields.messages)?,
            any_turns: true,
        }]
    } else if let Some((field, value)) = SINGLE_RESPONSE
        .iter()
        .find_map(|&f| take(&mut object, f).map(|v| (f, v)))
    {
        // One response per row (`response`, or TRL's prompt-completion `completion`).
        vec![Candidate {
            field: field.to_owned(),
            response: parse_response(&value, field)?,
            any_turns: false,
        }]
    } else if object.contains_key(&wide_response(0)) {
        // Best-of-N spread over columns `resp0`, `resp1`, ... (the first gap ends the list).
        let mut candidates = Vec::new();
        while let Some(value) = take(&mut object, &wide_response(candidates.len())) {
            let field = wide_response(candidates.len());
            candidates.push(Candidate {
                response: parse_response(&value, &field)?,
                field,
                any_turns: false,
            });
        }
        candidates
    } else {
        return Err(RowError {
            field: None,
            message: format!(
                "no response column: expected `{}` and `{}`, `{}`, `{}`, `response`, \
                 `completion`, or `resp0`, `resp1`...",
                fields.chosen, fields.rejected, fields.responses, fields.messages
            ),
        });
    };
    let (prompt, responses) = resolve(prompt, candidates, &fields.prompt)?;
    Ok(Row::BestOfN(BestOfNRow {
        id,
        prompt,
        responses,
        subset,
        domain,
        extra: object,
    }))
}

/// Splits every candidate into (conversation before the response, response text) and checks that
/// all candidates answer the same conversation, which becomes the row's prompt.
fn resolve(
    prompt: Option<Vec<Message>>,
    candidates: Vec<Candidate>,
    prompt_field: &str,
) -> Result<(Vec<Message>, Vec<String>), RowError> {
    let mut shared: Option<(Vec<Message>, String)> = None;
    let mut texts = Vec::with_capacity(candidates.len());
    for Candidate {
        field,
        response,
        any_turns,
    } in candidates
    {
        let (context, text) = match response {
            Response::Text(text) => match (&prompt, crate::transcript::hh_turns(&text)) {
                (Some(prompt), _) => (prompt.clone(), text),
                // Anthropic HH layout: the whole conversation in each response column.
                (None, Some(turns)) => split_conversation(None, turns, &field, any_turns)?,
                (None, None) => return Err(RowError::missing(prompt_field)),
            },
            Response::Conversation(messages) => {
                split_conversation(prompt.as_deref(), messages, &field, any_turns)?
            }
        };
        match &shared {
            None => shared = Some((context, field)),
            Some((first, first_field)) => {
                if *first != context {
                    let at = first
                        .iter()
                        .zip(&context)
                        .position(|(a, b)| a != b)
                        .unwrap_or(first.len().min(context.len()));
                    return Err(RowError::new(
                        field,
                        format!(
                            "continues a different conversation than `{first_field}` \
                             (they differ at message {at})"
                        ),
                    ));
                }
            }
        }
        texts.push(text);
    }
    let context = shared.map(|(context, _)| context).unwrap_or_default();
    if context.is_empty() {
        return Err(RowError::new(
            prompt_field,
            "empty prompt: no messages before the response",
        ));
    }
    Ok((context, texts))
}

/// Resolves a message-list response against the prompt: either the whole conversation (it
/// starts with the prompt, or there is no prompt) or only the turns that follow the prompt.
fn split_conversation(
    prompt: Option<&[Message]>,
    messages: Vec<Message>,
    field: &str,
    any_turns: bool,
) -> Result<(Vec<Message>, String), RowError> {
    if messages.is_empty() {
        return Err(RowError::new(field, "empty response: no messages"));
    }
    let mut full = match prompt {
        Some(prompt) if messages.len() > prompt.len() && messages.starts_with(prompt) => messages,
        Some(prompt) => {
            // A list that neither repeats the prompt nor only answers it is most often a full
            // conversation whose start differs from `prompt` (a system turn, whitespace);
            // gluing the two together would score a conversation nobody had.
            if let Some(i) = messages.iter().position(|m| !m.is_assistant())
                && !any_turns
            {
                return Err(RowError::new(
                    format!("{field}[{i}]"),
                    format!(
                        "a `{}` turn, but the list does not start with the prompt, so it \
                             should hold only the assistant's turns after it",
                        messages[i].role
                    ),
                ));
            }
            prompt.iter().cloned().chain(messages).collect()
        }
        None => messages,
    };
    let Some(last) = full.pop() else {
        return Err(RowError::new(field, "empty response: no messages"));
    };
    if !last.is_assistant() {
        return Err(RowError::new(
            field,
            format!(
                "the last message must be from the assistant, got `{}`",
                last.role
            ),
        ));
    }
    if last.content.trim().is_empty() {
        return Err(RowError::new(field, "empty response"));
    }
    Ok((full, last.content))
}

fn parse_response(value: &Value, field: &str) -> Result<Response, RowError> {
    match value {
        Value::String(text) => {
            if text.trim().is_empty() {
                Err(RowError::new(field, "empty response"))
            } else {
                Ok(Response::Text(text.clone()))
            }
        }
        Value::Array(_) => Ok(Response::Conversation(parse_messages(value, field)?)),
        Value::Null => Err(RowError::new(field, "response is null")),
        other => Err(RowError::wrong_type(
            field,
            "a string or a list of messages",
            other,
        )),
    }
}

pub(crate) fn parse_prompt(value: &Value, field: &str) -> Result<Vec<Message>, RowError> {
    let messages = match value {
        Value::String(text) => {
            if text.trim().is_empty() {
                return Err(RowError::new(field, "empty prompt"));
            }
            vec![Message::user(text.clone())]
        }
        Value::Array(_) => parse_messages(value, field)?,
        other => {
            return Err(RowError::wrong_type(
                field,
                "a string or a list of messages",
                other,
            ));
        }
    };
    if messages.is_empty() {
        return Err(RowError::new(field, "empty prompt"));
    }
    Ok(messages)
}

pub(crate) fn parse_messages(value: &Value, field: &str) -> Result<Vec<Message>, RowError> {
    let Value::Array(items) = value else {
        return Err(RowError::wrong_type(field, "a list of messages", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_message(item, &format!("{field}[{i}]")))
        .collect()
}

fn parse_message(value: &Value, field: &str) -> Result<Message, RowError> {
    let Value::Object(object) = value else {
        return Err(RowError::wrong_type(
            field,
            "a message object with `role` and `content`",
            value,
        ));
    };
    let role = match object.get("role") {
        Some(Value::String(role)) => role,
        Some(other) => {
            return Err(RowError::wrong_type(
                &format!("{field}.role"),
                "a string",
                other,
            ));
        }
        None => return Err(RowError::missing(&format!("{field}.role"))),
    };
    if !ROLES.contains(&role.as_str()) {
        return Err(RowError::new(
            format!("{field}.role"),
            format!("role `{role}` is not one of {}", ROLES.join(", ")),
        ));
    }
    let content = match object.get("content") {
        Some(Value::String(content)) => content,
        Some(other) => {
            return Err(RowError::wrong_type(
                &format!("{field}.content"),
                "a string",
                other,
            ));
        }
        None => return Err(RowError::missing(&format!("{field}.content"))),
    };
    Ok(Message::new(role.clone(), content.clone()))
}

/// Removes `field`; a JSON `null` (or a Parquet null) counts as absent.
pub(crate) fn take(object: &mut Map<String, Value>, field: &str) -> Option<Value> {
    object.remove(field).filter(|value| !value.is_null())
}

pub(crate) fn take_id(
    object: &mut Map<String, Value>,
    field: &str,
    index: usize,
) -> Result<String, RowError> {
    match take(object, field) {
        None => Ok(format!("row-{index}")),
        Some(Value::String(id)) => {
            if id.trim().is_empty() {
                Err(RowError::new(field, "empty id"))
            } else {
                Ok(id)
            }
        }
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
        Some(other) => Err(RowError::wrong_type(
            field,
            "a string or an integer",
            &other,
        )),
    }
}

pub(crate) fn take_label(
    object: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<String>, RowError> {
    match take(object, field) {
        None => Ok(None),
        Some(Value::String(label)) => Ok(Some(label)),
        Some(other) => Err(RowError::wrong_type(field, "a string", &other)),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
