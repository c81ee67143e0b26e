//! Bad input is reported with file, position and field; `skip_invalid` steps over it.

mod common;

use std::path::{Path, PathBuf};

use cdr_data::{
    DataError, Format, Position, ReadOptions, read_best_of_n, read_pairwise, read_rows,
};
use common::{messages, strings, write_parquet};

fn jsonl(dir: &Path, lines: &[&str]) -> PathBuf {
    let path = dir.join("input.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The error for a one-row JSONL file.
fn row_error(line: &str) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    let path = jsonl(dir.path(), &[line]);
    read_rows(&path, &ReadOptions::default()).unwrap_err()
}

#[track_caller]
fn assert_field_error(error: DataError, field: &str, needle: &str) {
    let text = error.to_string();
    assert!(
        matches!(error, DataError::Row { .. }),
        "expected a row error, got {error:?}"
    );
    assert_eq!(error.field(), Some(field), "{text}");
    assert!(text.contains(needle), "`{text}` should mention `{needle}`");
    assert!(text.contains("input.jsonl, line 1"), "{text}");
    assert!(text.contains(&format!("field `{field}`")), "{text}");
}

#[test]
fn malformed_jsonl_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = jsonl(
        dir.path(),
        &[
            r#"{"prompt": "a", "chosen": "b", "rejected": "c"}"#,
            "",
            r#"{"prompt": "a", "chosen": "b", "rejected": "c""#,
        ],
    );
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Parse { .. }), "{error:?}");
    assert_eq!(error.path(), path);
    // Blank lines count: line numbers are what an editor shows.
    assert_eq!(error.position(), Some(Position::Line(3)));
    let text = error.to_string();
    assert!(text.contains("input.jsonl, line 3: invalid JSON"), "{text}");
}

#[test]
fn missing_field() {
    let error = row_error(r#"{"prompt": "p", "chosen": "c"}"#);
    assert_field_error(error, "rejected", "missing required field");
    let error = row_error(r#"{"chosen": "c", "rejected": "r"}"#);
    assert_field_error(error, "prompt", "missing required field");
}

#[test]
fn no_response_column() {
    let error = row_error(r#"{"prompt": "p", "answer": "c"}"#);
    assert!(error.to_string().contains("no response column"), "{error}");
    assert_eq!(error.field(), None);
}

#[test]
fn empty_response() {
    let error = row_error(r#"{"prompt": "p", "chosen": "  \n ", "rejected": "r"}"#);
    assert_field_error(error, "chosen", "empty response");
    let error = row_error(
        r#"{"prompt": "p", "chosen": [{"role": "assistant", "content": " "}], "rejected": "r"}"#,
    );
    assert_field_error(error, "chosen", "empty response");
    let error = row_error(r#"{"prompt": "p", "responses": ["ok", ""]}"#);
    assert_field_error(error, "responses[1]", "empty response");
    let error = row_error(r#"{"prompt": "p", "responses": []}"#);
    assert_field_error(error, "responses", "no responses");
}

#[test]
fn wrong_type() {
    let error = row_error(r#"{"prompt": "p", "chosen": 5, "rejected": "r"}"#);
    assert_field_error(
        error,
        "chosen",
        "expected a string or a list of messages, got an integer",
    );
    let error = row_error(r#"{"id": 1.5, "prompt": "p", "chosen": "c", "rejected": "r"}"#);
    assert_field_error(error, "id", "expected a string or an integer, got a float");
    let error = row_error(r#"{"prompt": "p", "chosen": "c", "rejected": "r", "subset": 3}"#);
    assert_field_error(error, "subset", "expected a string");
    let error = row_error(r#"{"prompt": {"text": "p"}, "chosen": "c", "rejected": "r"}"#);
    assert_field_error(error, "prompt", "got an object");
    let error = row_error(
        r#"{"prompt": [{"role": "user", "content": ["a"]}], "chosen": "c", "rejected": "r"}"#,
    );
    assert_field_error(error, "prompt[0].content", "expected a string, got a list");
    let error = row_error(r#"{"prompt": "p", "responses": "one"}"#);
    assert_field_error(error, "responses", "expected a list of responses");
}

#[test]
fn empty_prompt() {
    let error = row_error(r#"{"prompt": " ", "chosen": "c", "rejected": "r"}"#);
    assert_field_error(error, "prompt", "empty prompt");
    let error = row_error(r#"{"prompt": [], "chosen": "c", "rejected": "r"}"#);
    assert_field_error(error, "prompt", "empty prompt");
    // A conversation that is only the response has nothing to condition on.
    let error = row_error(
        r#"{"chosen": [{"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "r"}]}"#,
    );
    assert_field_error(error, "prompt", "empty prompt");
}

#[test]
fn bad_role() {
    let error = row_error(
        r#"{"prompt": [{"role": "tool", "content": "x"}], "chosen": "c", "rejected": "r"}"#,
    );
    assert_field_error(
        error,
        "prompt[0].role",
        "role `tool` is not one of system, user, assistant",
    );
}

#[test]
fn final_message_must_be_assistant() {
    let error = row_error(
        r#"{"prompt": "p", "messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}]}"#,
    );
    assert_field_error(
        error,
        "messages",
        "last message must be from the assistant, got `user`",
    );
    let error = row_error(
        r#"{"chosen": [{"role": "user", "content": "u"}], "rejected": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "r"}]}"#,
    );
    assert_field_error(error, "chosen", "last message must be from the assistant");
}

#[test]
fn chosen_and_rejected_must_share_the_conversation() {
    let error = row_error(
        r#"{"chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "c"}], "rejected": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "r"}]}"#,
    );
    assert_field_error(
        error,
        "rejected",
        "different conversation than `chosen` (they differ at message 0)",
    );
}

#[test]
fn response_list_must_repeat_or_follow_the_prompt() {
    // The conversation has a system turn the prompt lacks: neither form, so not glued together.
    let error = row_error(
        r#"{"prompt": "Hi", "chosen": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "c"}], "rejected": "r"}"#,
    );
    assert_field_error(error, "chosen[0]", "does not start with the prompt");
    // `messages` may continue the prompt with further turns.
    let dir = tempfile::tempdir().unwrap();
    let path = jsonl(
        dir.path(),
        &[
            r#"{"prompt": "Hi", "messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "more"}, {"role": "assistant", "content": "b"}]}"#,
        ],
    );
    let rows = read_best_of_n(&path, &ReadOptions::default()).unwrap().rows;
    assert_eq!(rows[0].prompt.len(), 3);
    assert_eq!(rows[0].responses, ["b"]);
}

#[test]
fn duplicate_ids_name_both_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = jsonl(
        dir.path(),
        &[
            r#"{"id": "a", "prompt": "p", "chosen": "c", "rejected": "r"}"#,
            r#"{"id": "b", "prompt": "p", "chosen": "c", "rejected": "r"}"#,
            r#"{"id": "a", "prompt": "p", "chosen": "c", "rejected": "r"}"#,
        ],
    );
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    match &error {
        DataError::DuplicateId {
            id, first, second, ..
        } => {
            assert_eq!(id, "a");
            assert_eq!(*first, Position::Line(1));
            assert_eq!(*second, Position::Line(3));
        }
        other => panic!("expected a duplicate-id error, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("duplicate id `a` at line 3 (first at line 1)"),
        "{text}"
    );
}

#[test]
fn explicit_id_can_collide_with_a_derived_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = jsonl(
        dir.path(),
        &[
            r#"{"prompt": "p", "chosen": "c", "rejected": "r"}"#,
            r#"{"id": "row-0", "prompt": "p", "chosen": "c", "rejected": "r"}"#,
        ],
    );
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::DuplicateId { .. }), "{error:?}");
}

#[test]
fn skip_invalid_collects_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = jsonl(
        dir.path(),
        &[
            r#"{"prompt": "p", "chosen": "c", "rejected": "r"}"#,
            r#"{"prompt": "p", "chosen": "c""#,
            r#"{"prompt": "p", "chosen": "", "rejected": "r"}"#,
            r#"[1, 2]"#,
            r#"{"id": "row-0", "prompt": "p", "chosen": "c", "rejected": "r"}"#,
            r#"{"prompt": "q", "chosen": "c2", "rejected": "r2"}"#,
        ],
    );
    let options = ReadOptions {
        skip_invalid: true,
        ..ReadOptions::default()
    };
    let outcome = read_pairwise(&path, &options).unwrap();
    let ids: Vec<&str> = outcome.rows.iter().map(|r| r.id.as_str()).collect();
    // Derived ids count skipped rows too, so they match the file whatever is skipped.
    assert_eq!(ids, ["row-0", "row-5"]);
    let positions: Vec<Position> = outcome.skipped.iter().map(|s| s.position).collect();
    assert_eq!(
        positions,
        [
            Position::Line(2),
            Position::Line(3),
            Position::Line(4),
            Position::Line(5)
        ]
    );
    assert!(outcome.skipped[0].message.contains("invalid JSON"));
    assert_eq!(outcome.skipped[1].field.as_deref(), Some("chosen"));
    assert!(outcome.skipped[1].message.contains("empty response"));
    assert!(
        outcome.skipped[2]
            .message
            .contains("expected a JSON object, got a list")
    );
    assert!(outcome.skipped[3].message.contains("duplicate id `row-0`"));
}

#[test]
fn shape_mismatch_is_a_row_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = jsonl(
        dir.path(),
        &[
            r#"{"prompt": "p", "chosen": "c", "rejected": "r"}"#,
            r#"{"prompt": "p", "responses": ["a", "b"]}"#,
        ],
    );
    let error = read_pairwise(&path, &ReadOptions::default()).unwrap_err();
    assert_eq!(error.position(), Some(Position::Line(2)));
    assert!(
        error.to_string().contains("expected a pairwise row"),
        "{error}"
    );
    let error = read_best_of_n(&path, &ReadOptions::default()).unwrap_err();
    assert_eq!(error.position(), Some(Position::Line(1)));
    assert!(
        error.to_string().contains("expected a best-of-N row"),
        "{error}"
    );
}

#[test]
fn json_errors_name_the_array_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(
        &path,
        r#"[{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "p", "chosen": "c", "rejected": 1}]"#,
    )
    .unwrap();
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert_eq!(error.position(), Some(Position::Index(1)));
    assert_eq!(error.field(), Some("rejected"));
    assert!(
        error
            .to_string()
            .contains("input.json, index 1, field `rejected`"),
        "{error}"
    );

    std::fs::write(&path, r#"{"prompt": "p"}"#).unwrap();
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("top-level JSON array"),
        "{error}"
    );

    std::fs::write(&path, r#"[{"prompt": "p",]"#).unwrap();
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(error, DataError::Parse { position: None, .. }),
        "{error:?}"
    );
}

#[test]
fn parquet_errors_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.parquet");
    let good = [("assistant", "fine")];
    let bad = [("user", "oops")];
    write_parquet(
        &path,
        vec![
            ("prompt", strings(&[Some("p"), Some("q"), Some("r")])),
            ("chosen", messages(&[Some(&good), Some(&good), Some(&bad)])),
            ("rejected", strings(&[Some("x"), Some(" "), Some("z")])),
        ],
    );
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert_eq!(error.position(), Some(Position::Row(1)));
    assert_eq!(error.field(), Some("rejected"));
    assert!(
        error
            .to_string()
            .contains("input.parquet, row 1, field `rejected`: empty response"),
        "{error}"
    );

    let options = ReadOptions {
        skip_invalid: true,
        ..ReadOptions::default()
    };
    let outcome = read_rows(&path, &options).unwrap();
    assert_eq!(outcome.rows.len(), 1);
    assert_eq!(outcome.rows[0].id(), "row-0");
    assert_eq!(outcome.skipped.len(), 2);
    assert_eq!(outcome.skipped[1].position, Position::Row(2));
    assert_eq!(outcome.skipped[1].field.as_deref(), Some("chosen[0]"));
}

#[test]
fn not_a_parquet_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.parquet");
    std::fs::write(&path, "not parquet").unwrap();
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Parse { .. }), "{error:?}");
    assert_eq!(error.path(), path);
}

#[test]
fn missing_file_and_unknown_extension() {
    let dir = tempfile::tempdir().unwrap();
    let error = read_rows(dir.path().join("absent.jsonl"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("absent.jsonl"), "{error}");

    let path = dir.path().join("rows.txt");
    std::fs::write(&path, r#"{"prompt": "p", "chosen": "c", "rejected": "r"}"#).unwrap();
    let error = read_rows(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Format { .. }), "{error:?}");
    // An explicit format overrides the extension.
    let options = ReadOptions {
        format: Some(Format::Jsonl),
        ..ReadOptions::default()
    };
    assert_eq!(read_rows(&path, &options).unwrap().rows.len(), 1);
}
