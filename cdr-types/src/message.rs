use serde::{Deserialize, Serialize};

/// The roles cdr accepts. Chat templates of the supported models know no others, so a `tool`
/// or `function` turn would be scored against a prompt the model never saw.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// One turn of a conversation, in the `{"role", "content"}` layout of chat datasets and TRL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl Message {
    /// A message with any role; use the named constructors where the role is fixed.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Message::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Message::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new("assistant", content)
    }

    /// Whether this is an `assistant` turn.
    pub fn is_assistant(&self) -> bool {
        self.role == "assistant"
    }
}
