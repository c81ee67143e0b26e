//! RewardBench 2 scoring and RewardBench results files, end to end on the tiny fixtures, checked
//! against the Python reimplementations in tools/.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::*;

const LIMITS: [&str; 4] = ["--max-prompt-tokens", "256", "--max-response-tokens", "64"];

fn rows() -> PathBuf {
    root().join("cdr-core/tests/fixtures/rewardbench2.jsonl")
}

fn eval(input: &Path, extra: &[&str]) -> std::process::Output {
    let (strong, weak) = (model("llama_gqa"), model("llama_sharded"));
    let input = input.display().to_string();
    let mut args = vec![
        "eval",
        "--strong",
        &strong,
        "--weak",
        &weak,
        "--input",
        &input,
        "--no-cache",
    ];
    args.extend(extra);
    args.extend(LIMITS);
    let o = cdr(&args);
    assert!(o.status.success(), "cdr eval: {}", stderr(&o));
    o
}

/// Runs a script of tools/ on `arg` and parses its JSON output.
fn tool(script: &str, arg: &Path) -> Value {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let o = Command::new(python)
        .arg(root().join("tools").join(script))
        .arg(arg)
        .output()
        .expect("python3 runs (set PYTHON to choose the interpreter)");
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(a: &Value, b: &Value, what: &str) {
    let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    assert!((a - b).abs() <= 1e-12, "{what}: cdr {a} vs reference {b}");
}

#[test]
fn rewardbench2_scores_match_the_python_reference_and_survive_resume() {
    let input = std::fs::read_to_string(rows()).unwrap();
    let ids: Vec<Value> = input
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        ids.len() >= 10,
        "the committed RewardBench 2 rows are missing"
    );
    let tmp = tempfile::tempdir().unwrap();
    let scored = tmp.path().join("scored.jsonl");
    let report = tmp.path().join("report.json");
    let results = tmp.path().join("results");
    let o = eval(
        &rows(),
        &[
            "--output",
            scored.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| RewardBench 2 subset |"), "{table}");

    let records = jsonl(&scored);
    assert_eq!(records.len(), ids.len());
    // The committed rows exercise a tie at the top (four identical completions: credit 1/4) and
    // the Ties subset.
    let credits: Vec<f64> = records
        .iter()
        .filter_map(|r| r["credit"].as_f64())
        .collect();
    assert!(credits.contains(&0.25), "{credits:?}");
    assert!(records.iter().any(|r| r["credit"].is_null()));

    let r = read_json(&report);
    let rb2 = &r["rewardbench2"];
    let reference = tool("rewardbench2_reference.py", &scored);
    let subsets = rb2["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 6);
    for s in subsets {
        let name = s["subset"].as_str().unwrap();
        close(&s["score"], &reference["subsets"][name], name);
    }
    for part in [
        "score",
        "ref_accuracy",
        "tied_accuracy",
        "correctness_preferred",
        "correctness_preferred_hard",
        "margin_score",
    ] {
        close(&rb2["ties"][part], &reference["ties"][part], part);
    }
    assert_eq!(
        rb2["ties"]["paired_prompts"],
        reference["ties"]["paired_prompts"]
    );
    close(&rb2["mean"], &reference["mean"], "mean");
    close(&rb2["score"], &reference["score"], "score");

    // The v2 results file reads as RewardBench's loader reads it, with the same numbers.
    let loaded = tool("rewardbench_results.py", &results);
    let loaded = &loaded.as_array().unwrap()[0];
    assert_eq!(loaded["model"], "llama_gqa");
    assert_eq!(loaded["ref_model"], "llama_sharded");
    for s in subsets {
        let name = s["subset"].as_str().unwrap();
        close(&loaded["subsets"][name], &s["score"], name);
    }

    // A run killed part-way resumes from the scored rows it wrote and reports the same.
    let text = std::fs::read_to_string(&scored).unwrap();
    let kept: Vec<&str> = text.lines().take(5).collect();
    std::fs::write(&scored, kept.join("\n") + "\n").unwrap();
    eval(
        &rows(),
        &[
            "--output",
            scored.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(jsonl(&scored).len(), ids.len());
    assert_eq!(read_json(&report)["rewardbench2"], r["rewardbench2"]);
}

#[test]
fn v1_results_file_loads_like_rewardbench() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.json");
    let results = tmp.path().join("results");
    eval(
        &pairs(),
        &[
            "--report",
            report.to_str().unwrap(),
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    let file = results.join("llama_gqa.json");
    let raw = read_json(&file);
    assert_eq!(raw["model_type"], "DPO");
    assert!(raw["chat_template"].is_string());

    let r = read_json(&report);
    let by_subset = r["results"]["by_subset"].as_object().unwrap();
    assert!(!by_subset.is_empty());
    let loaded = tool("rewardbench_results.py", &results);
    let loaded = &loaded.as_array().unwrap()[0];
    assert_eq!(loaded["model"], "llama_gqa");
    assert_eq!(loaded["ref_model"], "llama_sharded");
    let subsets = loaded["subsets"].as_object().unwrap();
    assert_eq!(subsets.len(), by_subset.len());
    for (name, t) in by_subset {
        let acc = t["correct"].as_f64().unwrap() / t["total"].as_f64().unwrap();
        close(&subsets[name], &Value::from(acc), name);
    }
    // RewardBench's section scores, computed by the reader from the file, agree with cdr's.
    let sections = r["rewardbench"]["sections"].as_array().unwrap();
    assert!(!sections.is_empty());
    for s in sections {
        let name = s["section"].as_str().unwrap();
        let ours = s["score"].as_f64().unwrap() / 100.0;
        close(&loaded["sections"][name], &Value::from(ours), name);
    }
}
