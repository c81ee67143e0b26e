//! Finding a record's id in a JSON line without building the whole value.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Why no id came out of a line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IdError {
    /// The line is not valid JSON (e.g. cut short by a crash).
    Syntax(String),
    /// Valid JSON, but not an object with a usable id.
    Invalid(String),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Syntax(message) | IdError::Invalid(message) => f.write_str(message),
        }
    }
}

/// The id (string, or integer as its decimal text) of the JSON object in `line`.
pub(crate) fn extract_id(line: &str, field: &str) -> Result<String, IdError> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let found = IdSeed(field)
        .deserialize(&mut deserializer)
        .and_then(|found| deserializer.end().map(|()| found))
        .map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                IdError::Syntax(format!("invalid JSON: {}", strip_location(&e)))
            } else {
                IdError::Invalid(strip_location(&e))
            }
        })?;
    match found {
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(id),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(Value::Null) | None => Err(IdError::Invalid(format!("no `{field}` field"))),
        Some(other) => Err(IdError::Invalid(format!(
            "`{field}` must be a non-empty string or an integer, got {other}"
        ))),
    }
}

/// serde_json's messages end in "at line 1 column N"; within one JSONL line only the column
/// means anything, and the caller reports the line itself.
pub(crate) fn strip_location(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) if error.line() == 1 && error.column() > 0 => {
            format!("{message} (column {})", error.column())
        }
        Some(message) => message.to_owned(),
        None => text,
    }
}

struct IdSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdSeed<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
