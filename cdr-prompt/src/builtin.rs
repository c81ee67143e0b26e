//! Templates for models that ship none, selectable by name.

use crate::error::{PromptError, Result};

pub struct Builtin {
    pub name: &'static str,
    pub source: &'static str,
    pub bos_token: &'static str,
    pub eos_token: &'static str,
}

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "chatml",
        source: include_str!("../templates/chatml.jinja"),
        bos_token: "",
        eos_token: "<|im_end|>",
    },
    Builtin {
        name: "llama3",
        source: include_str!("../templates/llama3.jinja"),
        bos_token: "<|begin_of_text|>",
        eos_token: "<|eot_id|>",
    },
    Builtin {
        name: "mistral",
        source: include_str!("../templates/mistral.jinja"),
        bos_token: "<s>",
        eos_token: "</s>",
    },
    Builtin {
        name: "llama2",
        source: include_str!("../templates/llama2.jinja"),
        bos_token: "<s>",
        eos_token: "</s>",
    },
];

pub fn find(name: &str) -> Result<&'static Builtin> {
    BUILTINS
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| PromptError::UnknownTemplate {
            name: name.to_string(),
            known: BUILTINS
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.name)
}
