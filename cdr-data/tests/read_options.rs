//! Renamed columns, and Parquet column types beyond the plain ones.

mod common;

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, DictionaryArray, Float64Array, LargeStringArray, StringViewArray,
};
use cdr_data::{DataError, Fields, ReadOptions, Row, read_pairwise, read_rows};
use common::{msg, strings, write_parquet};
use serde_json::json;

#[test]
fn renamed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    std::fs::write(
        &path,
        r#"{"uid": "u1", "question": "Q", "good": "yes", "bad": "no", "category": "c", "prompt": "kept"}"#,
    )
    .unwrap();
    let options = ReadOptions {
        fields: Fields {
            id: "uid".into(),
            prompt: "question".into(),
            chosen: "good".into(),
            rejected: "bad".into(),
            subset: "category".into(),
            ..Fields::default()
        },
        ..ReadOptions::default()
    };
    let rows = read_pairwise(&path, &options).unwrap().rows;
    assert_eq!(rows[0].id, "u1");
    assert_eq!(rows[0].prompt, vec![msg("user", "Q")]);
    assert_eq!(
        (rows[0].chosen.as_str(), rows[0].rejected.as_str()),
        ("yes", "no")
    );
    assert_eq!(rows[0].subset.as_deref(), Some("c"));
    // `prompt` is not a configured column any more, so it is an extra like any other.
    assert_eq!(rows[0].extra.get("prompt"), Some(&json!("kept")));
}

#[test]
fn parquet_large_view_and_dictionary_strings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.parquet");
    let prompt: ArrayRef = Arc::new(LargeStringArray::from(vec![Some("P0"), Some("P1")]));
    let chosen: ArrayRef = Arc::new(StringViewArray::from(vec![Some("c0"), Some("c1")]));
    let rejected: ArrayRef = Arc::new(
        vec![Some("same"), Some("same")]
            .into_iter()
            .collect::<DictionaryArray<Int32Type>>(),
    );
    let score: ArrayRef = Arc::new(Float64Array::from(vec![Some(0.5), None]));
    write_parquet(
        &path,
        vec![
            ("prompt", prompt),
            ("chosen", chosen),
            ("rejected", rejected),
            ("score", score),
        ],
    );
    let rows = read_pairwise(&path, &ReadOptions::default()).unwrap().rows;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].prompt, vec![msg("user", "P1")]);
    assert_eq!(rows[1].chosen, "c1");
    assert_eq!(rows[1].rejected, "same");
    assert_eq!(rows[0].extra.get("score"), Some(&json!(0.5)));
    assert_eq!(rows[1].extra.get("score"), Some(&json!(null)));
}

#[test]
fn parquet_unsupported_extra_column_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.parquet");
    let blob: ArrayRef = Arc::new(BinaryArray::from(vec![b"\x00\x01".as_ref()]));
    write_parquet(
        &path,
        vec![
            ("prompt", strings(&[Some("p")])),
            ("chosen", strings(&[Some("c")])),
            ("rejected", strings(&[Some("r")])),
            ("image", blob),
        ],
    );
    let rows = read_rows(&path, &ReadOptions::default()).unwrap().rows;
    let Row::Pairwise(row) = &rows[0] else {
        panic!("expected a pairwise row");
    };
    assert!(row.extra.is_empty());
}

#[test]
fn parquet_unsupported_known_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.parquet");
    let chosen: ArrayRef = Arc::new(BinaryArray::from(vec![b"c".as_ref()]));
    write_parquet(
        &path,
        vec![
            ("prompt", strings(&[Some("p")])),
            ("chosen", chosen),
            ("rejected", strings(&[Some("r")])),
        ],
    );
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Parse { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("column `chosen` has type Binary"),
        "{error}"
    );
}
