//! `cdr annotate --pair-strategy length-controlled` end to end on the tiny fixtures.

use std::path::Path;

use serde_json::{Value, json};

mod common;
use common::*;

const MAX_RESPONSE_TOKENS: usize = 16;

/// Best-of-8 rows built from the pairwise fixture: responses of many lengths, the last one
/// marked as a sample that stopped for length (as `cdr generate` writes `finish_reasons`).
fn best_of_8(dir: &Path) -> (String, usize) {
    let text = std::fs::read_to_string(pairs()).unwrap();
    let mut out = String::new();
    let mut rows = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let (c, r) = (
            v["chosen"].as_str().unwrap(),
            v["rejected"].as_str().unwrap(),
        );
        let responses = [
            c.to_string(),
            r.to_string(),
            "I am not sure.".to_string(),
            "No.".to_string(),
            format!("{c} {c}"),
            format!("To answer briefly: {r}"),
            format!("{c}\n\nI hope this helps, and let me know if you need anything else."),
            format!("{r} {r} {r}"),
        ];
        let mut finish = vec!["eos"; 7];
        finish.push("length");
        let row = json!({
            "id": v["id"], "prompt": v["prompt"], "responses": responses, "finish_reasons": finish,
        });
        out.push_str(&row.to_string());
        out.push('\n');
        rows += 1;
    }
    let path = dir.join("bo8.jsonl");
    std::fs::write(&path, out).unwrap();
    (path.display().to_string(), rows)
}

fn annotate(input: &str, output: &Path, extra: &[&str]) -> std::process::Output {
    let (strong, weak) = (model("llama_gqa"), model("llama_sharded"));
    let limit = MAX_RESPONSE_TOKENS.to_string();
    let output = output.display().to_string();
    let mut args = vec![
        "annotate",
        "--strong",
        &strong,
        "--weak",
        &weak,
        "--input",
        input,
        "--output",
        &output,
        "--pair-strategy",
        "length-controlled",
        "--no-cache",
        "--max-response-tokens",
        &limit,
    ];
    args.extend(extra);
    cdr(&args)
}

#[test]
fn length_controlled_pairs_report_alpha_gap_and_drops_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, rows) = best_of_8(tmp.path());
    assert!(rows > 0, "the pairwise fixture is missing");
    let out = tmp.path().join("pairs.jsonl");
    let o = annotate(&input, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("length control: alpha"),
        "{}",
        stderr(&o)
    );

    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("pairs.jsonl.report.json")).unwrap(),
    )
    .unwrap();
    let pairs = jsonl(&out);
    assert!(!pairs.is_empty());
    assert_eq!(report["pairs"].as_u64().unwrap() as usize, pairs.len());

    // Dropped: every sample marked as stopped for length, plus those cut to the token limit.
    let scores = jsonl(&tmp.path().join("pairs.jsonl.scores.jsonl"));
    assert_eq!(scores.len(), rows);
    let cut = scores
        .iter()
        .flat_map(|s| s["scores"].as_array().unwrap()[..7].to_vec())
        .filter(|s| {
            s["truncated"].as_bool().unwrap()
                && s["n_response_tokens"].as_u64().unwrap() as usize >= MAX_RESPONSE_TOKENS
        })
        .count();
    assert!(cut > 0, "the limit cuts some responses");
    assert_eq!(
        report["dropped_truncated"].as_u64().unwrap() as usize,
        rows + cut
    );

    // The reported gap is the pairs' gap, and the search did not widen it.
    let search = &report["search"];
    let alpha = search["alpha"].as_f64().unwrap();
    let gap: f64 = pairs
        .iter()
        .map(|p| p["length_chosen"].as_f64().unwrap() - p["length_rejected"].as_f64().unwrap())
        .sum::<f64>()
        / pairs.len() as f64;
    assert!((gap - search["gap_after"].as_f64().unwrap()).abs() < 1e-9);
    assert!(gap.abs() <= search["gap_before"].as_f64().unwrap().abs());
    for p in &pairs {
        assert!(p["length_chosen"].as_f64().unwrap() < MAX_RESPONSE_TOKENS as f64);
        assert!(p["length_rejected"].as_f64().unwrap() < MAX_RESPONSE_TOKENS as f64);
        let penalized = |side: &str| {
            p[format!("score_{side}")].as_f64().unwrap()
                - alpha * p[format!("length_{side}")].as_f64().unwrap()
        };
        let margin = p["margin"].as_f64().unwrap();
        assert!(margin > 0.0);
        assert!((margin - (penalized("chosen") - penalized("rejected"))).abs() < 1e-9);
    }

    // A rerun resumes from the scores and writes the same pairs.
    let o = annotate(&input, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("({rows} already done)")),
        "{}",
        stderr(&o)
    );
    assert_eq!(jsonl(&out), pairs);

    // One alpha needs every row: a shard is refused.
    let o = annotate(&input, &tmp.path().join("shard.jsonl"), &["--shard", "0/2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("whole file"), "{}", stderr(&o));
}

#[test]
fn every_strategy_writes_a_margin() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, _) = best_of_8(tmp.path());
    let out = tmp.path().join("pairs.jsonl");
    let (strong, weak) = (model("llama_gqa"), model("llama_sharded"));
    let output = out.display().to_string();
    let o = cdr(&[
        "annotate",
        "--strong",
        &strong,
        "--weak",
        &weak,
        "--input",
        &input,
        "--output",
        &output,
        "--no-cache",
        "--max-response-tokens",
        "64",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pairs = jsonl(&out);
    assert!(!pairs.is_empty());
    for p in pairs {
        let want = p["score_chosen"].as_f64().unwrap() - p["score_rejected"].as_f64().unwrap();
        assert_eq!(p["margin"].as_f64().unwrap(), want);
    }
}
