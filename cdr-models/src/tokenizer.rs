//! Tokenizer loading (`tokenizer.json`, offline).

use std::path::Path;

pub use tokenizers::Tokenizer;

use crate::error::{ModelError, Result};

pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Loads a `tokenizer.json`; no network access is ever attempted.
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(ModelError::Tokenizer {
            path: path.to_path_buf(),
            message: "file not found".into(),
        });
    }
    Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
