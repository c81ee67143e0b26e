//! `merge` at the library level: shard files written by hand, so every refusal can be provoked
//! without models; a Parquet merge holds the same records as the JSONL one.

use std::path::{Path, PathBuf};

use cdr_data::{ReadOptions, Shard, merge, read_ids, read_records};
use serde_json::{Value, json};

fn rows() -> Vec<Value> {
    (0..30)
        .map(
            |i| json!({"id": format!("r{i}"), "reward": i as f64 / 7.0, "note": "x".repeat(i % 5)}),
        )
        .collect()
}

/// The input (ids only matter) and three complete shard outputs of `scores.jsonl`.
fn setup(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let input = dir.join("input.jsonl");
    let text: String = rows()
        .iter()
        .map(|r| {
            format!(
                "{}\n",
                json!({"id": r["id"], "prompt": "p", "chosen": "a", "rejected": "b"})
            )
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let mut files = Vec::new();
    for i in 0..3 {
        let shard = Shard::new(i, 3).unwrap();
        let path = shard.output_path(&dir.join("scores.jsonl"));
        let lines: String = rows()
            .iter()
            .filter(|r| shard.contains(r["id"].as_str().unwrap()))
            .map(|r| format!("{r}\n"))
            .collect();
        std::fs::write(&path, lines).unwrap();
        shard.mark_complete(&path, &input, 0).unwrap();
        files.push(path);
    }
    (input, files)
}

#[test]
fn merge_restores_input_order_in_jsonl_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let (input, files) = setup(dir.path());
    let opts = ReadOptions::default();
    assert_eq!(read_ids(&input, &opts).unwrap().len(), 30);
    let out = dir.path().join("merged.jsonl");
    let summary = merge(&input, &opts, &files, &out).unwrap();
    assert_eq!((summary.shards, summary.rows), (3, 30));
    let expected: String = rows().iter().map(|r| format!("{r}\n")).collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);

    let parquet = dir.path().join("merged.parquet");
    merge(&input, &opts, &files, &parquet).unwrap();
    let back: Vec<Value> = read_records(&parquet, None).unwrap();
    assert_eq!(back, rows());
}

#[test]
fn damaged_or_foreign_shards_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, files) = setup(dir.path());
    let opts = ReadOptions::default();
    let out = dir.path().join("merged.jsonl");

    // Cut short after the run finished.
    let saved = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &saved[..saved.len() - 3]).unwrap();
    let e = merge(&input, &opts, &files, &out).unwrap_err().to_string();
    assert!(e.contains("cut short") || e.contains("invalid JSON"), "{e}");
    std::fs::write(&files[1], &saved).unwrap();

    // A row the input does not have.
    let mut extra = saved.clone();
    let foreign = (0..)
        .map(|i| format!("zz{i}"))
        .find(|id| Shard::owner(id, 3) == 1)
        .unwrap();
    extra.extend(format!("{}\n", json!({"id": foreign, "reward": 0.0})).bytes());
    std::fs::write(&files[1], &extra).unwrap();
    let e = merge(&input, &opts, &files, &out).unwrap_err().to_string();
    assert!(e.contains("is not in") && e.contains(&foreign), "{e}");
    std::fs::write(&files[1], &saved).unwrap();

    // A marker edited to claim an index past the count.
    let marker = Shard::marker_path(&files[2]);
    let text = std::fs::read_to_string(&marker).unwrap();
    std::fs::write(&marker, text.replace("\"index\": 2", "\"index\": 7")).unwrap();
    let e = merge(&input, &opts, &files, &out).unwrap_err().to_string();
    assert!(e.contains("out of range"), "{e}");

    assert!(!out.exists(), "a refused merge writes nothing");
    assert!(merge(&input, &opts, &[], &out).is_err());
}
