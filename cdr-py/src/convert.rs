//! Python objects to and from JSON values (through Python's own `json` module, so anything
//! `json.dumps` takes is a row), and rows from a path or a list of dicts.

use std::path::{Path, PathBuf};

use cdr_data::{ReadOptions, ReadOutcome, Row, read_rows, rows_from_values};
use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// What in-memory rows are called in error messages (where a file's path would stand).
pub const ROWS_ORIGIN: &str = "<rows>";

pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text: String = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract()?;
    Ok(serde_json::from_str(&text).map_err(Error::Json)?)
}

pub fn to_python<'py>(py: Python<'py>, value: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(Error::Json)?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A path (`str` / `os.PathLike`) to a JSONL, JSON or Parquet file, or an iterable of row dicts.
pub enum RowSource {
    Path(PathBuf),
    Values(Vec<Value>),
}

impl RowSource {
    pub fn extract(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<pyo3::types::PyString>()
            || obj.hasattr(pyo3::intern!(obj.py(), "__fspath__"))?
        {
            return Ok(Self::Path(obj.extract()?));
        }
        let mut values = Vec::new();
        for item in obj.try_iter()? {
            values.push(to_json(&item?)?);
        }
        Ok(Self::Values(values))
    }

    /// The rows, normalized as `cdr` reads a file (GIL not needed).
    pub fn read(self, skip_invalid: bool) -> Result<ReadOutcome<Row>, Error> {
        let options = ReadOptions {
            skip_invalid,
            ..ReadOptions::default()
        };
        Ok(match self {
            Self::Path(path) => {
                if !path.exists() {
                    return Err(Error::NotFound(format!("{}: no such file", path.display())));
                }
                read_rows(&path, &options)?
            }
            Self::Values(values) => rows_from_values(values, Path::new(ROWS_ORIGIN), &options)?,
        })
    }
}

/// Tells Python (a `UserWarning` each) about rows left out, as `cdr` reports them on stderr.
pub fn warn_skipped(py: Python<'_>, skipped: &[String]) -> PyResult<()> {
    for message in skipped {
        let text = std::ffi::CString::new(format!("cdr: {message}"))
            .map_err(|e| Error::Argument(e.to_string()))?;
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &text, 1)?;
    }
    Ok(())
}

/// The warnings for rows left out: those skipped while reading and `failed` `(id, why)` ones.
pub fn skipped_messages(read: &[cdr_data::Skipped], failed: &[(String, String)]) -> Vec<String> {
    read.iter()
        .map(|s| format!("skipped invalid row: {}", s.message))
        .chain(
            failed
                .iter()
                .map(|(id, why)| format!("skipped row `{id}`: {why}")),
        )
        .collect()
}
