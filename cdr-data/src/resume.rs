//! Reading back what an interrupted run already wrote.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use crate::error::{DataError, Position, Result};
use crate::id::{IdError, extract_id};

/// What a JSONL output (or journal) already holds.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Ids written, with the 1-based line of each.
    pub ids: HashMap<String, usize>,
    /// Byte length of the complete rows; the file has been cut to this.
    pub len: u64,
}

/// Scans the JSONL output `file`, then truncates a torn last line and leaves the cursor at the end.
///
/// A process killed mid-write leaves at most one torn row, and only at the end: a last line with
/// no newline, or one that does not parse, is cut away and counts as not written. A bad line
/// anywhere else means the file was damaged some other way, and dropping it would silently lose a
/// row, so that is an error.
pub(crate) fn scan_and_repair(file: &mut File, path: &Path, id_field: &str) -> Result<Scan> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| DataError::read(path, e))?;
    let mut reader = BufReader::new(&*file);
    let mut scan = Scan::default();
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let mut line = 0usize;
    // A bad line is forgiven only if nothing follows it.
    let mut bad: Option<(usize, String)> = None;
    let mut torn: Option<usize> = None;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::read(path, e))?;
        if n == 0 {
            break;
        }
        line += 1;
        if let Some((bad_line, message)) = bad.take() {
            return Err(DataError::parse(
                path,
                Some(Position::Line(bad_line)),
                format!(
                    "{message}; only a torn last line can be repaired, fix or remove this line"
                ),
            ));
        }
        offset += n as u64;
        if buf.last() != Some(&b'\n') {
            torn = Some(line);
            break;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(text) => text,
            Err(e) => {
                bad = Some((line, format!("invalid UTF-8: {e}")));
                continue;
            }
        };
        if text.trim().is_empty() {
            scan.len = offset;
            continue;
        }
        match extract_id(text.trim_end_matches(['\n', '\r']), id_field) {
            Ok(id) => {
                if let Some(&first) = scan.ids.get(&id) {
                    return Err(DataError::DuplicateId {
                        path: path.to_path_buf(),
                        id,
                        first: Position::Line(first),
                        second: Position::Line(line),
                    });
                }
                scan.ids.insert(id, line);
                scan.len = offset;
            }
            Err(IdError::Syntax(message)) => bad = Some((line, message)),
            Err(IdError::Invalid(message)) => {
                return Err(DataError::parse(path, Some(Position::Line(line)), message));
            }
        }
    }
    drop(reader);
    let cut = torn
        .map(|line| (line, "no trailing newline".to_string()))
        .or(bad);
    if let Some((line, why)) = cut {
        let total = file.metadata().map_err(|e| DataError::read(path, e))?.len();
        tracing::warn!(
            path = %path.display(),
            line,
            bytes = total.saturating_sub(scan.len),
            "cutting away a torn last row ({why}); it will be written again"
        );
        file.set_len(scan.len)
            .map_err(|e| DataError::write(path, e))?;
    }
    file.seek(SeekFrom::Start(scan.len))
        .map_err(|e| DataError::write(path, e))?;
    Ok(scan)
}
