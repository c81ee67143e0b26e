//! The request bodies the server accepts, parsed from untrusted bytes with an error that names
//! the field and what was wrong with it (answered as 400).
//!
//! Each parser reads a JSON value and checks it by hand rather than deriving `Deserialize`:
//! serde's untagged enums (a prompt that is a string or a message list) report only "did not
//! match any variant", and a client needs to know which field to fix.

use cdr_types::Message;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Most responses (or queries, or prompts) one request may carry; more is a client bug, and
/// would let one request hold the batch for everyone else.
pub const MAX_ITEMS: usize = 4096;

/// Most alternatives per position (`prompt_logprobs`, `logprobs`), vLLM's default cap.
pub const MAX_TOP: usize = 20;

/// A request body type: parsed from a JSON object.
pub trait Request: Sized {
    /// Reads the request from its (already parsed) top-level object.
    fn from_object(object: &Map<String, Value>) -> Result<Self, ApiError>;
}

/// Parses a request body: malformed JSON, a body that is not an object, a missing field or a
/// field of the wrong type is a 400 naming it.
pub fn parse<T: Request>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object, not {}",
            kind(&value)
        )));
    };
    T::from_object(&object)
}

/// The prompt of a scoring request: a conversation ending in a user turn.
pub type Conversation = Vec<Message>;

/// `POST /v1/score`: a prompt and the responses to score against it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRequest {
    /// The conversation (a string is one user turn).
    pub prompt: Conversation,
    /// The responses, each scored in the prompt's context.
    pub responses: Vec<String>,
    /// The domain whose customization applies; `None` lets the server's router decide.
    pub domain: Option<String>,
}

impl Request for ScoreRequest {
    fn from_object(o: &Map<String, Value>) -> Result<Self, ApiError> {
        let prompt = conversation(required(o, "prompt")?, "prompt")?;
        let responses = strings(required(o, "responses")?, "responses")?;
        if responses.is_empty() {
            return Err(ApiError::bad_request("`responses` is empty"));
        }
        Ok(Self {
            prompt,
            responses,
            domain: optional_string(o, "domain")?,
        })
    }
}

/// `POST /get_reward`: OpenRLHF's remote reward contract. Each query is a templated prompt
/// followed by a response; `prompts[i]` is the prompt part of `query[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardRequest {
    /// Prompt + response texts, as the policy's tokenizer decoded them.
    pub query: Vec<String>,
    /// The templated prompts the queries start with.
    pub prompts: Vec<String>,
    /// Passed through by OpenRLHF; cdr reads none.
    pub labels: Option<Value>,
}

impl Request for RewardRequest {
    fn from_object(o: &Map<String, Value>) -> Result<Self, ApiError> {
        let query = string_or_strings(required(o, "query")?, "query")?;
        let prompts = match o.get("prompts") {
            Some(v) => string_or_strings(v, "prompts")?,
            None => {
                return Err(ApiError::bad_request(
                    "`prompts` is missing: cdr needs each query's prompt to tell the response \
                     from it (OpenRLHF sends `query`, `prompts` and `labels`)",
                ));
            }
        };
        if query.len() != prompts.len() {
            return Err(ApiError::bad_request(format!(
                "`query` has {} entries but `prompts` has {}",
                query.len(),
                prompts.len()
            )));
        }
        if query.is_empty() {
            return Err(ApiError::bad_request("`query` is empty"));
        }
        Ok(Self {
            query,
            prompts,
            labels: o.get("labels").cloned(),
        })
    }
}

/// One prompt of a completions request.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    /// Text, tokenized by the server.
    Text(String),
    /// Token ids, used as they are.
    Ids(Vec<u32>),
}

/// `POST /v1/completions`: the subset of vLLM's parameters that scoring uses.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// The model name; when given it must be the served one.
    pub model: Option<String>,
    /// One or more prompts (one choice each).
    pub prompts: Vec<PromptInput>,
    /// 0 (score only) or 1 (also the greedy next token).
    pub max_tokens: usize,
    /// Return the prompt in `text` and, with `logprobs`, its tokens in the legacy `logprobs`.
    pub echo: bool,
    /// The legacy `logprobs` object with this many alternatives per token.
    pub logprobs: Option<usize>,
    /// vLLM's `prompt_logprobs`: per prompt token, its log-prob and this many alternatives.
    pub prompt_logprobs: Option<usize>,
    /// cdr's extension (advertised in `/v1/models`): prompt positions before this one are left
    /// out (`null`), so a client scoring a response after a long prompt pays only for it.
    pub prompt_logprobs_start: Option<usize>,
    /// Whether text prompts get the tokenizer's special tokens (BOS), as in vLLM.
    pub add_special_tokens: bool,
}

impl Request for CompletionRequest {
    fn from_object(o: &Map<String, Value>) -> Result<Self, ApiError> {
        let prompts = completion_prompts(required(o, "prompt")?)?;
        let max_tokens = match o.get("max_tokens") {
            None | Some(Value::Null) => 1,
            Some(v) => count(v, "max_tokens")?,
        };
        if max_tokens > 1 {
            return Err(ApiError::bad_request(format!(
                "`max_tokens` is {max_tokens}: cdr serve scores prompts and returns at most the \
                 greedy next token (0 or 1)"
            )));
        }
        if let Some(n) = o.get("n").filter(|v| !v.is_null())
            && count(n, "n")? != 1
        {
            return Err(ApiError::bad_request("`n` must be 1"));
        }
        if o.get("stream").and_then(Value::as_bool) == Some(true) {
            return Err(ApiError::bad_request("`stream` is not supported"));
        }
        let top = |field: &str| -> Result<Option<usize>, ApiError> {
            match o.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    let k = count(v, field)?;
                    if k > MAX_TOP {
                        return Err(ApiError::bad_request(format!(
                            "`{field}` is {k}; at most {MAX_TOP} alternatives per token"
                        )));
                    }
                    Ok(Some(k))
                }
            }
        };
        let logprobs = top("logprobs")?;
        let prompt_logprobs = top("prompt_logprobs")?;
        let prompt_logprobs_start = match o.get("prompt_logprobs_start") {
            None | Some(Value::Null) => None,
            Some(v) => Some(count(v, "prompt_logprobs_start")?),
        };
        let flag = |field: &str, default: bool| -> Result<bool, ApiError> {
            match o.get(field) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(wrong(field, "a boolean", v)),
            }
        };
        Ok(Self {
            model: optional_string(o, "model")?,
            prompts,
            max_tokens,
            echo: flag("echo", false)?,
            logprobs,
            prompt_logprobs,
            prompt_logprobs_start,
            add_special_tokens: flag("add_special_tokens", true)?,
        })
    }
}

fn completion_prompts(v: &Value) -> Result<Vec<PromptInput>, ApiError> {
    let prompts = match v {
        Value::String(s) => vec![PromptInput::Text(s.clone())],
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::bad_request("`prompt` is empty"));
        }
        Value::Array(items) if items.iter().all(Value::is_number) => {
            vec![PromptInput::Ids(token_ids(v, "prompt")?)]
        }
        Value::Array(items) => {
            if items.len() > MAX_ITEMS {
                return Err(too_many("prompt", items.len()));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(PromptInput::Text(s.clone())),
                    Value::Array(_) => {
                        Ok(PromptInput::Ids(token_ids(item, &format!("prompt[{i}]"))?))
                    }
                    other => Err(wrong(
                        &format!("prompt[{i}]"),
                        "a string or a list of token ids",
                        other,
                    )),
                })
                .collect::<Result<_, _>>()?
        }
        other => {
            return Err(wrong(
                "prompt",
                "a string, a list of token ids, or a list of either",
                other,
            ));
        }
    };
    for (i, p) in prompts.iter().enumerate() {
        let empty = match p {
            PromptInput::Text(s) => s.is_empty(),
            PromptInput::Ids(ids) => ids.is_empty(),
        };
        if empty {
            return Err(ApiError::bad_request(format!("prompt {i} is empty")));
        }
    }
    Ok(prompts)
}

fn token_ids(v: &Value, field: &str) -> Result<Vec<u32>, ApiError> {
    let Value::Array(items) = v else {
        return Err(wrong(field, "a list of token ids", v));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, id)| {
            id.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| wrong(&format!("{field}[{i}]"), "a token id (0..2^32)", id))
        })
        .collect()
}

fn required<'a>(o: &'a Map<String, Value>, field: &str) -> Result<&'a Value, ApiError> {
    o.get(field)
        .ok_or_else(|| ApiError::bad_request(format!("`{field}` is missing")))
}

fn optional_string(o: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong(field, "a string", v)),
    }
}

fn count(v: &Value, field: &str) -> Result<usize, ApiError> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| wrong(field, "a non-negative integer", v))
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = v else {
        return Err(wrong(field, "a list of strings", v));
    };
    if items.len() > MAX_ITEMS {
        return Err(too_many(field, items.len()));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong(&format!("{field}[{i}]"), "a string", other)),
        })
        .collect()
}

fn string_or_strings(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(_) => strings(v, field),
        other => Err(wrong(field, "a string or a list of strings", other)),
    }
}

fn conversation(v: &Value, field: &str) -> Result<Conversation, ApiError> {
    let messages = match v {
        Value::String(s) if s.trim().is_empty() => {
            return Err(ApiError::bad_request(format!("`{field}` is empty")));
        }
        Value::String(s) => return Ok(vec![Message::user(s.clone())]),
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::bad_request(format!("`{field}` is empty")));
        }
        Value::Array(items) => items,
        other => {
            return Err(wrong(
                field,
                "a string or a list of {\"role\", \"content\"} messages",
                other,
            ));
        }
    };
    if messages.len() > MAX_ITEMS {
        return Err(too_many(field, messages.len()));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let Value::Object(m) = m else {
            return Err(wrong(&at, "a {\"role\", \"content\"} message", m));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) => r,
            Some(v) => return Err(wrong(&format!("{at}.role"), "a string", v)),
            None => return Err(ApiError::bad_request(format!("`{at}.role` is missing"))),
        };
        if !cdr_types::ROLES.contains(&role.as_str()) {
            return Err(ApiError::bad_request(format!(
                "`{at}.role` is `{role}`; expected one of {}",
                cdr_types::ROLES.join(", ")
            )));
        }
        let content = match m.get("content") {
            Some(Value::String(c)) => c,
            Some(v) => return Err(wrong(&format!("{at}.content"), "a string", v)),
            None => return Err(ApiError::bad_request(format!("`{at}.content` is missing"))),
        };
        out.push(Message::new(role.clone(), content.clone()));
    }
    if out.last().is_some_and(Message::is_assistant) {
        return Err(ApiError::bad_request(format!(
            "`{field}` ends with an assistant turn; the responses are the assistant's turn"
        )));
    }
    Ok(out)
}

fn too_many(field: &str, n: usize) -> ApiError {
    ApiError::bad_request(format!(
        "`{field}` has {n} entries; at most {MAX_ITEMS} per request"
    ))
}

fn wrong(field: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::bad_request(format!("`{field}` must be {expected}, not {}", kind(got)))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_requests_name_the_bad_field() {
        let ok: ScoreRequest = parse(
            br#"{"prompt": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "2+2?"}],
                 "responses": ["4"], "domain": "math"}"#,
        )
        .unwrap();
        assert_eq!(ok.prompt.len(), 2);
        assert_eq!(ok.domain.as_deref(), Some("math"));
        for (body, needle) in [
            (&b"{"[..], "not valid JSON"),
            (b"[1]", "JSON object"),
            (br#"{"responses": ["a"]}"#, "`prompt` is missing"),
            (br#"{"prompt": 3, "responses": ["a"]}"#, "`prompt` must be"),
            (
                br#"{"prompt": "p", "responses": ["a", 2]}"#,
                "`responses[1]` must be a string",
            ),
            (
                br#"{"prompt": "p", "responses": []}"#,
                "`responses` is empty",
            ),
            (
                br#"{"prompt": [{"role": "tool", "content": "x"}], "responses": ["a"]}"#,
                "role",
            ),
            (
                br#"{"prompt": [{"role": "user"}], "responses": ["a"]}"#,
                "content` is missing",
            ),
            (
                br#"{"prompt": "p", "responses": ["a"], "domain": 1}"#,
                "`domain` must be a string",
            ),
        ] {
            let e = parse::<ScoreRequest>(body).unwrap_err();
            assert_eq!(e.status().as_u16(), 400);
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn reward_requests_follow_openrlhf() {
        let r: RewardRequest =
            parse(br#"{"query": ["p a"], "prompts": ["p "], "labels": [null]}"#).unwrap();
        assert_eq!(r.query, vec!["p a"]);
        let e = parse::<RewardRequest>(br#"{"query": ["a", "b"], "prompts": ["p"]}"#).unwrap_err();
        assert!(e.to_string().contains("2 entries"), "{e}");
        let e = parse::<RewardRequest>(br#"{"query": ["a"]}"#).unwrap_err();
        assert!(e.to_string().contains("`prompts` is missing"), "{e}");
    }

    #[test]
    fn completion_prompts_take_every_vllm_shape() {
        let one: CompletionRequest = parse(br#"{"prompt": [1, 2, 3], "max_tokens": 0}"#).unwrap();
        assert_eq!(one.prompts, vec![PromptInput::Ids(vec![1, 2, 3])]);
        assert_eq!(one.max_tokens, 0);
        let many: CompletionRequest =
            parse(br#"{"prompt": ["a", [4, 5]], "prompt_logprobs": 1, "echo": true}"#).unwrap();
        assert_eq!(many.prompts.len(), 2);
        assert_eq!(many.prompt_logprobs, Some(1));
        assert!(many.echo);
        for (body, needle) in [
            (&br#"{"prompt": "a", "max_tokens": 16}"#[..], "0 or 1"),
            (br#"{"prompt": [1, -2]}"#, "`prompt[1]` must be a token id"),
            (br#"{"prompt": "a", "prompt_logprobs": 21}"#, "at most 20"),
            (br#"{"prompt": "a", "stream": true}"#, "stream"),
            (br#"{"prompt": []}"#, "empty"),
            (br#"{"prompt": [[]]}"#, "prompt 0 is empty"),
            (
                br#"{"prompt": "a", "echo": "yes"}"#,
                "`echo` must be a boolean",
            ),
        ] {
            let e = parse::<CompletionRequest>(body).unwrap_err();
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
    }
}
