//! Chat templates rendering arbitrary conversations (any roles, any text, any count), with and
//! without a response, through every built-in template.
#![no_main]

use arbitrary::Arbitrary;
use cdr_prompt::ChatTemplate;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    template: u8,
    messages: Vec<(String, String)>,
    response: String,
    generation_prompt: bool,
}

fuzz_target!(|input: Input| {
    let names: Vec<&str> = cdr_prompt::builtin_names().collect();
    if names.is_empty() {
        return;
    }
    let name = names[usize::from(input.template) % names.len()];
    let Ok(template) = ChatTemplate::builtin(name) else {
        return;
    };
    let messages: Vec<serde_json::Value> = input
        .messages
        .iter()
        .map(|(role, content)| serde_json::json!({ "role": role, "content": content }))
        .collect();
    let _ = template.render(&messages, input.generation_prompt);
    if let Ok(pair) = template.render_pair(&messages, &input.response) {
        assert!(pair.full.starts_with(&pair.prompt));
    }
});
