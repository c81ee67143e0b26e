//! Hub-style inputs and outputs, offline: a dataset id read from a Hugging Face cache laid out in
//! a temporary directory, and a dataset-directory output (`--output DIR/`) read back by split.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cdr_data::{RecordWriter, WriteOptions};
use serde_json::Value;

mod common;
use common::*;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OLD_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// Runs `cdr score` with the fixture pair and only the hub variables in `env` set.
fn score(input: &str, output: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdr"));
    for var in [
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HOME",
        "XDG_CACHE_HOME",
        "HF_HUB_OFFLINE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HUB_OFFLINE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["score", "--input", input, "--output"])
        .arg(output)
        .args([
            "--strong",
            &model("llama_gqa"),
            "--weak",
            &model("llama_sharded"),
        ])
        .args(["--max-prompt-tokens", "256", "--max-response-tokens", "64"])
        .args(["--no-cache", "--quiet"])
        .output()
        .unwrap()
}

/// The fixture rows whose prompt is a string: a Parquet column holds one type, so these
/// round-trip exactly.
fn fixture_rows() -> Vec<Value> {
    let rows: Vec<Value> = jsonl(&pairs())
        .into_iter()
        .filter(|r| r["prompt"].is_string())
        .collect();
    assert!(rows.len() >= 8, "the fixture lost its string-prompt rows");
    rows
}

fn write_parquet(path: &Path, rows: &[Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = RecordWriter::open(path, &WriteOptions::default()).unwrap();
    for row in rows {
        writer.write(row).unwrap();
    }
    writer.finish().unwrap();
}

/// `hub/datasets--acme--prefs` as huggingface_hub leaves it: files in `blobs/`, symlinked from
/// `snapshots/<commit>/`, `refs/main` naming the commit. Split `train` holds the fixture rows in
/// two shards, `test` the first three; an older commit holds only a `train` of two rows.
fn hub_cache(root: &Path) -> PathBuf {
    let hub = root.join("hub");
    let repo = hub.join("datasets--acme--prefs");
    let rows = fixture_rows();
    let files: [(&str, &str, &[Value]); 4] = [
        (COMMIT, "data/train-00000-of-00002.parquet", &rows[..6]),
        (COMMIT, "data/train-00001-of-00002.parquet", &rows[6..]),
        (COMMIT, "data/test-00000-of-00001.parquet", &rows[..3]),
        (OLD_COMMIT, "data/train-00000-of-00001.parquet", &rows[..2]),
    ];
    for (i, (commit, name, rows)) in files.into_iter().enumerate() {
        let blob = repo.join("blobs").join(format!("blob{i}.parquet"));
        write_parquet(&blob, rows);
        let link = repo.join("snapshots").join(commit).join(name);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        // Relative, as huggingface_hub links them: the cache can move.
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            Path::new("../../..").join(blob.strip_prefix(&repo).unwrap()),
            &link,
        )
        .unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, &link).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    std::fs::write(repo.join("refs/v0"), OLD_COMMIT).unwrap();
    std::fs::write(
        repo.join(format!("snapshots/{COMMIT}/README.md")),
        "# not data\n",
    )
    .unwrap();
    hub
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn scored_ids(path: &Path) -> Vec<String> {
    ids(&jsonl(path))
}

#[test]
fn a_cached_dataset_is_read_by_id_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_cache(tmp.path());
    let rows = fixture_rows();

    // HF_HUB_CACHE, default split (train: both shards, in order), the same scores as the file.
    let out = tmp.path().join("train.jsonl");
    let o = score("acme/prefs", &out, &[("HF_HUB_CACHE", &hub)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(scored_ids(&out), ids(&rows));
    let file = tmp.path().join("rows.jsonl");
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let direct = tmp.path().join("direct.jsonl");
    let o = score(file.to_str().unwrap(), &direct, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(jsonl(&out), jsonl(&direct));

    // HF_HOME (cache in $HF_HOME/hub), a named split.
    let out = tmp.path().join("test.jsonl");
    let o = score("acme/prefs:test", &out, &[("HF_HOME", tmp.path())]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(scored_ids(&out), ids(&rows[..3]));

    // XDG_CACHE_HOME (cache in $XDG_CACHE_HOME/huggingface/hub), a revision by ref name and by
    // commit.
    let xdg = tmp.path().join("xdg");
    std::fs::create_dir_all(xdg.join("huggingface")).unwrap();
    std::fs::rename(&hub, xdg.join("huggingface/hub")).unwrap();
    for (n, spec) in ["acme/prefs@v0", &format!("acme/prefs@{OLD_COMMIT}:train")]
        .iter()
        .enumerate()
    {
        let out = tmp.path().join(format!("old{n}.jsonl"));
        let o = score(spec, &out, &[("XDG_CACHE_HOME", &xdg)]);
        assert!(o.status.success(), "{spec}: {}", stderr(&o));
        assert_eq!(scored_ids(&out), ids(&rows[..2]), "{spec}");
    }

    // What is not there is named: the split, the revision, the dataset with the cache path.
    let out = tmp.path().join("none.jsonl");
    let env = [("XDG_CACHE_HOME", xdg.as_path())];
    for (spec, says) in [
        (
            "acme/prefs:validation",
            "no split `validation` (splits: test, train)",
        ),
        ("acme/prefs@v9", "not at revision `v9`"),
        ("acme/other", "not in the local Hugging Face cache"),
    ] {
        let o = score(spec, &out, &env);
        assert!(!o.status.success(), "{spec}");
        assert!(stderr(&o).contains(says), "{spec}: {}", stderr(&o));
    }
    assert!(stderr(&score("acme/other", &out, &env)).contains("huggingface/hub"));
}

#[test]
fn a_dataset_directory_output_holds_each_split_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_cache(tmp.path());
    let dir = tmp.path().join("scored");
    let dir_arg = PathBuf::from(format!("{}/", dir.display()));
    let env = [("HF_HUB_CACHE", hub.as_path())];
    for split in ["test", "train"] {
        let o = score(&format!("acme/prefs:{split}"), &dir_arg, &env);
        assert!(o.status.success(), "{split}: {}", stderr(&o));
    }
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        card.starts_with("---\nconfigs:\n- config_name: default\n  data_files:\n")
            && card.contains(
                "  - split: \"test\"\n    path:\n    - \"data/test-00000-of-00001.parquet\"\n"
            )
            && card.contains(
                "  - split: \"train\"\n    path:\n    - \"data/train-00000-of-00001.parquet\"\n"
            ),
        "{card}"
    );
    for (split, rows) in [
        ("test", &fixture_rows()[..3]),
        ("train", &fixture_rows()[..]),
    ] {
        let file = dir.join(format!("data/{split}-00000-of-00001.parquet"));
        let scored: Vec<Value> = cdr_data::read_records(&file, None).unwrap();
        assert_eq!(ids(&scored), ids(rows), "{split}");
    }
    // The journal of a finished run is gone; nothing but the card and the splits is left.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "test-00000-of-00001.parquet",
            "train-00000-of-00001.parquet"
        ]
    );
}

#[test]
fn a_dataset_directory_is_read_by_split() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub_cache(tmp.path());
    let snapshot = hub.join(format!("datasets--acme--prefs/snapshots/{COMMIT}"));
    let rows = fixture_rows();
    for (spec, want) in [
        (snapshot.display().to_string(), &rows[..]),
        (format!("{}:test", snapshot.display()), &rows[..3]),
    ] {
        let out = tmp.path().join("out.jsonl");
        let o = score(&spec, &out, &[]);
        assert!(o.status.success(), "{spec}: {}", stderr(&o));
        assert_eq!(scored_ids(&out), ids(want), "{spec}");
        std::fs::remove_file(&out).unwrap();
    }
}
