//! Rendered prompts are byte-identical to transformers' `apply_chat_template`, on strings written
//! by tools/make_fixtures.py for the built-in templates and a published Llama-3 template.

use cdr_prompt::ChatTemplate;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Fixture {
    transformers_version: String,
    templates: Vec<TemplateCase>,
}

#[derive(Deserialize)]
struct TemplateCase {
    name: String,
    source: String,
    bos_token: String,
    eos_token: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    messages: Vec<Value>,
    response: String,
    prompt: String,
    full: String,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/chat_templates.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn renders_byte_identical_to_transformers() {
    let fixture = fixture();
    let mut checked = 0;
    for t in &fixture.templates {
        let template = ChatTemplate::new(&t.name, &t.source, &t.bos_token, &t.eos_token).unwrap();
        for case in &t.cases {
            let pair = template
                .render_pair(&case.messages, &case.response)
                .unwrap_or_else(|e| panic!("{} / {}: {e}", t.name, case.name));
            assert_eq!(
                pair.prompt, case.prompt,
                "{} / {}: prompt",
                t.name, case.name
            );
            assert_eq!(
                pair.full, case.full,
                "{} / {}: prompt + response",
                t.name, case.name
            );
            checked += 1;
        }
    }
    println!(
        "{checked} renderings identical to transformers {}",
        fixture.transformers_version
    );
    assert!(checked >= 20);
}

#[test]
fn builtins_are_the_fixture_sources() {
    for t in fixture()
        .templates
        .iter()
        .filter(|t| !t.name.contains("official"))
    {
        let builtin = ChatTemplate::builtin(&t.name).unwrap();
        assert_eq!(builtin.source(), t.source, "{}", t.name);
        assert_eq!(builtin.eos_token(), t.eos_token, "{}", t.name);
    }
}

#[test]
fn covers_chatml_and_llama3() {
    let names: Vec<String> = fixture().templates.into_iter().map(|t| t.name).collect();
    for needed in ["chatml", "llama3", "llama3-official"] {
        assert!(names.iter().any(|n| n == needed), "fixture lacks {needed}");
    }
}
