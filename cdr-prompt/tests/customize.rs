//! Customization against the Python reference (tools/make_fixtures.py): customized conversations,
//! exemplar choices and their renderings with ChatML and Llama-3 templates, draws and routes.

use cdr_prompt::{ChatTemplate, Customization, CustomizeError, draw};
use cdr_types::Message;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

#[derive(Deserialize)]
struct Fixture {
    response: String,
    templates: HashMap<String, Tokens>,
    cases: Vec<Case>,
    draws: Vec<Draw>,
    routes: Vec<RouteCase>,
}

#[derive(Deserialize)]
struct Tokens {
    bos_token: String,
    eos_token: String,
}

#[derive(Deserialize)]
struct Case {
    preset: String,
    domain: String,
    template: String,
    seed: u64,
    id: String,
    messages: Vec<Message>,
    customized_messages: Vec<Message>,
    exemplar_index: Option<usize>,
    prompt: String,
    full: String,
}

#[derive(Deserialize)]
struct Draw {
    seed: u64,
    key: String,
    value: u64,
}

#[derive(Deserialize)]
struct RouteCase {
    row: Value,
    domain: String,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/customized.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn customized_text_equals_the_reference_for_every_preset_domain_and_template() {
    let f = fixture();
    let mut checked = 0;
    for c in &f.cases {
        let mut config = Customization::preset(&c.preset).unwrap();
        config.seed = c.seed;
        let out = config.apply(&c.messages, &c.domain, &c.id).unwrap();
        let what = format!(
            "{} / {} / {} / {} / seed {}",
            c.preset, c.domain, c.template, c.id, c.seed
        );
        assert_eq!(out.messages, c.customized_messages, "{what}");
        assert_eq!(out.exemplar, c.exemplar_index, "{what}: exemplar");
        let t = &f.templates[&c.template];
        let template = ChatTemplate::builtin(&c.template).unwrap();
        let template =
            ChatTemplate::new(&c.template, template.source(), &t.bos_token, &t.eos_token).unwrap();
        let pair = template.render_pair(&out.messages, &f.response).unwrap();
        assert_eq!(pair.prompt, c.prompt, "{what}: rendered prompt");
        assert_eq!(pair.full, c.full, "{what}: rendered prompt + response");
        checked += 1;
    }
    assert!(checked >= 60, "{checked}");
    for preset in cdr_prompt::PRESETS {
        for domain in ["CHAT", "SAFETY", "REASONING"] {
            for template in ["chatml", "llama3"] {
                assert!(
                    f.cases.iter().any(|c| c.preset == preset
                        && c.domain == domain
                        && c.template == template),
                    "fixture lacks {preset} / {domain} / {template}"
                );
            }
        }
    }
}

#[test]
fn exemplar_choice_is_stable_shared_by_a_row_and_moves_with_the_seed() {
    let config = Customization::preset("both").unwrap();
    let convo = [Message::user("How do I pick a lock?")];
    let first = config.apply(&convo, "SAFETY", "row-7").unwrap().exemplar;
    for _ in 0..3 {
        assert_eq!(
            config.apply(&convo, "SAFETY", "row-7").unwrap().exemplar,
            first
        );
    }
    // Another candidate of the same row (a different conversation tail does not matter).
    let other = [Message::user("Something else entirely")];
    assert_eq!(
        config.apply(&other, "SAFETY", "row-7").unwrap().exemplar,
        first
    );
    let picks: std::collections::HashSet<_> = (0..16)
        .map(|seed| {
            let mut c = config.clone();
            c.seed = seed;
            c.apply(&convo, "SAFETY", "row-7").unwrap().exemplar
        })
        .collect();
    assert!(picks.len() > 1, "the seed changes the exemplar");
}

#[test]
fn draw_matches_the_python_reference() {
    for d in fixture().draws {
        assert_eq!(
            draw(d.seed, &d.key),
            d.value,
            "draw({}, {:?})",
            d.seed,
            d.key
        );
    }
}

#[test]
fn field_routing_matches_the_python_reference() {
    let config = Customization::default_config().unwrap();
    for r in fixture().routes {
        let got = config
            .route_by_field(r.row["domain"].as_str(), r.row["subset"].as_str())
            .unwrap();
        assert_eq!(got, r.domain, "{}", r.row);
    }
}

#[track_caller]
fn invalid(toml_text: &str) -> String {
    Customization::from_toml(toml_text, Path::new("my.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_configs_name_the_file_and_key() {
    let good = cdr_prompt::customize::DEFAULT_CONFIG;
    let msg = invalid(&good.replace("seed = 0", "seed = [0"));
    assert!(msg.contains("my.toml"), "malformed TOML: {msg}");

    let msg = invalid(&good.replace("default_domain = \"CHAT\"", "default_domain = \"MATH\""));
    assert!(
        msg.contains("my.toml") && msg.contains("default_domain") && msg.contains("MATH"),
        "{msg}"
    );

    // A route to a domain that is not configured.
    let mut doc: toml::Table = toml::from_str(good).unwrap();
    doc["route"].as_array_mut().unwrap()[0]
        .as_table_mut()
        .unwrap()
        .insert("domain".into(), toml::Value::String("CODE".into()));
    let msg = invalid(&toml::to_string(&doc).unwrap());
    assert!(
        msg.contains("my.toml") && msg.contains("CODE") && msg.contains("route[0]"),
        "{msg}"
    );

    // Exemplars switched on for a domain without any.
    let mut doc: toml::Table = toml::from_str(good).unwrap();
    let chat = doc["domains"]["CHAT"].as_table().unwrap().clone();
    let mut chat = chat;
    chat.insert("use_exemplars".into(), toml::Value::Boolean(true));
    chat.insert("exemplars".into(), toml::Value::Array(vec![]));
    doc["domains"]
        .as_table_mut()
        .unwrap()
        .insert("CHAT".into(), toml::Value::Table(chat));
    let msg = invalid(&toml::to_string(&doc).unwrap());
    assert!(
        msg.contains("my.toml") && msg.contains("domains.CHAT.exemplars"),
        "{msg}"
    );

    // An unknown key inside a domain.
    let msg = invalid(&good.replacen("use_exemplars = false", "use_exemplar = false", 1));
    assert!(
        msg.contains("my.toml") && msg.contains("use_exemplar"),
        "{msg}"
    );

    let err = Customization::from_file(Path::new("/nonexistent/custom.toml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/custom.toml"));
}

#[test]
fn unknown_domain_and_preset_are_errors() {
    let config = Customization::default_config().unwrap();
    let err = config
        .apply(&[Message::user("hi")], "MEDICAL", "r")
        .unwrap_err();
    assert!(matches!(err, CustomizeError::UnknownDomain { .. }));
    assert!(err.to_string().contains("MEDICAL") && err.to_string().contains("SAFETY"));
    let err = config.route_by_field(Some("medical"), None).unwrap_err();
    assert!(err.to_string().contains("medical"));
    let msg = Customization::resolve("fancy").unwrap_err().to_string();
    assert!(msg.contains("fancy") && msg.contains("paper"), "{msg}");
}
