//! JSON input: a top-level array of objects.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde_json::Value;

use crate::error::{DataError, Position, Result};

/// Calls `each` with every element of the top-level array in `path` and its 0-based index.
///
/// The whole array is parsed up front: a syntax error anywhere makes the file unreadable, so
/// there is no row to skip to.
pub(crate) fn for_each_element(
    path: &Path,
    mut each: impl FnMut(Position, Value) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| DataError::read(path, e))?;
    let value: Value = serde_json::from_reader(BufReader::new(file)).map_err(|e| {
        if e.is_io() {
            DataError::read(path, std::io::Error::other(e))
        } else {
            DataError::parse(path, None, format!("invalid JSON: {e}"))
        }
    })?;
    let Value::Array(items) = value else {
        return Err(DataError::parse(
            path,
            None,
            "expected a top-level JSON array of row objects (for one object per line, use .jsonl)",
        ));
    };
    for (index, item) in items.into_iter().enumerate() {
        each(Position::Index(index), item)?;
    }
    Ok(())
}
