//! End-to-end tests of the `cdr` binary on the tiny fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::*;

const LIMITS: [&str; 4] = ["--max-prompt-tokens", "256", "--max-response-tokens", "64"];

fn eval_args<'a>(input: &'a str, output: &'a str) -> Vec<&'a str> {
    let mut args = vec!["eval", "--input", input, "--output", output];
    args.extend(LIMITS);
    args
}

fn with_models(mut args: Vec<String>) -> Vec<String> {
    args.extend([
        "--strong".into(),
        model("llama_gqa"),
        "--weak".into(),
        model("llama_sharded"),
    ]);
    args
}

fn run(args: &[&str]) -> Output {
    let args = with_models(args.iter().map(|s| s.to_string()).collect());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    cdr(&refs)
}

#[test]
fn eval_reproduces_the_python_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("scored.jsonl");
    let input = pairs().display().to_string();
    let o = run(&eval_args(&input, out.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| hep-python |") && stdout.contains("overall"),
        "{stdout}"
    );

    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("cdr-core/tests/fixtures/expected_rewards.json"))
            .unwrap(),
    )
    .unwrap();
    let rows = jsonl(&out);
    let exp_rows = expected["rows"].as_array().unwrap();
    assert_eq!(rows.len(), exp_rows.len());
    let mut worst = 0.0f64;
    for (got, want) in rows.iter().zip(exp_rows) {
        assert_eq!(got["id"], want["id"]);
        for side in ["chosen", "rejected"] {
            let g = got[format!("reward_{side}")].as_f64().unwrap();
            let w = want[side]["reward_sum"].as_f64().unwrap();
            worst = worst.max((g - w).abs());
            assert!((g - w).abs() <= 1e-3, "{}: {side} {g} vs {w}", got["id"]);
        }
        assert_eq!(got["correct"], want["correct"], "{}: decision", got["id"]);
    }
    println!(
        "cdr eval vs python reference: max |reward diff| = {worst:.3e} over {} rows",
        rows.len()
    );

    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("scored.jsonl.report.json")).unwrap(),
    )
    .unwrap();
    let acc = report["accuracy"].as_f64().unwrap();
    assert!((acc - expected["accuracy"].as_f64().unwrap()).abs() < 1e-12);
    assert_eq!(report["truncated_responses"], 8);
    for (subset, want) in expected["accuracy_per_subset"].as_object().unwrap() {
        let t = &report["results"]["by_subset"][subset];
        let got = t["correct"].as_f64().unwrap() / t["total"].as_f64().unwrap();
        assert!((got - want.as_f64().unwrap()).abs() < 1e-12, "{subset}");
    }
}

/// Rows of `pairs.jsonl` repeated under new ids, so a run has many chunks to interrupt.
fn many_rows(dir: &Path, copies: usize) -> PathBuf {
    let base = std::fs::read_to_string(pairs()).unwrap();
    let mut out = String::new();
    for c in 0..copies {
        for line in base.lines() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            v["id"] = Value::String(format!("{}-{c}", v["id"].as_str().unwrap()));
            out.push_str(&v.to_string());
            out.push('\n');
        }
    }
    let path = dir.join("many.jsonl");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn a_killed_run_resumes_to_the_same_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let input = many_rows(tmp.path(), 6);
    let input = input.to_str().unwrap();
    let full = tmp.path().join("full.jsonl");
    let o = run(&[
        eval_args(input, full.to_str().unwrap()),
        vec!["--chunk-rows", "4"],
    ]
    .concat());
    assert!(o.status.success(), "{}", stderr(&o));

    let resumed = tmp.path().join("resumed.jsonl");
    let args = with_models(
        [
            eval_args(input, resumed.to_str().unwrap()),
            vec!["--chunk-rows", "4"],
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdr"))
        .args(&args)
        .arg("--quiet")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some rows, but not all, are on disk.
    let total = jsonl(&full).len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n = std::fs::read_to_string(&resumed)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 8 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::read_to_string(&resumed).unwrap().lines().count();
    assert!(
        partial > 0 && partial < total,
        "killed with {partial} of {total} rows written"
    );

    let o = cdr(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already done"), "{}", stderr(&o));
    let (a, b) = (jsonl(&full), jsonl(&resumed));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["id"], y["id"], "same rows in the same order");
        assert_eq!(x["correct"], y["correct"]);
        let (rx, ry) = (
            x["reward_chosen"].as_f64().unwrap(),
            y["reward_chosen"].as_f64().unwrap(),
        );
        assert!((rx - ry).abs() < 1e-4, "{}: {rx} vs {ry}", x["id"]);
    }
}

#[test]
fn annotate_writes_trl_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bon = String::new();
    for line in std::fs::read_to_string(pairs()).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let row = serde_json::json!({
            "id": v["id"], "prompt": v["prompt"],
            "responses": [v["chosen"], v["rejected"], "I am not sure."],
        });
        bon.push_str(&row.to_string());
        bon.push('\n');
    }
    let input = tmp.path().join("bon.jsonl");
    std::fs::write(&input, bon).unwrap();
    let out = tmp.path().join("pairs.jsonl");
    let o = run(&[
        "annotate",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = jsonl(&out);
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(
            r["prompt"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["role"].is_string())
        );
        assert_eq!(r["chosen"][0]["role"], "assistant");
        assert_eq!(r["rejected"][0]["role"], "assistant");
        assert!(r["score_chosen"].as_f64().unwrap() > r["score_rejected"].as_f64().unwrap());
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn bad_input_lines_name_file_and_line_and_keep_written_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.jsonl");
    let good = r#"{"id": "a", "prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}"#;
    let good_input = write(tmp.path(), "good.jsonl", &format!("{good}\n"));
    let o = run(&eval_args(&good_input, out.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read_to_string(&out).unwrap();

    for (name, line, needle) in [
        ("invalid JSON", "{\"id\": \"b\", \"prompt\": ", "line 2"),
        (
            "missing field",
            r#"{"id": "b", "prompt": "Hi", "chosen": "x"}"#,
            "rejected",
        ),
        (
            "empty response",
            r#"{"id": "b", "prompt": "Hi", "chosen": "  ", "rejected": "x"}"#,
            "chosen",
        ),
    ] {
        let input = write(tmp.path(), "bad.jsonl", &format!("{good}\n{line}\n"));
        let o = run(&eval_args(&input, out.to_str().unwrap()));
        assert!(!o.status.success(), "{name}: should fail");
        let err = stderr(&o);
        assert!(
            err.contains("bad.jsonl") && err.contains(needle),
            "{name}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            before,
            "{name}: output changed"
        );

        let o = run(&[
            eval_args(&input, out.to_str().unwrap()),
            vec!["--skip-invalid"],
        ]
        .concat());
        assert!(
            o.status.success(),
            "{name} with --skip-invalid: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("skipped"), "{name}: {}", stderr(&o));
    }
}

#[test]
fn long_prompts_are_truncated_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "word ".repeat(400);
    let input = write(
        tmp.path(),
        "long.jsonl",
        &format!(
            "{}\n",
            serde_json::json!({"id": "l", "prompt": long, "chosen": "Yes.", "rejected": "No."})
        ),
    );
    let out = tmp.path().join("out.jsonl");
    let o = run(&[
        "eval",
        "--input",
        &input,
        "--output",
        out.to_str().unwrap(),
        "--max-prompt-tokens",
        "32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 truncated responses"),
        "{}",
        stderr(&o)
    );
    let row = &jsonl(&out)[0];
    assert_eq!(row["chosen"]["n_prompt_tokens"], 32);
    assert_eq!(row["chosen"]["truncated"], true);
}

#[test]
fn unknown_template_and_missing_model_are_clear_errors() {
    let input = pairs().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.jsonl");
    let o = run(&[
        eval_args(&input, out.to_str().unwrap()),
        vec!["--template", "vicuna"],
    ]
    .concat());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("vicuna") && stderr(&o).contains("chatml"),
        "{}",
        stderr(&o)
    );

    let o = cdr(&[
        "eval",
        "--input",
        &input,
        "--strong",
        "/nonexistent/model",
        "--weak",
        &model("llama_sharded"),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/model") && stderr(&o).contains("--strong"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bf16_on_wgpu_is_refused_up_front() {
    let input = pairs().display().to_string();
    let o = run(&[
        "eval", "--input", &input, "--device", "wgpu", "--dtype", "bf16",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bf16"), "{}", stderr(&o));
}

#[test]
fn different_tokenizers_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let weak = tmp.path().join("weak");
    std::fs::create_dir(&weak).unwrap();
    for entry in std::fs::read_dir(model("llama_sharded")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), weak.join(e.file_name())).unwrap();
    }
    // Same vocabulary, but two frequent tokens swap ids.
    let path = weak.join("tokenizer.json");
    let mut tok: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let (a, b) = (vocab["e"].clone(), vocab["t"].clone());
    vocab.insert("e".into(), b);
    vocab.insert("t".into(), a);
    std::fs::write(&path, tok.to_string()).unwrap();

    let input = pairs().display().to_string();
    let out = tmp.path().join("o.jsonl");
    let base = vec![
        "eval".to_string(),
        "--input".into(),
        input,
        "--output".into(),
        out.display().to_string(),
        "--strong".into(),
        model("llama_gqa"),
        "--weak".into(),
        weak.display().to_string(),
    ];
    let refs: Vec<&str> = base.iter().map(String::as_str).collect();
    let o = cdr(&refs);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tokenizers disagree"), "{}", stderr(&o));

    let mut allowed = refs.clone();
    allowed.push("--allow-tokenizer-mismatch");
    let o = cdr(&allowed);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn uncustomized_records_and_report_keep_the_rows_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"id": "a", "prompt": "Hi", "chosen": "Hello!", "rejected": "Go.", "domain": "chat"}"#,
            "\n",
            r#"{"id": "b", "prompt": "2+2?", "chosen": "4", "rejected": "5", "domain": "math"}"#,
            "\n",
            r#"{"id": "c", "prompt": "2+3?", "chosen": "5", "rejected": "6"}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = tmp.path().join("scored.jsonl");
    let o = run(&eval_args(input.to_str().unwrap(), out.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    let domains: Vec<Value> = jsonl(&out).iter().map(|r| r["domain"].clone()).collect();
    assert_eq!(
        domains,
        [Value::from("chat"), Value::from("math"), Value::Null]
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("| math | 1 |"), "{stdout}");
}
