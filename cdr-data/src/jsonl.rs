//! JSONL input: one JSON object per line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use crate::error::{DataError, Position, Result};
use crate::id::strip_location;

/// Calls `each` with every non-blank line of `path`: its 1-based line number and either the
/// parsed text or why the line is not valid JSON (a per-row problem, so `skip_invalid` can step
/// over it).
pub(crate) fn for_each_line(
    path: &Path,
    mut each: impl FnMut(Position, Result<Value, String>) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        // Bytes, not `read_line`: one line of bad UTF-8 should fail that row, not the file.
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::read(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let parsed = match std::str::from_utf8(&buf) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => serde_json::from_str::<Value>(text.trim_end_matches(['\n', '\r']))
                .map_err(|e| format!("invalid JSON: {}", strip_location(&e))),
            Err(e) => Err(format!("invalid UTF-8: {e}")),
        };
        each(Position::Line(line), parsed)?;
    }
}
