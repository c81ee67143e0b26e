use cdr_prompt::{ChatTemplate, PromptError};
use serde_json::json;

#[test]
fn unknown_template_name_lists_the_builtins() {
    let err = ChatTemplate::builtin("vicuna").unwrap_err();
    assert!(matches!(err, PromptError::UnknownTemplate { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("vicuna") && msg.contains("chatml") && msg.contains("llama3"),
        "{msg}"
    );
    let msg = ChatTemplate::resolve("no-such-template", None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no-such-template"), "{msg}");
}

#[test]
fn raise_exception_in_a_template_is_a_render_error() {
    let t = ChatTemplate::builtin("mistral").unwrap();
    let messages = [json!({"role": "assistant", "content": "hi"})];
    let msg = t.render(&messages, true).unwrap_err().to_string();
    assert!(msg.contains("alternate"), "{msg}");
}

#[test]
fn syntax_errors_name_the_template() {
    let msg = ChatTemplate::new("broken.jinja", "{% for m in messages %}", "", "")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("broken.jinja"), "{msg}");
}

#[test]
fn a_template_that_rewrites_the_prompt_is_refused() {
    // Renders the generation prompt differently from the start of the assistant turn.
    let src = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}<gen>{% endif %}";
    let t = ChatTemplate::new("odd", src, "", "").unwrap();
    let err = t
        .render_pair(&[json!({"role": "user", "content": "x"})], "y")
        .unwrap_err();
    assert!(matches!(err, PromptError::PrefixMismatch { .. }), "{err}");
}

#[test]
fn reads_the_template_from_a_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        json!({
            "chat_template": [{"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}"}],
            "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>"
        })
        .to_string(),
    )
    .unwrap();
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(
        t.render(&[json!({"role": "user", "content": "hi"})], false)
            .unwrap(),
        "<s>hi"
    );
    assert_eq!(t.eos_token(), "</s>");
}
