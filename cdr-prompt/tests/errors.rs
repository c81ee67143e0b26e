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
fn a_template_that_rewrites_the_prompt_gets_the_response_appended_to_it() {
    // Renders the generation prompt differently from the start of the assistant turn, as
    // reasoning templates do with `<think>`.
    let src = "{% for m in messages %}[{{ m.role }}]{{ m.content | trim }}{% endfor %}{% if add_generation_prompt %}<gen>{% else %}<end>{% endif %}";
    let t = ChatTemplate::new("odd", src, "", "").unwrap();
    let pair = t
        .render_pair(&[json!({"role": "user", "content": "y"})], " y ")
        .unwrap();
    assert_eq!(pair.prompt, "[user]y<gen>");
    // The last `y` is the response (the user's `y` comes before the renderings part).
    assert_eq!(pair.full, "[user]y<gen>y<end>");
}

#[test]
fn a_template_that_drops_the_response_is_refused() {
    let src = "{% for m in messages %}[{{ m.role }}]{{ m.content | upper }}{% endfor %}{% if add_generation_prompt %}<gen>{% endif %}";
    let t = ChatTemplate::new("odd", src, "", "").unwrap();
    let err = t
        .render_pair(&[json!({"role": "user", "content": "x"})], "y")
        .unwrap_err();
    assert!(matches!(err, PromptError::PrefixMismatch { .. }), "{err}");
    assert!(err.to_string().contains("`odd`"), "{err}");
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
    assert_eq!(render_hi(dir.path()), "<s>hi");
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.eos_token(), "</s>");
}

#[test]
fn chat_template_jinja_takes_priority_over_tokenizer_config() {
    // transformers >= 4.50 saves the template as chat_template.jinja, and reads it first.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        json!({"chat_template": "old", "bos_token": "<s>", "eos_token": "</s>"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
    )
    .unwrap();
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    let msgs = [json!({"role": "user", "content": "hi"})];
    assert_eq!(t.render(&msgs, false).unwrap(), "<s>hi</s>");
    assert!(t.name().ends_with("chat_template.jinja"), "{}", t.name());

    // Without tokenizer_config.json the template still loads, with empty special tokens.
    std::fs::remove_file(dir.path().join("tokenizer_config.json")).unwrap();
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&msgs, false).unwrap(), "hi");
}

#[test]
fn legacy_chat_template_json_is_read_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat_template.json");
    std::fs::write(
        &path,
        json!({"chat_template": "[{{ messages[0].content }}]"}).to_string(),
    )
    .unwrap();
    assert_eq!(render_hi(dir.path()), "[hi]");
    std::fs::write(&path, "{\"chat_template\": 3}").unwrap();
    let err = ChatTemplate::from_model_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("chat_template.json"), "{err}");
}

#[test]
fn tools_and_documents_are_none_as_in_transformers() {
    // `tools is not none` is false in transformers (it passes tools=None); an undefined variable
    // would pass the test and render the tool section.
    let src = "{% if tools is not none %}T{% endif %}{% if documents is defined %}D{% endif %}";
    let t = ChatTemplate::new("t", src, "", "").unwrap();
    assert_eq!(
        t.render(&[json!({"role": "user", "content": "x"})], false)
            .unwrap(),
        "D"
    );
}

#[test]
fn a_short_response_is_not_found_inside_the_end_of_turn() {
    // The generation prompt differs from the finished turn (as in reasoning templates) and the
    // response `s` also occurs in the end-of-turn text `</s>`.
    let src = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% if m.role == 'assistant' %}</s>{% endif %}{% endfor %}{% if add_generation_prompt %}<think>{% endif %}";
    let t = ChatTemplate::new("odd", src, "", "").unwrap();
    let pair = t
        .render_pair(&[json!({"role": "user", "content": "x"})], "s")
        .unwrap();
    assert_eq!(pair.prompt, "[user]x<think>");
    assert_eq!(pair.full, "[user]x<think>s</s>");
}

#[test]
fn the_tokenizer_config_template_wins_over_the_processor_file() {
    // transformers' tokenizer never reads chat_template.json (its processor does).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        json!({"chat_template": "tok:{{ messages[0].content }}"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("chat_template.json"),
        json!({"chat_template": "proc:{{ messages[0].content }}"}).to_string(),
    )
    .unwrap();
    assert_eq!(render_hi(dir.path()), "tok:hi");
}

/// The template `dir` holds, rendered for one user message "hi".
fn render_hi(dir: &std::path::Path) -> String {
    let t = ChatTemplate::from_model_dir(dir).unwrap().unwrap();
    t.render(&[json!({"role": "user", "content": "hi"})], false)
        .unwrap()
}
