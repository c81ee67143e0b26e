//! In-memory rows (as the Python package hands them over) read like a file's rows.

use std::path::Path;

use cdr_data::{DataError, Position, ReadOptions, Row, read_rows, rows_from_values};
use serde_json::json;

#[test]
fn values_normalize_like_a_files_rows() {
    let values = vec![
        json!({"id": 7, "prompt": "Name a prime.", "chosen": "7", "rejected": "8"}),
        json!({"prompt": [{"role": "user", "content": "Hi"}], "responses": ["a", "b"]}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.jsonl");
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&file, text).unwrap();

    let from_values =
        rows_from_values(values, Path::new("<rows>"), &ReadOptions::default()).unwrap();
    let from_file = read_rows(&file, &ReadOptions::default()).unwrap();
    assert_eq!(from_values.rows, from_file.rows);
    assert!(matches!(&from_values.rows[1], Row::BestOfN(b) if b.id == "row-1"));
}

#[test]
fn errors_name_the_origin_index_and_field() {
    let values = vec![
        json!({"prompt": "q", "chosen": "a", "rejected": "b"}),
        json!({"prompt": "q", "chosen": "a"}),
        json!("not an object"),
    ];
    let err =
        rows_from_values(values.clone(), Path::new("<rows>"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(
        err,
        DataError::Row {
            position: Position::Index(1),
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with("<rows>, index 1, field `rejected`"),
        "{err}"
    );

    let options = ReadOptions {
        skip_invalid: true,
        ..ReadOptions::default()
    };
    let outcome = rows_from_values(values, Path::new("<rows>"), &options).unwrap();
    assert_eq!(outcome.rows.len(), 1);
    let positions: Vec<Position> = outcome.skipped.iter().map(|s| s.position).collect();
    assert_eq!(positions, [Position::Index(1), Position::Index(2)]);
}

#[test]
fn duplicate_ids_are_refused() {
    let values = vec![
        json!({"id": "x", "prompt": "q", "responses": ["a"]}),
        json!({"id": "x", "prompt": "q", "responses": ["b"]}),
    ];
    let err = rows_from_values(values, Path::new("<rows>"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::DuplicateId { .. }), "{err}");
}
