//! Published chat templates — the ~70 that llama.cpp collects from released models (Llama 3.x,
//! Qwen 2.5/3, Gemma, Mistral, DeepSeek, Phi, Granite, Command-R, ...) — render byte-identical to
//! transformers, or fail where transformers fails.
//!
//! The templates are third-party files, so they are fetched (tools/fetch_assets.sh templates, from
//! the llama-cpp-python sdist on PyPI) and rendered by transformers (tools/template_conformance.py)
//! at CI time, never committed. `.ci/run` does both; there the test fails if the reference is
//! missing. Elsewhere it says so and checks nothing.

use std::path::PathBuf;

use cdr_prompt::ChatTemplate;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Reference {
    transformers_version: String,
    special_tokens: SpecialTokens,
    templates: Vec<Template>,
}

#[derive(Deserialize)]
struct SpecialTokens {
    bos_token: String,
    eos_token: String,
}

#[derive(Deserialize)]
struct Template {
    name: String,
    source: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    messages: Vec<Value>,
    response: String,
    prompt: Rendering,
    full: Rendering,
}

/// What transformers did: rendered `output`, or raised `error`.
#[derive(Deserialize)]
struct Rendering {
    output: Option<String>,
    error: Option<String>,
}

/// The fetched reference; its test is ignored where it is absent (see build.rs), so missing
/// here is a failure.
fn reference() -> Reference {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/assets/templates/expected.json");
    assert!(
        path.is_file(),
        "{} is missing: run tools/fetch_assets.sh templates",
        path.display()
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The first differing line of two renderings, for a readable failure.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<_>, Vec<_>) = (want.split('\n').collect(), got.split('\n').collect());
    for i in 0..w.len().max(g.len()) {
        if w.get(i) != g.get(i) {
            return format!(
                "line {}: transformers {:?} / cdr {:?}",
                i + 1,
                w.get(i),
                g.get(i)
            );
        }
    }
    "same lines".into()
}

fn compare(
    what: &str,
    want: &Rendering,
    got: Result<String, cdr_prompt::PromptError>,
) -> Option<String> {
    match (&want.output, &want.error, got) {
        (Some(w), _, Ok(g)) if *w == g => None,
        (Some(w), _, Ok(g)) => Some(format!("{what}: {}", first_difference(w, &g))),
        (Some(_), _, Err(e)) => Some(format!("{what}: cdr fails where transformers renders: {e}")),
        (None, Some(_), Err(_)) => None,
        // Known, deliberate: minijinja iterates `none` as empty where Python raises. Only the
        // `tool_use` variants of a few templates loop over `tools` unguarded; their default
        // variants do not. Counted and printed by the caller.
        (None, Some(e), Ok(_)) if e.contains("'NoneType' object is not iterable") => None,
        (None, Some(e), Ok(_)) => {
            Some(format!("{what}: cdr renders where transformers raises {e}"))
        }
        (None, None, _) => Some(format!(
            "{what}: the reference has neither output nor error"
        )),
    }
}

/// The scored text: transformers' prompt, then the response and what the finished turn writes
/// after it (the turn's end); all of it text transformers rendered.
fn check_pair(
    template: &ChatTemplate,
    case: &Case,
    prompt: &str,
    finished: &str,
) -> Option<String> {
    let pair = match template.render_pair(&case.messages, &case.response) {
        Ok(pair) => pair,
        Err(e) => return Some(e.to_string()),
    };
    let response_part = &pair.full[pair.response_start()..];
    if pair.prompt != prompt {
        Some("the prompt differs from transformers'".into())
    } else if !finished.ends_with(response_part) {
        Some(format!(
            "{response_part:?} is not the end of transformers' finished conversation"
        ))
    } else if !response_part.contains(case.response.trim()) {
        Some(format!("{response_part:?} does not hold the response"))
    } else {
        None
    }
}

#[test]
#[cfg_attr(
    not(cdr_has_templates),
    ignore = "needs tools/fetch_assets.sh templates"
)]
fn published_templates_render_like_transformers() {
    let reference = reference();
    let tokens = &reference.special_tokens;
    let (mut checked, mut raised, mut checked_pairs, mut none_iteration) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for t in &reference.templates {
        let template =
            match ChatTemplate::new(&t.name, &t.source, &tokens.bos_token, &tokens.eos_token) {
                Ok(template) => template,
                Err(e) => {
                    failures.push(format!("{}: does not compile: {e}", t.name));
                    continue;
                }
            };
        for case in &t.cases {
            let mut full_messages = case.messages.clone();
            full_messages.push(serde_json::json!({"role": "assistant", "content": case.response}));
            if let (Some(prompt), Some(finished)) = (&case.prompt.output, &case.full.output) {
                checked_pairs += 1;
                if let Some(f) = check_pair(&template, case, prompt, finished) {
                    failures.push(format!("{} / {} / pair: {f}", t.name, case.name));
                }
            }
            for (kind, want, got) in [
                (
                    "prompt",
                    &case.prompt,
                    template.render(&case.messages, true),
                ),
                ("full", &case.full, template.render(&full_messages, false)),
            ] {
                checked += 1;
                raised += usize::from(want.error.is_some());
                none_iteration += usize::from(
                    want.error
                        .as_deref()
                        .is_some_and(|e| e.contains("'NoneType' object is not iterable"))
                        && got.is_ok(),
                );
                if let Some(f) = compare(&format!("{} / {} / {kind}", t.name, case.name), want, got)
                {
                    failures.push(f);
                }
            }
        }
    }
    println!(
        "{} published templates, {checked} renderings ({raised} raise in transformers {}), \
         {checked_pairs} prompt/response pairs: {} failures; {none_iteration} renderings loop \
         over `tools=None`, which transformers refuses and cdr renders as empty",
        reference.templates.len(),
        reference.transformers_version,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} renderings differ from transformers:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
