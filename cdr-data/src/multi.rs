//! RewardBench 2 rows: one prompt with several `chosen` and several `rejected` completions.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::Result;
use crate::normalize::{RowError, normalize};
use crate::read::{HasId, ReadOptions, ReadOutcome, read_objects};
use crate::row::{BestOfNRow, Row};

/// The column that says how many of a row's completions are correct (RewardBench 2's name).
pub const NUM_CORRECT: &str = "num_correct";

/// A prompt with lists of chosen and rejected completions (RewardBench 2's layout).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiRow {
    /// The row with `responses` = the chosen completions, then the rejected ones, in file order.
    pub row: BestOfNRow,
    /// How many of `row.responses`, from the front, are chosen (correct).
    pub num_chosen: usize,
}

impl MultiRow {
    /// The rejected completions.
    pub fn rejected(&self) -> &[String] {
        &self.row.responses[self.num_chosen..]
    }
}

impl HasId for MultiRow {
    fn id(&self) -> &str {
        &self.row.id
    }
}

/// A list of strings (a list of completions rather than one completion as a message list).
fn as_text_list(value: &Value) -> Option<Vec<String>> {
    let items = value.as_array()?;
    items
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Whether the file holds RewardBench 2 rows: the first row with a `chosen` column has a list of
/// strings there (a pairwise row has one string, or one conversation of message objects).
pub fn has_multi_rows(path: impl AsRef<Path>, options: &ReadOptions) -> Result<bool> {
    let chosen = &options.fields.chosen;
    let mut layout: Option<bool> = None;
    let lenient = ReadOptions {
        skip_invalid: true,
        ..options.clone()
    };
    // Every row is handed over as invalid, so nothing is collected; only the first decides.
    read_objects::<MultiRow>(path.as_ref(), &lenient, |object, _| {
        if layout.is_none()
            && let Some(value) = object.get(chosen)
        {
            layout = Some(as_text_list(value).is_some_and(|l| !l.is_empty()));
        }
        Err(RowError {
            field: None,
            message: String::new(),
        })
    })?;
    Ok(layout.unwrap_or(false))
}

/// Reads RewardBench 2 rows: `chosen` and `rejected` are lists of completion texts, the prompt is
/// read as in every other layout, and `num_correct`, when present, must equal the number of
/// chosen completions (it is kept among the row's extra columns).
pub fn read_multi(path: impl AsRef<Path>, options: &ReadOptions) -> Result<ReadOutcome<MultiRow>> {
    let fields = &options.fields;
    read_objects(path.as_ref(), options, |mut object, index| {
        let mut lists = Vec::with_capacity(2);
        for field in [&fields.chosen, &fields.rejected] {
            let value = object
                .remove(field)
                .ok_or_else(|| RowError::new(field, "missing required field"))?;
            let texts = as_text_list(&value)
                .ok_or_else(|| RowError::new(field, "expected a list of completion texts"))?;
            if texts.is_empty() {
                return Err(RowError::new(field, "no completions"));
            }
            lists.push(texts);
        }
        let rejected = lists.pop().unwrap_or_default();
        let chosen = lists.pop().unwrap_or_default();
        if let Some(n) = object.get(NUM_CORRECT)
            && n.as_u64() != Some(chosen.len() as u64)
        {
            return Err(RowError::new(
                NUM_CORRECT,
                format!(
                    "is {n}, but `{}` holds {} completions",
                    fields.chosen,
                    chosen.len()
                ),
            ));
        }
        let num_chosen = chosen.len();
        let responses: Vec<Value> = chosen
            .into_iter()
            .chain(rejected)
            .map(Value::String)
            .collect();
        let mut shaped = Map::new();
        shaped.insert(fields.responses.clone(), Value::Array(responses));
        for (k, v) in object {
            if k != fields.responses && k != fields.messages {
                shaped.insert(k, v);
            }
        }
        match normalize(shaped, fields, index)? {
            Row::BestOfN(row) => Ok(MultiRow { row, num_chosen }),
            Row::Pairwise(_) => Err(RowError {
                field: None,
                message: "expected lists of chosen and rejected completions".into(),
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(lines: &[&str]) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".jsonl")
            .tempfile()
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        f
    }

    #[test]
    fn reads_lists_and_checks_num_correct() {
        let f = file(&[
            r#"{"id": "a", "prompt": "q", "chosen": ["x"], "rejected": ["y", "z"], "num_correct": 1, "subset": "Math"}"#,
            r#"{"id": "tied:1", "prompt": "q", "chosen": ["x", "w"], "rejected": ["y"], "subset": "Ties"}"#,
        ]);
        let o = ReadOptions::default();
        assert!(has_multi_rows(f.path(), &o).unwrap());
        let rows = read_multi(f.path(), &o).unwrap().rows;
        assert_eq!(rows[0].row.responses, ["x", "y", "z"]);
        assert_eq!(rows[0].num_chosen, 1);
        assert_eq!(rows[0].rejected(), ["y", "z"]);
        assert_eq!(rows[0].row.subset.as_deref(), Some("Math"));
        assert_eq!(rows[1].num_chosen, 2);

        let bad = file(&[
            r#"{"id": "a", "prompt": "q", "chosen": ["x"], "rejected": ["y"], "num_correct": 2}"#,
        ]);
        let e = read_multi(bad.path(), &o).unwrap_err().to_string();
        assert!(e.contains("num_correct"), "{e}");
        let pairwise = file(&[r#"{"id": "a", "prompt": "q", "chosen": "x", "rejected": "y"}"#]);
        assert!(!has_multi_rows(pairwise.path(), &o).unwrap());
        assert!(read_multi(pairwise.path(), &o).is_err());
    }
}
