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
        env.add_template_owned(TEMPLATE_NAME, without_generation_tags(source))
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

    /// The template a model directory ships, if any, found where transformers' tokenizer looks:
    /// `chat_template.jinja` (what transformers ≥ 4.50 saves), else `chat_template` in
    /// `tokenizer_config.json`; else, beyond what the tokenizer reads, the processor file
    /// `chat_template.json` (multimodal checkpoints keep the template there). Special tokens come
    /// from `tokenizer_config.json`.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.is_file() {
            Some(TokenizerConfig::from_file(&config_path)?)
        } else {
            None
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| PromptError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        };
        let jinja = dir.join("chat_template.jinja");
        let legacy = dir.join("chat_template.json");
        let in_config = config.as_ref().and_then(TokenizerConfig::chat_template);
        let (origin, source) = if jinja.is_file() {
            (jinja.clone(), read(&jinja)?)
        } else if let Some(source) = in_config {
            (config_path.clone(), source.to_string())
        } else if legacy.is_file() {
            #[derive(serde::Deserialize)]
            struct Legacy {
                chat_template: String,
            }
            let parsed: Legacy =
                serde_json::from_str(&read(&legacy)?).map_err(|e| PromptError::Read {
                    path: legacy.clone(),
                    message: e.to_string(),
                })?;
            (legacy.clone(), parsed.chat_template)
        } else {
            return Ok(None);
        };
        let token = |get: fn(&TokenizerConfig) -> Option<&str>| {
            config.as_ref().and_then(get).unwrap_or("").to_string()
        };
        Self::new(
            &origin.display().to_string(),
            &source,
            &token(TokenizerConfig::bos_token),
            &token(TokenizerConfig::eos_token),
        )
        .map(Some)
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
                // transformers passes both, as None when not given: `tools is not none` is false
                // there, while an undefined `tools` would pass that test.
                tools => (),
                documents => (),
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(|e| self.render_error(e))
    }

    /// Renders the prompt (with generation prompt) and the text the scored response tokens come
    /// from: the prompt, then the response and the end-of-turn text the template writes after it.
    ///
    /// Most templates render the conversation with the response so that it starts with the
    /// prompt, and that rendering is used as is. Others render the generation prompt differently
    /// from a finished assistant turn — reasoning templates open `<think>` only in the generation
    /// prompt, some drop a system turn once the last message is no longer the user's. There the
    /// response and what follows it are taken from the finished rendering (where the response,
    /// or the response trimmed of surrounding whitespace, last occurs after the point the two
    /// renderings part) and appended to the prompt: the text a model sees when it generates the
    /// response after that prompt. Fails if the response cannot be found.
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
        let finished = self.render(&with_response, false)?;
        if finished.starts_with(&prompt) {
            return Ok(RenderedPair {
                prompt,
                full: finished,
            });
        }
        // The end of the turn is what the template writes after the response: found by rendering
        // a placeholder response, so that a short response cannot be matched inside it.
        if let Some(last) = with_response.last_mut() {
            *last = serde_json::json!({"role": "assistant", "content": PLACEHOLDER});
        }
        let placeholder = self.render(&with_response, false)?;
        let end_of_turn = placeholder
            .rfind(PLACEHOLDER)
            .map(|at| &placeholder[at + PLACEHOLDER.len()..]);
        let parted = common_prefix_len(&prompt, &finished);
        let start = end_of_turn
            .and_then(|end| finished.strip_suffix(end))
            .and_then(|head| response_end_offset(&head[parted.min(head.len())..], response))
            .map(|offset| parted + offset)
            .or_else(|| response_offset(&finished[parted..], response).map(|o| parted + o))
            .ok_or_else(|| PromptError::PrefixMismatch {
                name: self.name.clone(),
            })?;
        tracing::debug!(
            template = %self.name,
            "the finished turn does not extend the generation prompt; appending the response part to the prompt"
        );
        let full = format!("{prompt}{}", &finished[start..]);
        Ok(RenderedPair { prompt, full })
    }

    fn render_error(&self, e: minijinja::Error) -> PromptError {
        PromptError::Render {
            name: self.name.clone(),
            message: format!("{e:#}"),
        }
    }
}

/// Byte length of the longest common prefix of `a` and `b`, on a char boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

/// A response no conversation contains (private-use characters around a name).
const PLACEHOLDER: &str = "\u{E000}cdr-response\u{E001}";

/// Where `response` (as is, or trimmed as templates `| trim` it) ends `text`.
fn response_end_offset(text: &str, response: &str) -> Option<usize> {
    [
        response,
        response.trim(),
        response.trim_end(),
        response.trim_start(),
    ]
    .into_iter()
    .filter(|r| !r.is_empty())
    .find_map(|r| text.strip_suffix(r).map(str::len))
}

/// Where `response` last occurs in `text`; else where it does trimmed (templates often `| trim`
/// the content). An all-whitespace response is only found exactly.
fn response_offset(text: &str, response: &str) -> Option<usize> {
    if response.is_empty() {
        return None;
    }
    text.rfind(response).or_else(|| {
        let trimmed = response.trim();
        (!trimmed.is_empty()).then(|| text.rfind(trimmed)).flatten()
    })
}

/// Replaces transformers' `{% generation %}` ... `{% endgeneration %}` (a block it renders as is,
/// marking the assistant's tokens for training masks) by an always-true `if` with the same
/// whitespace control, which minijinja renders identically.
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        out.push_str(&rest[..open]);
        let tag = &rest[open..];
        // The closing `%}` comes after the opening `{%` (in `{%}` they would overlap).
        let Some(close) = tag[2..].find("%}").map(|c| c + 2) else {
            rest = tag;
            break;
        };
        let inner = &tag[2..close];
        // A `{%` inside a string literal before a real tag: that real tag starts at the later `{%`.
        if let Some(nested) = inner.find("{%") {
            out.push_str(&tag[..2 + nested]);
            rest = &tag[2 + nested..];
            continue;
        }
        let left = inner.strip_prefix(['-', '+']).map_or("", |_| &inner[..1]);
        let body = &inner[left.len()..];
        let right = body
            .strip_suffix(['-', '+'])
            .map_or("", |_| &body[body.len() - 1..]);
        let word = body[..body.len() - right.len()].trim();
        match word {
            "generation" => out.push_str(&format!("{{%{left} if true {right}%}}")),
            "endgeneration" => out.push_str(&format!("{{%{left} endif {right}%}}")),
            _ => out.push_str(&tag[..close + 2]),
        }
        rest = &tag[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_become_a_plain_block_with_the_same_trim_markers() {
        assert_eq!(
            without_generation_tags("a{%- generation -%}b{% endgeneration %}c{{ x }}{%+ if y %}"),
            "a{%- if true -%}b{% endif %}c{{ x }}{%+ if y %}"
        );
        assert_eq!(without_generation_tags("{% raw"), "{% raw");
        // No panic on overlapping delimiters, nothing written twice without a closing one.
        assert_eq!(without_generation_tags("a{%}b"), "a{%}b");
        assert_eq!(without_generation_tags("ab{{ '{%' }}"), "ab{{ '{%' }}");
        assert_eq!(
            without_generation_tags("{{ '{%}' }}{% generation %}"),
            "{{ '{%}' }}{% if true %}"
        );
    }

    #[test]
    fn prefix_and_response_search() {
        assert_eq!(common_prefix_len("abé", "abè"), 2);
        assert_eq!(common_prefix_len("ab", "abc"), 2);
        assert_eq!(response_offset("x y x", "x"), Some(4));
        assert_eq!(response_offset("<a>hi</a>", "  hi \n"), Some(3));
        assert_eq!(response_offset("<a></a>", " "), None);
        assert_eq!(response_end_offset("<a> hi", "hi"), Some(4));
        assert_eq!(response_end_offset("<a>hi", "  hi\n"), Some(3));
        assert_eq!(response_end_offset("<a>hi", "ho"), None);
    }
}
