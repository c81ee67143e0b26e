use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a file a row sits, in the numbering a user would look it up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// 1-based line of a JSONL file (what `sed -n Np` and editors show).
    Line(usize),
    /// 0-based index into the top-level array of a JSON file.
    Index(usize),
    /// 0-based row of a Parquet file (what `pandas.read_parquet(...).iloc[n]` shows).
    Row(usize),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Index(n) => write!(f, "index {n}"),
            Position::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Everything that can go wrong reading or writing a dataset.
///
/// Every variant names the file, and where a row is at fault its [`Position`] and field, so a
/// user can find and fix the row without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file at fault.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Writing an output failed (disk full, permissions...). Rows written before stay intact:
    /// the file still ends at a row boundary, so a later run can resume.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file at fault.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The file (or one line of it) is not valid JSON / JSONL / Parquet.
    #[error("{}: {message}", at(.path, .position))]
    Parse {
        /// The file at fault.
        path: PathBuf,
        /// The row or line, when the problem is one of them.
        position: Option<Position>,
        /// What is wrong.
        message: String,
    },

    /// A row parsed but does not have the shape cdr needs.
    #[error("{}{}: {message}", at(.path, &Some(*.position)), in_field(.field))]
    Row {
        /// The file at fault.
        path: PathBuf,
        /// The row or line.
        position: Position,
        /// The column at fault, with a path into it where useful (`chosen[2].role`).
        field: Option<String>,
        /// What is wrong.
        message: String,
    },

    /// Two rows of one file share an id, so results could not be told apart.
    #[error("{}: duplicate id `{id}` at {second} (first at {first})", .path.display())]
    DuplicateId {
        /// The file at fault.
        path: PathBuf,
        /// The repeated id.
        id: String,
        /// Where the id first appeared.
        first: Position,
        /// Where it appeared again.
        second: Position,
    },

    /// A writer was handed a record whose id is already in its output.
    #[error("{}: a record with id `{id}` was already written", .path.display())]
    DuplicateRecord {
        /// The output.
        path: PathBuf,
        /// The repeated id.
        id: String,
    },

    /// A record handed to a writer cannot be stored (no id, not an object...).
    #[error("{}: cannot write record: {message}", .path.display())]
    Record {
        /// The output.
        path: PathBuf,
        /// What is wrong with the record.
        message: String,
    },

    /// The input names a dataset (a hub id or a directory) that is not there, or lacks the
    /// split asked for.
    #[error("{}: {message}", .path.display())]
    Dataset {
        /// The input as given.
        path: PathBuf,
        /// What is missing.
        message: String,
    },

    /// The format could not be told from the file name, or is not supported for this use.
    #[error("{}: {message}", .path.display())]
    Format {
        /// The file whose format is unknown or unsupported.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DataError::Read { path, .. }
            | DataError::Write { path, .. }
            | DataError::Parse { path, .. }
            | DataError::Row { path, .. }
            | DataError::DuplicateId { path, .. }
            | DataError::DuplicateRecord { path, .. }
            | DataError::Record { path, .. }
            | DataError::Dataset { path, .. }
            | DataError::Format { path, .. } => path,
        }
    }

    /// The row the error is about, where it is about one row.
    pub fn position(&self) -> Option<Position> {
        match self {
            DataError::Parse { position, .. } => *position,
            DataError::Row { position, .. } => Some(*position),
            DataError::DuplicateId { second, .. } => Some(*second),
            _ => None,
        }
    }

    /// The field the error is about, where it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            DataError::Row { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        DataError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn write(path: &Path, source: std::io::Error) -> Self {
        DataError::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(
        path: &Path,
        position: Option<Position>,
        message: impl Into<String>,
    ) -> Self {
        DataError::Parse {
            path: path.to_path_buf(),
            position,
            message: message.into(),
        }
    }
}

fn at(path: &Path, position: &Option<Position>) -> String {
    match position {
        Some(position) => format!("{}, {position}", path.display()),
        None => path.display().to_string(),
    }
}

fn in_field(field: &Option<String>) -> String {
    match field {
        Some(field) => format!(", field `{field}`"),
        None => String::new(),
    }
}
