//! Domain customization of the prompt both models condition on: criteria system turns and
//! in-context preference exemplars (docs/customization.md is the specification).

use std::path::{Path, PathBuf};

use cdr_types::Message;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use cdr_types::draw;

/// The shipped default configuration (the `paper` preset), printed by `cdr config --example`.
pub const DEFAULT_CONFIG: &str = include_str!("../customize/default.toml");

/// Preset names accepted by `--customize`.
pub const PRESETS: [&str; 5] = ["none", "criteria", "exemplars", "both", "paper"];

/// Errors in a customization config or its application.
#[derive(Debug, thiserror::Error)]
pub enum CustomizeError {
    #[error("cannot read customization config {path}: {message}")]
    Read { path: PathBuf, message: String },

    #[error("invalid customization config {path}: {message}")]
    Invalid { path: PathBuf, message: String },

    #[error("unknown domain `{domain}` (configured: {known})")]
    UnknownDomain { domain: String, known: String },

    #[error("the conversation has no user turn to put the exemplar in front of")]
    NoUserTurn,
}

/// What happens to the system turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemTurn {
    /// Leave the conversation's system turn (or its absence) as it is.
    Keep,
    /// The domain's criteria as the system turn.
    Criteria,
    /// An empty system turn.
    Empty,
}

/// How a criteria text meets an existing system turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemMode {
    #[default]
    Replace,
    Prepend,
}

/// One in-context preference example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemplar {
    pub user: String,
    pub good: String,
    pub bad: String,
    pub explanation: String,
}

/// The customization of one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// One line describing the domain, shown to router models.
    pub description: String,
    /// What a good answer does in this domain (may be empty).
    #[serde(default)]
    pub criteria: String,
    pub system: SystemTurn,
    #[serde(default)]
    pub system_mode: SystemMode,
    #[serde(default)]
    pub use_exemplars: bool,
    #[serde(default = "default_cue")]
    pub cue: String,
    #[serde(default)]
    pub exemplars: Vec<Exemplar>,
}

fn default_cue() -> String {
    "Good Assistant:".into()
}

/// A `--router field` rule: rows whose subset matches `subset` (`*` = any run of characters) go to
/// `domain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub subset: String,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterPrompt {
    /// The classification prompt (a user turn) with `{domains}` and `{conversation}`.
    pub prompt: String,
}

/// A customization config (`--customize FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customization {
    #[serde(default)]
    pub seed: u64,
    pub default_domain: String,
    pub exemplar_template: String,
    pub query_template: String,
    #[serde(default)]
    pub route: Vec<Route>,
    pub router: RouterPrompt,
    /// In file order: the order routers break ties in and reports list domains in.
    pub domains: IndexMap<String, Domain>,
}

/// The outcome of customizing one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customized {
    pub messages: Vec<Message>,
    /// The exemplar used, if any.
    pub exemplar: Option<usize>,
}

impl Customization {
    /// Parses and validates a config; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, CustomizeError> {
        let config: Self = toml::from_str(text).map_err(|e| CustomizeError::Invalid {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, CustomizeError> {
        let text = std::fs::read_to_string(path).map_err(|e| CustomizeError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text, path)
    }

    /// The shipped defaults (`paper` settings).
    pub fn default_config() -> Result<Self, CustomizeError> {
        Self::from_toml(DEFAULT_CONFIG, Path::new("<built-in default.toml>"))
    }

    /// A preset applied to the shipped texts.
    pub fn preset(name: &str) -> Result<Self, CustomizeError> {
        let mut c = Self::default_config()?;
        let set = |c: &mut Self, system: SystemTurn, exemplars: bool| {
            for d in c.domains.values_mut() {
                d.system = system;
                d.use_exemplars = exemplars;
            }
        };
        match name {
            "none" => set(&mut c, SystemTurn::Keep, false),
            "criteria" => set(&mut c, SystemTurn::Criteria, false),
            "exemplars" => set(&mut c, SystemTurn::Keep, true),
            "both" => set(&mut c, SystemTurn::Criteria, true),
            "paper" => {}
            other => {
                return Err(CustomizeError::Invalid {
                    path: PathBuf::from(other),
                    message: format!("not a file and not a preset ({})", PRESETS.join(", ")),
                });
            }
        }
        Ok(c)
    }

    /// `--customize` values: a preset name or a TOML file.
    pub fn resolve(spec: &str) -> Result<Self, CustomizeError> {
        if PRESETS.contains(&spec) && !Path::new(spec).is_file() {
            Self::preset(spec)
        } else if Path::new(spec).is_file() {
            Self::from_file(Path::new(spec))
        } else {
            Self::preset(spec)
        }
    }

    fn validate(&self, path: &Path) -> Result<(), CustomizeError> {
        let bad = |message: String| CustomizeError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.domains.is_empty() {
            return Err(bad("`domains` is empty".into()));
        }
        for (name, d) in &self.domains {
            if name.is_empty() || name != &name.to_uppercase() || name.contains(char::is_whitespace)
            {
                return Err(bad(format!(
                    "domain `{name}`: names are upper-case identifiers (e.g. `CHAT`)"
                )));
            }
            if d.use_exemplars && d.exemplars.is_empty() {
                return Err(bad(format!(
                    "`domains.{name}.exemplars` is empty but `domains.{name}.use_exemplars` is true"
                )));
            }
        }
        self.domain(&self.default_domain).map_err(|_| {
            bad(format!(
                "`default_domain` `{}` is not a configured domain",
                self.default_domain
            ))
        })?;
        for (i, r) in self.route.iter().enumerate() {
            if !self.domains.contains_key(&r.domain) {
                return Err(bad(format!(
                    "`route[{i}].domain` `{}` is not a configured domain",
                    r.domain
                )));
            }
        }
        Ok(())
    }

    pub fn domain(&self, name: &str) -> Result<&Domain, CustomizeError> {
        self.domains
            .get(name)
            .ok_or_else(|| CustomizeError::UnknownDomain {
                domain: name.to_string(),
                known: self.domain_names().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn domain_names(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }

    /// The configured domain a label names (case-insensitive).
    pub fn canonical_domain(&self, label: &str) -> Option<&str> {
        self.domain_names()
            .find(|d| d.eq_ignore_ascii_case(label.trim()))
    }

    /// `--router field`: the explicit domain if given, else the subset's route, else the default.
    pub fn route_by_field(
        &self,
        domain: Option<&str>,
        subset: Option<&str>,
    ) -> Result<String, CustomizeError> {
        if let Some(label) = domain {
            return self
                .canonical_domain(label)
                .map(str::to_string)
                .ok_or_else(|| CustomizeError::UnknownDomain {
                    domain: label.to_string(),
                    known: self.domain_names().collect::<Vec<_>>().join(", "),
                });
        }
        if let Some(subset) = subset
            && let Some(r) = self.route.iter().find(|r| glob_match(&r.subset, subset))
        {
            return Ok(r.domain.clone());
        }
        Ok(self.default_domain.clone())
    }

    /// Customizes `messages` for `domain`; `id` picks the exemplar, so every candidate of one row
    /// sees the same one.
    pub fn apply(
        &self,
        messages: &[Message],
        domain: &str,
        id: &str,
    ) -> Result<Customized, CustomizeError> {
        let d = self.domain(domain)?;
        let mut out = messages.to_vec();
        let text = match d.system {
            SystemTurn::Keep => None,
            SystemTurn::Criteria => Some(d.criteria.as_str()),
            SystemTurn::Empty => Some(""),
        };
        if let Some(text) = text {
            match out.first_mut() {
                Some(first) if first.role == "system" => match d.system_mode {
                    SystemMode::Replace => first.content = text.to_string(),
                    SystemMode::Prepend if !text.is_empty() => {
                        first.content = format!("{text}\n\n{}", first.content);
                    }
                    SystemMode::Prepend => {}
                },
                _ => out.insert(0, Message::system(text)),
            }
        }
        let mut exemplar = None;
        if d.use_exemplars && !d.exemplars.is_empty() {
            let k = (draw(self.seed, id) % d.exemplars.len() as u64) as usize;
            let e = &d.exemplars[k];
            let block = substitute(
                &self.exemplar_template,
                &[
                    ("user", &e.user),
                    ("good", &e.good),
                    ("bad", &e.bad),
                    ("explanation", &e.explanation),
                ],
            );
            let last_user = out
                .iter_mut()
                .rev()
                .find(|m| m.role == "user")
                .ok_or(CustomizeError::NoUserTurn)?;
            last_user.content = substitute(
                &self.query_template,
                &[
                    ("exemplar", &block),
                    ("query", &last_user.content),
                    ("cue", &d.cue),
                ],
            );
            exemplar = Some(k);
        }
        Ok(Customized {
            messages: out,
            exemplar,
        })
    }

    /// The router's classification prompt for a conversation.
    pub fn router_prompt(&self, conversation: &[Message]) -> String {
        let domains = self
            .domains
            .iter()
            .map(|(name, d)| format!("{name}: {}", d.description))
            .collect::<Vec<_>>()
            .join("\n");
        let convo = conversation
            .iter()
            .map(|m| format!("{}: {}", m.role, m.content))
            .collect::<Vec<_>>()
            .join("\n");
        substitute(
            &self.router.prompt,
            &[("domains", &domains), ("conversation", &convo)],
        )
    }
}

/// Replaces `{name}` placeholders in one left-to-right pass: inserted text is never re-scanned,
/// and braces that do not form a listed placeholder stay as they are.
pub fn substitute(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let hit = values.iter().find_map(|(name, value)| {
            after
                .strip_prefix(name)
                .and_then(|t| t.strip_prefix('}'))
                .map(|tail| (*value, tail))
        });
        match hit {
            Some((value, tail)) => {
                out.push_str(value);
                rest = tail;
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `*` matches any run of characters (including none); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut pos = first.len();
    let end = text.len() - last.len();
    for part in &parts[1..parts.len() - 1] {
        match text[pos..end].find(part) {
            Some(i) => pos += i + part.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_is_single_pass() {
        let out = substitute("{a}-{b}-{c}", &[("a", "{b}"), ("b", "x")]);
        assert_eq!(out, "{b}-x-{c}");
        assert_eq!(substitute("{{a}}", &[("a", "1")]), "{1}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("hep-*", "hep-python"));
        assert!(glob_match("*-refuse", "xstest-should-refuse"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("hep-*", "math-prm"));
        assert!(glob_match("math-prm", "math-prm"));
        assert!(!glob_match("a*a", "a"));
    }
}
