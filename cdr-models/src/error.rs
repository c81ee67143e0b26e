use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
///
/// Messages name the file, the tensor or the config key at fault, so a user can act on them without
/// a debugger.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A `config.json` (or GGUF metadata) that does not describe a supported model.
    #[error("invalid model config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The key at fault and why.
        message: String,
    },

    /// A `model_type` other than llama, mistral, qwen2.
    #[error("unsupported model_type `{model_type}` in {path} (supported: llama, mistral, qwen2)")]
    UnsupportedModelType {
        /// The type the config names.
        model_type: String,
        /// The config file.
        path: PathBuf,
    },

    /// A checkpoint file that is cut short or malformed.
    #[error("corrupt or truncated checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong, naming the tensor or header field.
        message: String,
    },

    /// A tensor the architecture needs that the checkpoint lacks.
    #[error("tensor `{name}` is missing from the checkpoint in {path}")]
    MissingTensor {
        /// The checkpoint key.
        name: String,
        /// The checkpoint.
        path: PathBuf,
    },

    /// A tensor whose shape disagrees with the config.
    #[error("tensor `{name}` in {path} has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The checkpoint key.
        name: String,
        /// The checkpoint.
        path: PathBuf,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape stored.
        actual: Vec<usize>,
    },

    /// A tensor stored in a type cdr cannot convert.
    #[error(
        "tensor `{name}` in {path} has dtype {dtype}, which cdr cannot load (use f32, f16 or bf16)"
    )]
    UnsupportedDtype {
        /// The checkpoint key.
        name: String,
        /// The checkpoint.
        path: PathBuf,
        /// The stored type.
        dtype: String,
    },

    /// A model directory without weights.
    #[error(
        "no weights found in {path}: expected model.safetensors or model.safetensors.index.json"
    )]
    NoWeights {
        /// The directory.
        path: PathBuf,
    },

    /// A tokenizer that does not load.
    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file (or GGUF file).
        path: PathBuf,
        /// Why.
        message: String,
    },

    /// A failure inside the compute backend.
    #[error("backend error: {0}")]
    Backend(String),

    /// An argument or input that cannot be used (an id outside the vocabulary, bad options...).
    #[error("invalid input: {0}")]
    Input(String),
}

/// `Result` with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
