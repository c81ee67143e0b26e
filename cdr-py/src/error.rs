//! The package's errors and the Python exceptions they become.

use pyo3::PyErr;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};

pyo3::create_exception!(
    cdr,
    CdrError,
    pyo3::exceptions::PyException,
    "A cdr error: a bad row, a model that does not load, tokenizers that disagree; the message \
     is the one the `cdr` command prints."
);

/// Everything a call into the package can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] cdr_core::CoreError),

    #[error(transparent)]
    Data(#[from] cdr_data::DataError),

    #[error(transparent)]
    Model(#[from] cdr_models::ModelError),

    /// A model path that does not exist (Python `FileNotFoundError`).
    #[error("{0}")]
    NotFound(String),

    /// A bad argument value (Python `ValueError`).
    #[error("{0}")]
    Argument(String),

    /// One row could not be scored (rendered, tokenized).
    #[error("{origin}: row `{id}`: {source} (pass skip_invalid=True to continue past bad rows)")]
    Row {
        /// The rows' path, or `rows` for a list.
        origin: String,
        id: String,
        #[source]
        source: Box<cdr_core::CoreError>,
    },

    /// Rows or records that do not convert between Python and JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let message = e.to_string();
        match e {
            Error::NotFound(_) => PyFileNotFoundError::new_err(message),
            Error::Argument(_) => PyValueError::new_err(message),
            _ => CdrError::new_err(message),
        }
    }
}
