use std::path::Path;

use crate::error::{DataError, Result};

/// A dataset file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One JSON object per line (`.jsonl`, also `.ndjson`).
    Jsonl,
    /// A top-level JSON array of objects (`.json`); input only, as an array cannot be appended to.
    Json,
    /// Apache Parquet (`.parquet`).
    Parquet,
}

impl Format {
    /// The format a file name implies, if its extension is a known one (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// `explicit` if given, else the format from the extension, else an error naming the file.
    pub(crate) fn resolve(path: &Path, explicit: Option<Format>) -> Result<Format> {
        explicit
            .or_else(|| Format::from_path(path))
            .ok_or_else(|| DataError::Format {
                path: path.to_path_buf(),
                message:
                    "cannot tell the format from the file name; use a .jsonl, .json or .parquet \
                      extension or set the format explicitly"
                        .into(),
            })
    }
}
