//! A write that runs out of space fails with the output named and leaves the file at a row
//! boundary, so a later run resumes cleanly.
//!
//! "Disk full" is simulated with `RLIMIT_FSIZE` (writes past the limit fail with `EFBIG`, after
//! a partial write) in a child process, so the limit cannot touch other tests or the harness.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use cdr_data::{DataError, RecordWriter, WriteOptions, read_records};
use serde_json::{Value, json};

const CHILD: &str = "CDR_DATA_DISK_FULL_CHILD";
/// Not a multiple of the row size, so the failing write is a partial one.
const LIMIT: u64 = 4096 + 37;

fn record(i: usize) -> Value {
    json!({"id": format!("r{i}"), "score": i as f64 / 8.0, "text": "x".repeat(60 + i % 7)})
}

#[test]
fn write_error_leaves_a_row_boundary() {
    if let Some(path) = std::env::var_os(CHILD) {
        run_with_limit(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.jsonl");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "write_error_leaves_a_row_boundary",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, &path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Space is back: the next run resumes exactly where the failed one stopped.
    let mut writer = RecordWriter::open(&path, &WriteOptions::default()).unwrap();
    let resumed = writer.resumed();
    assert!(resumed > 0 && resumed < 100, "{resumed}");
    for i in 0..100 {
        let record = record(i);
        let id = record["id"].as_str().unwrap().to_owned();
        assert_eq!(writer.contains(&id), i < resumed);
        if !writer.contains(&id) {
            writer.write(&record).unwrap();
        }
    }
    writer.finish().unwrap();
    let records: Vec<Value> = read_records(&path, None).unwrap();
    assert_eq!(records, (0..100).map(record).collect::<Vec<_>>());
}

fn run_with_limit(path: &Path) {
    // SAFETY: plain libc calls on this process only; no memory is shared with them.
    unsafe {
        // Without this the kernel kills the process instead of failing the write.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = LIMIT as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let mut writer = RecordWriter::open(path, &WriteOptions::default()).unwrap();
    let mut written = 0;
    let error = loop {
        match writer.write(&record(written)) {
            Ok(()) => written += 1,
            Err(error) => break error,
        }
        assert!(written < 1000, "the file size limit never hit");
    };
    assert!(matches!(error, DataError::Write { .. }), "{error:?}");
    assert_eq!(error.path(), path);
    assert!(error.to_string().contains("scores.jsonl"), "{error}");
    assert!(!writer.contains(&format!("r{written}")));

    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the file must end at a row boundary");
    assert_eq!(text.lines().count(), written);
    assert!(text.len() as u64 <= LIMIT);

    // Failing again (a whole batch this time) changes nothing either.
    let batch: Vec<Value> = (written..written + 3).map(record).collect();
    let error = writer.write_batch(&batch).unwrap_err();
    assert!(matches!(error, DataError::Write { .. }), "{error:?}");
    assert_eq!(std::fs::read_to_string(path).unwrap(), text);
    assert_eq!(writer.len(), written);
}
