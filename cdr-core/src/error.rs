/// Errors from the scoring pipeline.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Loading or running a model failed.
    #[error(transparent)]
    Model(#[from] cdr_models::ModelError),

    /// A chat template failed to load or render.
    #[error(transparent)]
    Prompt(#[from] cdr_prompt::PromptError),

    /// Reading or writing a dataset failed.
    #[error(transparent)]
    Data(#[from] cdr_data::DataError),

    /// A shard spec, marker or merge is wrong.
    #[error(transparent)]
    Shard(#[from] cdr_data::ShardError),

    /// A customization config is invalid.
    #[error(transparent)]
    Customize(#[from] cdr_prompt::CustomizeError),

    /// The tokenizer failed on a rendered text.
    #[error("tokenizer failed on the rendered text: {0}")]
    Tokenize(String),

    /// The response renders to no tokens.
    #[error("the response renders to no tokens (the template may drop assistant turns)")]
    EmptyResponse,

    /// Nothing precedes the response, so nothing conditions its first token.
    #[error(
        "the rendered prompt has no tokens before the response; nothing conditions the first response token"
    )]
    EmptyPrompt,

    /// The two models' tokenizers give different ids for one text.
    #[error(
        "the strong and weak tokenizers disagree on the scored text (token {index}: strong id {strong}, \
         weak id {weak}); the density ratio needs one token sequence for both models (or allow a \
         tokenizer mismatch to tokenize separately for each model)"
    )]
    TokenizerMismatch {
        /// The first position where they differ.
        index: usize,
        /// The strong model's token there.
        strong: String,
        /// The weak model's token there.
        weak: String,
    },

    /// An argument or setting that cannot be used.
    #[error("{0}")]
    Invalid(String),

    /// A row that cannot be scored: its source (a file), its id and why.
    #[error("{source_name}: row `{id}`: {error}")]
    Row {
        /// Where the row comes from (a file path).
        source_name: String,
        /// The row's id.
        id: String,
        /// Why it cannot be scored.
        error: Box<CoreError>,
    },

    /// A file that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
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

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
