use std::path::PathBuf;

/// Errors from template loading and rendering.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("unknown chat template `{name}` (built-in: {known})")]
    UnknownTemplate { name: String, known: String },

    #[error("chat template `{name}` does not compile: {message}")]
    Compile { name: String, message: String },

    #[error("chat template `{name}` failed to render: {message}")]
    Render { name: String, message: String },

    #[error(
        "chat template `{name}` renders the conversation with the response so that it neither starts \
         with the rendered prompt nor contains the response after it; the response boundary cannot be \
         located"
    )]
    PrefixMismatch { name: String },

    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },

    #[error(
        "{path} has no chat template (chat_template.jinja, chat_template.json or a `chat_template` in \
         tokenizer_config.json; GGUF: tokenizer.chat_template); name a template (chatml, llama3, mistral, llama2) or a Jinja file"
    )]
    NoTemplate { path: PathBuf },
}

pub type Result<T, E = PromptError> = std::result::Result<T, E>;
