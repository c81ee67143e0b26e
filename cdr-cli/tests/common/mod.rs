//! Helpers shared by the `cdr` binary's end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tiny fixture model directory.
pub fn model(name: &str) -> String {
    root()
        .join("cdr-models/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// The small pairwise set the Python reference scores.
pub fn pairs() -> PathBuf {
    root().join("cdr-core/tests/fixtures/pairs.jsonl")
}

/// Runs `cdr ARGS --quiet`.
pub fn cdr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cdr"))
        .args(args)
        .arg("--quiet")
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
