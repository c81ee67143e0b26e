//! Chat templates: a model's own (`tokenizer_config.json`) or a built-in one.

use std::path::Path;

use minijinja::{Environment, context};
use serde::Serialize;

use crate::builtin;
use crate::error::{PromptError, Result};
use crate::jinja::environment;
use crate::tokenizer_config::TokenizerConfig;

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template with the special tokens it refers to.
pub struct ChatTemplate {
    name: String,
    source: String,
    bos_token: String,
    eos_token: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

/// A conversation rendered twice: up to the assistant's turn, and with the response in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPair {
    /// The conversation with the generation prompt (`add_generation_prompt=True`).
    pub prompt: String,
    /// The conversation followed by the assistant response; starts with `prompt`.
    pub full: String,
}

impl RenderedPair {
    /// Byte offset in `full` where the response part begins.
    pub fn response_start(&self) -> usize {
        self.prompt.len()
    }
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'a str,
    content: &'a str,
}

impl ChatTemplate {
    /// Compiles `source` (HF Jinja chat template syntax).
    pub fn new(name: &str, source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = environment();
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| PromptError::Compile {
                name: name.to_string(),
                message: format!("{e:#}"),
            })?;
        Ok(Self {
            name: name.to_string(),
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            env,
        })
    }

    /// A built-in template by name: `chatml`, `llama3`, `mistral`, `llama2`.
    pub fn builtin(name: &str) -> Result<Self> {
        let b = builtin::find(name)?;
        Self::new(b.name, b.source, b.bos_token, b.eos_token)
    }

    /// The template a model directory ships in `tokenizer_config.json`, if any.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("tokenizer_config.json");
        if !path.is_file() {
            return Ok(None);
        }
        let config = TokenizerConfig::from_file(&path)?;
        match config.chat_template() {
            Some(source) => Self::new(
                &path.display().to_string(),
                source,
                config.bos_token().unwrap_or(""),
                config.eos_token().unwrap_or(""),
            )
            .map(Some),
            None => Ok(None),
        }
    }

    /// Resolves a `--template` value: a built-in name, or a path to a `.jinja` file (special tokens
    /// then come from `tokens_from`, a model directory, if given).
    pub fn resolve(spec: &str, tokens_from: Option<&Path>) -> Result<Self> {
        if builtin::find(spec).is_ok() {
            return Self::builtin(spec);
        }
        let path = Path::new(spec);
        if path.is_file() {
            let source = std::fs::read_to_string(path).map_err(|e| PromptError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            let (bos, eos) = match tokens_from.map(|d| d.join("tokenizer_config.json")) {
                Some(cfg) if cfg.is_file() => {
                    let c = TokenizerConfig::from_file(&cfg)?;
                    (
                        c.bos_token().unwrap_or("").to_string(),
                        c.eos_token().unwrap_or("").to_string(),
                    )
                }
                _ => (String::new(), String::new()),
            };
            return Self::new(spec, &source, &bos, &eos);
        }
        Err(PromptError::UnknownTemplate {
            name: spec.to_string(),
            known: format!(
                "{}; or a path to a Jinja file",
                builtin::names().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Renders `messages` (anything serializing to a list of `{role, content}` maps) as
    /// transformers' `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`.
    pub fn render<M: Serialize>(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| self.render_error(e))?;
        template
            .render(context! {
                messages => minijinja::Value::from(minijinja::value::Serde(messages)),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(|e| self.render_error(e))
    }

    /// Renders the prompt (with generation prompt) and the prompt followed by `response` as the
    /// assistant's turn; fails if the second does not extend the first.
    pub fn render_pair<M: Serialize>(
        &self,
        messages: &[M],
        response: &str,
    ) -> Result<RenderedPair> {
        let prompt = self.render(messages, true)?;
        let mut with_response: Vec<serde_json::Value> = messages
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| PromptError::Render {
                name: self.name.clone(),
                message: e.to_string(),
            })?;
        with_response.push(
            serde_json::to_value(Turn {
                role: "assistant",
                content: response,
            })
            .unwrap_or_default(),
        );
        let full = self.render(&with_response, false)?;
        if !full.starts_with(&prompt) {
            return Err(PromptError::PrefixMismatch {
                name: self.name.clone(),
            });
        }
        Ok(RenderedPair { prompt, full })
    }

    fn render_error(&self, e: minijinja::Error) -> PromptError {
        PromptError::Render {
            name: self.name.clone(),
            message: format!("{e:#}"),
        }
    }
}
