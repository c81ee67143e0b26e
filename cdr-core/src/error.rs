/// Errors from the scoring pipeline.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Model(#[from] cdr_models::ModelError),

    #[error(transparent)]
    Prompt(#[from] cdr_prompt::PromptError),

    #[error(transparent)]
    Data(#[from] cdr_data::DataError),

    #[error(transparent)]
    Shard(#[from] cdr_data::ShardError),

    #[error(transparent)]
    Customize(#[from] cdr_prompt::CustomizeError),

    #[error("tokenizer failed on the rendered text: {0}")]
    Tokenize(String),

    #[error("the response renders to no tokens (the template may drop assistant turns)")]
    EmptyResponse,

    #[error(
        "the rendered prompt has no tokens before the response; nothing conditions the first response token"
    )]
    EmptyPrompt,

    #[error(
        "the strong and weak tokenizers disagree on the scored text (token {index}: strong id {strong}, \
         weak id {weak}); the density ratio needs one token sequence for both models (or allow a \
         tokenizer mismatch to tokenize separately for each model)"
    )]
    TokenizerMismatch {
        index: usize,
        strong: String,
        weak: String,
    },

    #[error("{0}")]
    Invalid(String),

    /// A row that cannot be scored: its source (a file), its id and why.
    #[error("{source_name}: row `{id}`: {error}")]
    Row {
        source_name: String,
        id: String,
        error: Box<CoreError>,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CoreError {
    /// The error behind a [`CoreError::Row`] wrapper (itself otherwise).
    pub fn cause(&self) -> &CoreError {
        match self {
            CoreError::Row { error, .. } => error.cause(),
            other => other,
        }
    }

    /// An IO error on `path`.
    pub fn io(path: impl Into<std::path::PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
