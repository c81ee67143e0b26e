//! A per-process scratch file: the parsers under test read paths (they map or stream files), so
//! each input is written to disk first. tmpfs-backed /dev/shm keeps that cheap where it exists.

use std::path::PathBuf;

pub fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from("/dev/shm");
    let dir = if dir.is_dir() {
        dir
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("cdr-fuzz-{}-{name}", std::process::id()));
    // A failed write is the harness's problem, not a finding in the code under test.
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("scratch {}: {e}", path.display()));
    path
}
