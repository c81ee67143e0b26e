//! `cdr pairs`, `cdr logprobs` and the log-prob cache, end to end on the tiny fixtures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::*;

const LIMITS: [&str; 4] = ["--max-prompt-tokens", "256", "--max-response-tokens", "64"];

fn run(args: &[&str]) -> std::process::Output {
    let o = cdr(&[args, &LIMITS].concat());
    assert!(o.status.success(), "cdr {args:?}: {}", stderr(&o));
    o
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The cache's tables and their entry lines.
fn tables(cache: &Path) -> BTreeMap<PathBuf, Vec<String>> {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lp"))
        .map(|p| {
            let lines = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect();
            (p, lines)
        })
        .collect()
}

fn n_rows() -> usize {
    std::fs::read_to_string(pairs()).unwrap().lines().count()
}

#[test]
fn pairs_scores_each_model_once_and_matches_eval_pair_by_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let report = tmp.path().join("pairs.json");
    let input = pairs().display().to_string();
    // Three ChatML models with one tokenizer pipeline (qwen2 models tokenize as transformers'
    // Qwen2Tokenizer does, which differs from these on some rows).
    let models = ["llama_gqa", "llama_sharded", "llama_linear"].map(model);
    let mut args = vec![
        "pairs",
        "--input",
        &input,
        "--cache",
        cache.to_str().unwrap(),
    ];
    args.extend(["--report", report.to_str().unwrap(), "--models"]);
    args.extend(models.iter().map(String::as_str));
    let o = run(&args);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("| rank | strong | weak |"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Three models, one template: three scoring passes, each leaving one full cache table.
    let texts = 2 * n_rows();
    let first = tables(&cache);
    assert_eq!(first.len(), 3, "{:?}", first.keys());
    assert!(first.values().all(|lines| lines.len() == texts));
    let r = json(&report);
    let passes = r["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 3);
    assert!(
        passes
            .iter()
            .all(|p| p["computed"] == texts && p["cached"] == 0)
    );
    assert_eq!(r["pairs"].as_array().unwrap().len(), 6);
    assert!(r["skipped"].as_array().unwrap().is_empty());

    // Each pair, evaluated on its own without any cache, decides every row the same way.
    let path_of: BTreeMap<String, String> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().into(),
                m["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut accuracies = Vec::new();
    for p in r["pairs"].as_array().unwrap() {
        let (s, w) = (p["strong"].as_str().unwrap(), p["weak"].as_str().unwrap());
        let eval_report = tmp.path().join(format!("{s}-{w}.json"));
        run(&[
            "eval",
            "--input",
            &input,
            "--no-cache",
            "--strong",
            &path_of[s],
            "--weak",
            &path_of[w],
            "--report",
            eval_report.to_str().unwrap(),
        ]);
        let e = json(&eval_report);
        assert_eq!(p["accuracy"], e["accuracy"], "{s} over {w}");
        assert_eq!(
            p["results"], e["results"],
            "{s} over {w}: per subset and domain"
        );
        accuracies.push(p["accuracy"].as_f64().unwrap());
    }
    assert!(
        accuracies.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {accuracies:?}"
    );

    // A second run, and eval on a pair, read everything from the cache.
    run(&args);
    let r = json(&report);
    assert!(
        r["passes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["computed"] == 0 && p["cached"] == texts)
    );
    assert_eq!(tables(&cache), first, "nothing recomputed or appended");
    let eval_with_cache = |dir: &Path| {
        stderr(&run(&[
            "eval",
            "-v",
            "--input",
            &input,
            "--cache",
            dir.to_str().unwrap(),
            "--strong",
            &models[0],
            "--weak",
            &models[2],
        ]))
    };
    let err = eval_with_cache(&cache);
    assert!(
        err.contains(&format!(
            "strong {texts} cached, 0 computed; weak {texts} cached, 0 computed"
        )),
        "{err}"
    );
    // Nothing to compute, so neither model's weights were read.
    assert!(!err.contains("loading weights"), "{err}");
    let err = eval_with_cache(&tmp.path().join("fresh-cache"));
    assert_eq!(err.matches("loading weights").count(), 2, "{}", err);
}

/// A copy of `llama_sharded` whose tokenizer swaps two frequent tokens' ids.
fn swapped_tokenizer_model(dir: &Path) -> PathBuf {
    let out = dir.join("swapped");
    std::fs::create_dir(&out).unwrap();
    for entry in std::fs::read_dir(model("llama_sharded")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
    }
    let path = out.join("tokenizer.json");
    let mut tok: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let (a, b) = (vocab["e"].clone(), vocab["t"].clone());
    vocab.insert("e".into(), b);
    vocab.insert("t".into(), a);
    std::fs::write(&path, tok.to_string()).unwrap();
    out
}

#[test]
fn pairs_with_disagreeing_tokenizers_are_skipped_with_the_reason_and_report_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let swapped = swapped_tokenizer_model(tmp.path());
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("report");
    let input = pairs().display().to_string();
    let (gqa, sharded) = (model("llama_gqa"), model("llama_sharded"));
    let o = run(&[
        "pairs",
        "--input",
        &input,
        "--cache",
        cache.to_str().unwrap(),
        "--report-dir",
        dir.to_str().unwrap(),
        "--models",
        &gqa,
        &sharded,
        swapped.to_str().unwrap(),
    ]);
    let r = json(&dir.join("report.json"));
    let evaluated: Vec<(String, String)> = r["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["strong"].to_string(), p["weak"].to_string()))
        .collect();
    assert_eq!(evaluated.len(), 2, "{evaluated:?}");
    let skipped = r["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 4);
    for s in skipped {
        assert!(s["strong"] == "swapped" || s["weak"] == "swapped", "{s}");
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .contains("tokenizers disagree"),
            "{s}"
        );
    }
    assert!(stderr(&o).contains("skipping"), "{}", stderr(&o));
    // The model no pair needs is never scored.
    assert_eq!(r["passes"].as_array().unwrap().len(), 2);
    assert_eq!(tables(&cache).len(), 2);

    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for svg in [
        "pairs-heat-map.svg",
        "accuracy-per-subset.svg",
        "margins.svg",
        "reward-vs-length.svg",
    ] {
        assert!(readme.contains(&format!("]({svg})")), "README links {svg}");
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }
    let heat = std::fs::read_to_string(dir.join("pairs-heat-map.svg")).unwrap();
    assert!(heat.contains("skipped") && heat.contains("swapped"));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "every plot inlined");
}

fn logprobs(cache: &Path, model: &str, extra: &[&str]) -> std::process::Output {
    let input = pairs().display().to_string();
    let mut args = vec![
        "logprobs",
        "--input",
        &input,
        "--cache",
        cache.to_str().unwrap(),
        "--model",
        model,
    ];
    args.extend(extra);
    run(&args)
}

#[test]
fn the_cache_key_follows_template_customization_and_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let gqa = model("llama_gqa");
    logprobs(&cache, &gqa, &[]);
    assert_eq!(tables(&cache).len(), 1);
    let again = logprobs(&cache, &gqa, &[]);
    assert!(stderr(&again).contains(" 0 computed"), "{}", stderr(&again));
    assert_eq!(tables(&cache).len(), 1, "same key, same table");

    logprobs(&cache, &gqa, &["--template", "llama3"]);
    assert_eq!(tables(&cache).len(), 2, "template");
    logprobs(&cache, &gqa, &["--customize", "criteria"]);
    assert_eq!(tables(&cache).len(), 3, "customization");
    logprobs(&cache, &gqa, &["--customize", "paper"]);
    assert_eq!(tables(&cache).len(), 4, "another customization");

    // Same config and tokenizer, one weight byte changed.
    let copy = tmp.path().join("edited");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&gqa).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let weights = copy.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    let o = logprobs(&cache, copy.to_str().unwrap(), &[]);
    assert!(stderr(&o).contains(" 0 cached"), "{}", stderr(&o));
    assert_eq!(tables(&cache).len(), 5, "weights");
}

#[test]
fn a_corrupt_cache_entry_is_recomputed_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let gqa = model("llama_gqa");
    let (out1, out2) = (tmp.path().join("1.jsonl"), tmp.path().join("2.jsonl"));
    logprobs(
        &cache,
        &gqa,
        &["--per-token", "--output", out1.to_str().unwrap()],
    );

    // Change one digit of one stored sum, as a bad disk or a stray edit would.
    let (path, lines) = tables(&cache).into_iter().next().unwrap();
    let victim = lines
        .iter()
        .position(|l| l.contains("\"logprob\":-"))
        .unwrap();
    let line = &lines[victim];
    let at = line.find("\"logprob\":-").unwrap() + "\"logprob\":-".len();
    let digit = line.as_bytes()[at];
    let flipped = if digit == b'9' {
        '1'
    } else {
        (digit + 1) as char
    };
    let mut edited = line.clone();
    edited.replace_range(at..at + 1, &flipped.to_string());
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(line, &edited);
    std::fs::write(&path, text).unwrap();

    let o = logprobs(
        &cache,
        &gqa,
        &["--per-token", "--output", out2.to_str().unwrap()],
    );
    let err = stderr(&o);
    assert!(
        err.contains("corrupt") && err.contains(" 1 computed"),
        "{err}"
    );
    assert_eq!(
        jsonl(&out1),
        jsonl(&out2),
        "the recomputed value, not the edited one"
    );
    let o = logprobs(&cache, &gqa, &["--per-token"]);
    assert!(
        !stderr(&o).contains("corrupt") && stderr(&o).contains(" 0 computed"),
        "{}",
        stderr(&o)
    );

    let rows = jsonl(&out1);
    assert_eq!(rows.len(), n_rows());
    for r in &rows {
        for resp in r["responses"].as_array().unwrap() {
            let tokens = resp["token_logprobs"].as_array().unwrap();
            assert_eq!(
                tokens.len() as u64,
                resp["n_response_tokens"].as_u64().unwrap()
            );
            let sum: f64 = tokens.iter().map(|t| t.as_f64().unwrap()).sum();
            assert!((sum - resp["logprob"].as_f64().unwrap()).abs() < 1e-3);
        }
    }
}

#[test]
fn eval_writes_a_report_with_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("report");
    let input = pairs().display().to_string();
    run(&[
        "eval",
        "--input",
        &input,
        "--no-cache",
        "--strong",
        &model("llama_gqa"),
        "--weak",
        &model("llama_sharded"),
        "--report-dir",
        dir.to_str().unwrap(),
    ]);
    let r = json(&dir.join("report.json"));
    assert_eq!(r["rows"].as_u64().unwrap() as usize, n_rows());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("## cdr eval") && readme.contains("](margins.svg)"));
    assert!(readme.contains("Correlation of reward with response length"));
    let subsets = std::fs::read_to_string(dir.join("accuracy-per-subset.svg")).unwrap();
    for subset in r["results"]["by_subset"].as_object().unwrap().keys() {
        assert!(subsets.contains(subset.as_str()), "{subset} bar");
    }
}

#[test]
fn logprobs_token_ids_are_the_python_references_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ids.jsonl");
    let reference = json(&root().join("cdr-core/tests/fixtures/expected_rewards.json"));
    let strong = reference["strong"].as_str().unwrap();
    let limits = [
        "--max-prompt-tokens".to_string(),
        reference["max_prompt_tokens"].to_string(),
        "--max-response-tokens".to_string(),
        reference["max_response_tokens"].to_string(),
    ];
    let input = pairs().display().to_string();
    let model = model(strong);
    let mut args = vec![
        "logprobs",
        "--input",
        &input,
        "--no-cache",
        "--model",
        &model,
        "--token-ids",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend(limits.iter().map(String::as_str));
    let o = cdr(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    let rows = jsonl(&out);
    let expected = reference["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len());
    for (row, want) in rows.iter().zip(expected) {
        assert_eq!(row["id"], want["id"]);
        let responses = row["responses"].as_array().unwrap();
        for (resp, side) in responses.iter().zip(["chosen", "rejected"]) {
            let want = &want[side];
            let start = want["response_start"].as_u64().unwrap() as usize;
            let ids: Vec<u64> = want["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let got = |key: &str| -> Vec<u64> {
                resp[key]
                    .as_array()
                    .unwrap_or_else(|| panic!("{key} missing"))
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect()
            };
            assert_eq!(got("prompt_ids"), ids[..start], "{} {side}", row["id"]);
            assert_eq!(got("response_ids"), ids[start..], "{} {side}", row["id"]);
            let (sum, want_sum) = (
                resp["logprob"].as_f64().unwrap(),
                want["strong_sum"].as_f64().unwrap(),
            );
            assert!((sum - want_sum).abs() < 1e-2 * want_sum.abs().max(1.0));
        }
    }
}
