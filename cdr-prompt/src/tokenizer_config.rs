//! The parts of `tokenizer_config.json` a chat template needs.

use std::path::Path;

use serde::Deserialize;

use crate::error::{PromptError, Result};

/// `bos_token` / `eos_token` are strings, or `AddedToken` objects with a `content` field.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Token {
    Plain(String),
    Added { content: String },
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Self::Plain(s) | Self::Added { content: s } => s,
        }
    }
}

/// `chat_template` is a string, or a list of named templates (the one named `default` is used).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Clone, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenizerConfig {
    #[serde(default)]
    chat_template: Option<TemplateField>,
    #[serde(default)]
    bos_token: Option<Token>,
    #[serde(default)]
    eos_token: Option<Token>,
}

impl TokenizerConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let read_err = |message: String| PromptError::Read {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))
    }

    pub fn chat_template(&self) -> Option<&str> {
        match self.chat_template.as_ref()? {
            TemplateField::One(s) => Some(s),
            TemplateField::Named(list) => list
                .iter()
                .find(|t| t.name == "default")
                .or(list.first())
                .map(|t| t.template.as_str()),
        }
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_ref().map(Token::text)
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_ref().map(Token::text)
    }
}
