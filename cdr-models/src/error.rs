use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
///
/// Messages name the file, the tensor or the config key at fault, so a user can act on them without
/// a debugger.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid model config {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("unsupported model_type `{model_type}` in {path} (supported: llama, mistral, qwen2)")]
    UnsupportedModelType { model_type: String, path: PathBuf },

    #[error("corrupt or truncated checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("tensor `{name}` is missing from the checkpoint in {path}")]
    MissingTensor { name: String, path: PathBuf },

    #[error("tensor `{name}` in {path} has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        name: String,
        path: PathBuf,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    #[error(
        "tensor `{name}` in {path} has dtype {dtype}, which cdr cannot load (use f32, f16 or bf16)"
    )]
    UnsupportedDtype {
        name: String,
        path: PathBuf,
        dtype: String,
    },

    #[error(
        "no weights found in {path}: expected model.safetensors or model.safetensors.index.json"
    )]
    NoWeights { path: PathBuf },

    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("backend error: {0}")]
    Backend(String),

    #[error("invalid input: {0}")]
    Input(String),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
