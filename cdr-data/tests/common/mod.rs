//! Shared test helpers: writing inputs in every format, and building Arrow columns the way
//! pyarrow / `datasets` lay them out.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields};
use cdr_data::{Format, Message};
use parquet::arrow::ArrowWriter;
use serde_json::Value;

pub fn msg(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

/// Writes `rows` (JSON objects) to `dir/name.<ext>` as JSONL or JSON.
pub fn write_json_rows(dir: &Path, name: &str, format: Format, rows: &[Value]) -> PathBuf {
    match format {
        Format::Jsonl => {
            let path = dir.join(format!("{name}.jsonl"));
            let text: String = rows.iter().map(|row| format!("{row}\n")).collect();
            std::fs::write(&path, text).unwrap();
            path
        }
        Format::Json => {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(rows).unwrap()).unwrap();
            path
        }
        Format::Parquet => panic!("use write_parquet"),
    }
}

/// Writes the named columns as one Parquet file.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch =
        RecordBatch::try_from_iter(columns.into_iter().map(|(n, a)| (n.to_string(), a))).unwrap();
    let file = File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

pub fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

pub fn ints(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn message_struct(messages: &[(&str, &str)]) -> StructArray {
    let fields = Fields::from(vec![
        Field::new("role", DataType::Utf8, true),
        Field::new("content", DataType::Utf8, true),
    ]);
    let roles: Vec<Option<&str>> = messages.iter().map(|(r, _)| Some(*r)).collect();
    let contents: Vec<Option<&str>> = messages.iter().map(|(_, c)| Some(*c)).collect();
    StructArray::try_new(fields, vec![strings(&roles), strings(&contents)], None).unwrap()
}

fn list_of(child: ArrayRef, lengths: Vec<usize>, valid: Vec<bool>) -> ArrayRef {
    let field = Arc::new(Field::new("item", child.data_type().clone(), true));
    Arc::new(
        ListArray::try_new(
            field,
            OffsetBuffer::from_lengths(lengths),
            child,
            Some(NullBuffer::from(valid)),
        )
        .unwrap(),
    )
}

/// `list<struct<role, content>>`, one message list per row (`None`: null).
pub fn messages(rows: &[Option<&[(&str, &str)]>]) -> ArrayRef {
    let flat: Vec<(&str, &str)> = rows
        .iter()
        .flatten()
        .flat_map(|m| m.iter().copied())
        .collect();
    let lengths = rows.iter().map(|r| r.map_or(0, |m| m.len())).collect();
    let valid = rows.iter().map(Option::is_some).collect();
    list_of(Arc::new(message_struct(&flat)), lengths, valid)
}

/// `list<string>`.
pub fn string_lists(rows: &[&[&str]]) -> ArrayRef {
    let flat: Vec<Option<&str>> = rows
        .iter()
        .flat_map(|r| r.iter().map(|s| Some(*s)))
        .collect();
    let lengths = rows.iter().map(|r| r.len()).collect();
    list_of(strings(&flat), lengths, vec![true; rows.len()])
}

/// `list<list<struct<role, content>>>`: best-of-N responses as conversations.
pub fn message_lists(rows: &[&[&[(&str, &str)]]]) -> ArrayRef {
    let inner: Vec<Option<&[(&str, &str)]>> = rows
        .iter()
        .flat_map(|r| r.iter().map(|m| Some(*m)))
        .collect();
    let lengths = rows.iter().map(|r| r.len()).collect();
    list_of(messages(&inner), lengths, vec![true; rows.len()])
}
