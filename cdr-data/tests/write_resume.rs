//! Writers: incremental JSONL and Parquet outputs, resume after a crash, `fresh`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use cdr_data::{
    DataError, Format, Message, Position, PreferencePair, RecordWriter, WriteOptions, journal_path,
    read_records,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A caller-defined scored row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Scored {
    id: String,
    score: f64,
    token_logprobs: Vec<f64>,
    subset: Option<String>,
}

fn scored(i: usize) -> Scored {
    Scored {
        id: format!("r{i}"),
        score: i as f64 * 0.5 - 1.0,
        token_logprobs: vec![-0.25; i % 3],
        subset: i.is_multiple_of(2).then(|| "even".to_string()),
    }
}

fn pair(i: usize) -> PreferencePair {
    PreferencePair::new(
        format!("p{i}"),
        vec![Message::system("S"), Message::user(format!("Q{i}"))],
        format!("good {i}"),
        format!("bad {i}"),
        -1.0 + i as f64,
        -2.5,
    )
    .with_extra("subset", "s")
}

fn open(path: &Path) -> RecordWriter {
    RecordWriter::open(path, &WriteOptions::default()).unwrap()
}

fn ids_of(records: &[Scored]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn append_raw(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// The part of a run that finds what is done and writes the rest.
fn run(path: &Path, rows: std::ops::Range<usize>) -> usize {
    let mut writer = open(path);
    let mut written = 0;
    for i in rows {
        let record = scored(i);
        if writer.contains(&record.id) {
            continue;
        }
        writer.write(&record).unwrap();
        written += 1;
    }
    writer.finish().unwrap();
    written
}

#[test]
fn jsonl_round_trip_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    assert_eq!(run(&path, 0..3), 3);

    let writer = open(&path);
    assert_eq!(writer.resumed(), 3);
    assert_eq!(
        writer.ids(),
        &["r0", "r1", "r2"]
            .map(String::from)
            .into_iter()
            .collect::<HashSet<_>>()
    );
    drop(writer);

    // A rerun over an overlapping range writes only what is missing.
    assert_eq!(run(&path, 1..6), 3);
    let records: Vec<Scored> = read_records(&path, None).unwrap();
    assert_eq!(records, (0..6).map(scored).collect::<Vec<_>>());
}

#[test]
fn resume_after_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    run(&path, 0..3);
    // The process died halfway through writing r3.
    let line = serde_json::to_string(&scored(3)).unwrap();
    append_raw(&path, &line.as_bytes()[..line.len() / 2]);

    let writer = open(&path);
    assert_eq!(writer.resumed(), 3);
    assert!(!writer.contains("r3"));
    drop(writer);
    assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));

    assert_eq!(run(&path, 0..5), 2);
    let records: Vec<Scored> = read_records(&path, None).unwrap();
    assert_eq!(ids_of(&records), ["r0", "r1", "r2", "r3", "r4"]);
}

#[test]
fn complete_record_without_newline_counts_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    run(&path, 0..2);
    append_raw(&path, serde_json::to_string(&scored(2)).unwrap().as_bytes());
    let writer = open(&path);
    assert!(!writer.contains("r2"));
    assert_eq!(writer.len(), 2);
}

#[test]
fn unparsable_last_line_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    run(&path, 0..2);
    append_raw(&path, b"\0\0\0\0{\"id\": \n");
    let writer = open(&path);
    assert_eq!(writer.resumed(), 2);
    drop(writer);
    assert_eq!(run(&path, 0..3), 1);
    let records: Vec<Scored> = read_records(&path, None).unwrap();
    assert_eq!(ids_of(&records), ["r0", "r1", "r2"]);
}

#[test]
fn unparsable_line_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    run(&path, 0..1);
    append_raw(&path, b"{broken\n");
    append_raw(
        &path,
        format!("{}\n", serde_json::to_string(&scored(5)).unwrap()).as_bytes(),
    );
    let before = std::fs::read(&path).unwrap();

    let error = RecordWriter::open(&path, &WriteOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Parse { .. }), "{error:?}");
    assert_eq!(error.position(), Some(Position::Line(2)));
    assert!(
        error.to_string().contains("scores.jsonl, line 2"),
        "{error}"
    );
    // Nothing was dropped or cut.
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn duplicate_ids_in_an_output_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    run(&path, 0..2);
    append_raw(
        &path,
        format!("{}\n", serde_json::to_string(&scored(0)).unwrap()).as_bytes(),
    );
    let error = RecordWriter::open(&path, &WriteOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::DuplicateId { .. }), "{error:?}");
}

#[test]
fn fresh_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["scores.jsonl", "scores.parquet"] {
        let path = dir.path().join(name);
        run(&path, 0..4);
        let options = WriteOptions {
            fresh: true,
            ..WriteOptions::default()
        };
        let mut writer = RecordWriter::open(&path, &options).unwrap();
        assert_eq!(writer.resumed(), 0);
        writer.write(&scored(9)).unwrap();
        writer.finish().unwrap();
        let records: Vec<Scored> = read_records(&path, None).unwrap();
        assert_eq!(ids_of(&records), ["r9"], "{name}");
    }
}

#[test]
fn records_need_a_unique_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut writer = open(&path);
    writer.write(&json!({"id": 7, "x": 1})).unwrap();
    assert!(writer.contains("7"));

    let error = writer.write(&json!({"id": 7, "x": 2})).unwrap_err();
    assert!(
        matches!(error, DataError::DuplicateRecord { .. }),
        "{error:?}"
    );
    let error = writer.write(&json!({"x": 2})).unwrap_err();
    assert!(error.to_string().contains("no `id` field"), "{error}");
    let error = writer.write(&json!({"id": [1], "x": 2})).unwrap_err();
    assert!(matches!(error, DataError::Record { .. }), "{error:?}");
    let error = writer.write(&json!(["not", "an", "object"])).unwrap_err();
    assert!(matches!(error, DataError::Record { .. }), "{error:?}");
    let error = writer
        .write_batch(&[json!({"id": "a"}), json!({"id": "a"})])
        .unwrap_err();
    assert!(
        matches!(error, DataError::DuplicateRecord { .. }),
        "{error:?}"
    );
    assert!(!writer.contains("a"));
    writer.finish().unwrap();

    let records: Vec<Value> = read_records(&path, None).unwrap();
    assert_eq!(records, vec![json!({"id": 7, "x": 1})]);
}

#[test]
fn custom_id_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let options = WriteOptions {
        id_field: "uid".into(),
        ..WriteOptions::default()
    };
    let mut writer = RecordWriter::open(&path, &options).unwrap();
    writer.write(&json!({"uid": "a", "id": 1})).unwrap();
    writer.finish().unwrap();
    let writer = RecordWriter::open(&path, &options).unwrap();
    assert!(writer.contains("a"));
}

#[test]
fn write_batch_lands_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    let mut writer = open(&path);
    let batch: Vec<Scored> = (0..4).map(scored).collect();
    writer.write_batch(&batch).unwrap();
    writer.write_batch(&[] as &[Scored]).unwrap();
    assert_eq!(writer.len(), 4);
    writer.finish().unwrap();
    assert_eq!(read_records::<Scored>(&path, None).unwrap(), batch);
}

#[test]
fn json_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error =
        RecordWriter::open(dir.path().join("out.json"), &WriteOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Format { .. }), "{error:?}");
    let error = RecordWriter::open(dir.path().join("out"), &WriteOptions::default()).unwrap_err();
    assert!(matches!(error, DataError::Format { .. }), "{error:?}");
    // An explicit format works whatever the name.
    let options = WriteOptions {
        format: Some(Format::Jsonl),
        ..WriteOptions::default()
    };
    RecordWriter::open(dir.path().join("out"), &options).unwrap();
}

#[test]
fn pairs_in_trl_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.jsonl");
    let mut writer = open(&path);
    writer.write(&pair(1)).unwrap();
    writer.finish().unwrap();
    let line: Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(
        line,
        json!({
            "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}],
            "chosen": [{"role": "assistant", "content": "good 1"}],
            "rejected": [{"role": "assistant", "content": "bad 1"}],
            "score_chosen": 0.0,
            "score_rejected": -2.5,
            "id": "p1",
            "subset": "s",
        })
    );
}

fn parquet_columns(path: &Path) -> Vec<String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn parquet_output_through_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.parquet");
    let journal = journal_path(&path);
    assert_eq!(journal, dir.path().join("pairs.parquet.partial.jsonl"));

    // First run: killed after three rows (dropped without finish).
    let mut writer = open(&path);
    for i in 0..3 {
        writer.write(&pair(i)).unwrap();
    }
    drop(writer);
    assert!(journal.exists());
    assert!(!path.exists());
    // ...in the middle of the fourth.
    let line = serde_json::to_string(&pair(3)).unwrap();
    append_raw(&journal, &line.as_bytes()[..40]);

    // Second run resumes from the journal.
    let mut writer = open(&path);
    assert_eq!(writer.resumed(), 3);
    for i in 0..5 {
        let pair = pair(i);
        if !writer.contains(&pair.id) {
            writer.write(&pair).unwrap();
        }
    }
    assert_eq!(writer.finish().unwrap(), 5);
    assert!(path.exists());
    assert!(!journal.exists());

    let pairs: Vec<PreferencePair> = read_records(&path, None).unwrap();
    assert_eq!(pairs, (0..5).map(pair).collect::<Vec<_>>());
    assert_eq!(
        parquet_columns(&path),
        [
            "prompt",
            "chosen",
            "rejected",
            "score_chosen",
            "score_rejected",
            "id",
            "subset"
        ]
    );
}

#[test]
fn finished_parquet_output_resumes_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.parquet");
    assert_eq!(run(&path, 0..3), 3);
    assert!(!journal_path(&path).exists());

    // Nothing to add: the finished file is left as it is.
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    assert_eq!(run(&path, 0..3), 0);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );

    // More rows: the finished file is read back into a journal and rewritten.
    assert_eq!(run(&path, 2..6), 3);
    assert!(!journal_path(&path).exists());
    let records: Vec<Scored> = read_records(&path, None).unwrap();
    assert_eq!(records, (0..6).map(scored).collect::<Vec<_>>());
    assert_eq!(
        parquet_columns(&path),
        ["id", "score", "token_logprobs", "subset"]
    );
}

#[test]
fn parquet_journal_wins_over_a_stale_parquet_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.parquet");
    run(&path, 0..2);
    // A later run reopened it, appended, and died before finishing: the journal has it all.
    let mut writer = open(&path);
    writer.write(&scored(2)).unwrap();
    drop(writer);
    assert!(path.exists() && journal_path(&path).exists());

    let writer = open(&path);
    assert_eq!(writer.len(), 3);
    writer.finish().unwrap();
    let records: Vec<Scored> = read_records(&path, None).unwrap();
    assert_eq!(ids_of(&records), ["r0", "r1", "r2"]);
}

#[test]
fn parquet_mixed_types_become_json_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    let mut writer = open(&path);
    writer
        .write(&json!({"id": 1, "meta": "text", "n": 1, "empty": {}}))
        .unwrap();
    writer
        .write(&json!({"id": 2, "meta": {"k": [1, 2]}, "n": 2.5, "none": null}))
        .unwrap();
    writer.finish().unwrap();
    let records: Vec<Value> = read_records(&path, None).unwrap();
    assert_eq!(records[0]["id"], json!(1));
    assert_eq!(records[0]["meta"], json!("\"text\""));
    assert_eq!(records[1]["meta"], json!("{\"k\":[1,2]}"));
    assert_eq!(records[0]["n"], json!(1.0));
    assert_eq!(records[1]["n"], json!(2.5));
    assert_eq!(records[0]["empty"], json!("{}"));
    assert_eq!(records[1]["none"], json!(null));
}

#[test]
fn empty_parquet_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    let writer = open(&path);
    assert_eq!(writer.finish().unwrap(), 0);
    assert!(path.exists());
    let records: Vec<Value> = read_records(&path, None).unwrap();
    assert!(records.is_empty());
    let writer = open(&path);
    assert!(writer.is_empty());
}
