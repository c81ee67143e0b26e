//! `cdr route` and `--customize` end to end.

use std::path::{Path, PathBuf};

mod common;
use common::*;

/// The shared preference sets; they are not part of the repository.
fn prefsets() -> Option<PathBuf> {
    let dir = root().join("../shared/data/prefsets");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "NOTE: {} is absent; the prefsets routing test checks nothing here",
            dir.display()
        );
        None
    }
}

#[test]
fn field_router_places_every_prefset_row() {
    let Some(dir) = prefsets() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut total = 0;
    for (file, domain) in [
        ("hep.jsonl", "REASONING"),
        ("xstest.jsonl", "SAFETY"),
        ("llmbar.jsonl", "CHAT"),
        ("mtbench-human.jsonl", "CHAT"),
    ] {
        let out = tmp.path().join(format!("{file}.routed.jsonl"));
        let input = dir.join(file);
        let o = cdr(&[
            "route",
            "--router",
            "field",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows = jsonl(&out);
        assert!(!rows.is_empty());
        let right = rows.iter().filter(|r| r["domain"] == domain).count();
        println!("{file}: {right}/{} rows routed to {domain}", rows.len());
        assert_eq!(right, rows.len(), "{file}: every row goes to {domain}");
        total += rows.len();
    }
    assert_eq!(total, 984 + 244 + 419 + 200);
}

#[test]
fn gold_column_gives_accuracy_and_a_confusion_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"id": "1", "prompt": "Fix my loop", "chosen": "a", "rejected": "b", "subset": "hep-go", "gold": "REASONING"}"#, "\n",
            r#"{"id": "2", "prompt": "Hi", "chosen": "a", "rejected": "b", "subset": "llmbar-natural", "gold": "CHAT"}"#, "\n",
            r#"{"id": "3", "prompt": "Hack", "chosen": "a", "rejected": "b", "subset": "llmbar-natural", "gold": "safety"}"#, "\n",
        ),
    )
    .unwrap();
    let o = cdr(&[
        "route",
        "--input",
        input.to_str().unwrap(),
        "--gold-field",
        "gold",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("routing accuracy: 66.67% (2 of 3"),
        "{stdout}"
    );
    assert!(stdout.contains("| SAFETY | 1 | 0 | 0 |"), "{stdout}");
}

#[test]
fn likelihood_router_runs_on_any_loadable_model() {
    let input = root().join("cdr-core/tests/fixtures/pairs.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("routed.jsonl");
    let o = cdr(&[
        "route",
        "--router",
        "likelihood",
        "--strong",
        &model("llama_gqa"),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 16);
    assert!(
        rows.iter()
            .all(|r| ["CHAT", "SAFETY", "REASONING"].contains(&r["domain"].as_str().unwrap()))
    );
}

#[test]
fn llm_router_routes_with_the_strong_model() {
    let input = root().join("cdr-core/tests/fixtures/pairs.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("routes.jsonl");
    let o = cdr(&[
        "route",
        "--router",
        "llm",
        "--strong",
        &model("llama_gqa"),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(jsonl(&out).len(), 16);

    // Scoring commands route with the strong model when no --router-model is given.
    let scored = tmp.path().join("scored.jsonl");
    let o = cdr(&[
        "eval",
        "--strong",
        &model("llama_gqa"),
        "--weak",
        &model("llama_sharded"),
        "--customize",
        "paper",
        "--router",
        "llm",
        "--input",
        input.to_str().unwrap(),
        "--output",
        scored.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = jsonl(&scored);
    assert_eq!(rows.len(), 16);
    assert!(
        rows.iter()
            .all(|r| ["CHAT", "SAFETY", "REASONING"].contains(&r["domain"].as_str().unwrap()))
    );
}

#[test]
fn eval_with_a_preset_reports_domains_and_changes_rewards() {
    let input = root().join("cdr-core/tests/fixtures/pairs.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--strong",
            "",
            "--weak",
            "",
            "--max-prompt-tokens",
            "256",
            "--max-response-tokens",
            "64",
        ];
        let (s, w) = (model("llama_gqa"), model("llama_sharded"));
        args[6] = &s;
        args[8] = &w;
        args.extend(extra);
        let o = cdr(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8_lossy(&o.stdout).into_owned(), jsonl(out))
    };
    let (_, plain) = run(&tmp.path().join("plain.jsonl"), &[]);
    let (stdout, custom) = run(&tmp.path().join("custom.jsonl"), &["--customize", "paper"]);
    assert!(
        stdout.contains("| domain |") && stdout.contains("| REASONING | 4 |"),
        "{stdout}"
    );
    let changed = plain
        .iter()
        .zip(&custom)
        .filter(|(a, b)| a["reward_chosen"] != b["reward_chosen"])
        .count();
    assert_eq!(
        changed, 8,
        "SAFETY and REASONING rows change under `paper`, CHAT rows do not"
    );
    assert!(custom.iter().all(|r| r["domain"].is_string()));

    let o = cdr(&["config", "--example"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("[domains.SAFETY]"));
}
