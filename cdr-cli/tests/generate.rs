//! `cdr generate` and `cdr annotate --policy` end to end on the tiny fixtures: prompts → N = 4
//! samples each → scored → TRL pairs; resuming, seeding and the `llm` router.

mod common;

use std::path::Path;

use common::{cdr, jsonl, model, pairs, stderr};
use serde_json::Value;

const PROMPTS: &str = concat!(
    r#"{"id": "p1", "prompt": "What is 2 + 2?", "subset": "math"}"#,
    "\n",
    r#"{"id": "p2", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}], "source": "hand"}"#,
    "\n",
    r#"{"id": "p3", "prompt": [{"role": "user", "content": "Write a haiku about rain."}]}"#,
    "\n",
);

fn write_prompts(dir: &Path) -> String {
    let path = dir.join("prompts.jsonl");
    std::fs::write(&path, PROMPTS).unwrap();
    path.display().to_string()
}

fn generate(input: &str, output: &Path, extra: &[&str]) -> std::process::Output {
    let policy = model("llama_gqa");
    let out = output.display().to_string();
    let mut args = vec![
        "generate",
        "--policy",
        &policy,
        "--n",
        "4",
        "--temperature",
        "1.0",
        "--top-p",
        "0.95",
        "--max-new-tokens",
        "12",
        "--input",
        input,
        "--output",
        &out,
    ];
    args.extend_from_slice(extra);
    cdr(&args)
}

#[test]
fn generate_writes_best_of_n_rows_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_prompts(dir.path());
    let output = dir.path().join("generated.jsonl");
    let o = generate(&input, &output, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = jsonl(&output);
    assert_eq!(rows.len(), 3, "{}", stderr(&o));
    for row in &rows {
        let responses = row["responses"].as_array().unwrap();
        let empty = row["empty_responses"].as_u64().unwrap() as usize;
        assert_eq!(responses.len() + empty, 4);
        assert_eq!(
            row["finish_reasons"].as_array().unwrap().len(),
            responses.len()
        );
        assert!(
            row["response_tokens"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| (1..=12).contains(&n.as_u64().unwrap()))
        );
        assert!(
            responses
                .iter()
                .all(|r| !r.as_str().unwrap().trim().is_empty())
        );
        assert_eq!(
            row["prompt"].as_array().unwrap().last().unwrap()["role"],
            "user"
        );
    }
    assert_eq!(rows[0]["subset"], "math");
    assert_eq!(rows[1]["source"], "hand", "extra columns are carried");
    assert_eq!(
        rows[1]["prompt"].as_array().unwrap().len(),
        2,
        "the reference answer is not part of the prompt"
    );

    // Everything is done: a rerun generates nothing and leaves the file as it was.
    let before = std::fs::read_to_string(&output).unwrap();
    let o = generate(&input, &output, &[]);
    assert!(
        o.status.success() && stderr(&o).contains("3 already done"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), before);

    // A run killed after one row resumes to the same file: samples depend on seed and row id.
    let lines: Vec<&str> = before.lines().collect();
    let partial = dir.path().join("partial.jsonl");
    std::fs::write(&partial, format!("{}\n{}", lines[0], &lines[1][..20])).unwrap();
    let o = generate(&input, &partial, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&partial).unwrap(), before);

    // Another seed, other samples.
    let other = dir.path().join("other.jsonl");
    let o = generate(&input, &other, &["--sampling-seed", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(jsonl(&other)[0]["responses"], rows[0]["responses"]);
}

fn is_assistant_turn(v: &Value) -> bool {
    let turns = v.as_array().unwrap();
    turns.len() == 1 && turns[0]["role"] == "assistant" && turns[0]["content"].is_string()
}

#[test]
fn annotate_with_a_policy_generates_scores_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_prompts(dir.path());
    let (strong, weak, policy) = (
        model("llama_gqa"),
        model("llama_sharded"),
        model("llama_gqa"),
    );

    // Two steps: generate, then annotate the generated file.
    let generated = dir.path().join("generated.jsonl");
    let o = generate(&input, &generated, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let two_step = dir.path().join("pairs-two-step.jsonl");
    let gen_path = generated.display().to_string();
    let out = two_step.display().to_string();
    let o = cdr(&[
        "annotate", "--strong", &strong, "--weak", &weak, "--input", &gen_path, "--output", &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // One step: annotate --policy.
    let one_step = dir.path().join("pairs.jsonl");
    let out = one_step.display().to_string();
    let o = cdr(&[
        "annotate",
        "--policy",
        &policy,
        "--n",
        "4",
        "--temperature",
        "1.0",
        "--top-p",
        "0.95",
        "--max-new-tokens",
        "12",
        "--strong",
        &strong,
        "--weak",
        &weak,
        "--input",
        &input,
        "--output",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let intermediate = dir.path().join("pairs.jsonl.generated.jsonl");
    assert_eq!(
        std::fs::read_to_string(&intermediate).unwrap(),
        std::fs::read_to_string(&generated).unwrap(),
        "annotate --policy generates what cdr generate does"
    );

    let pairs = jsonl(&one_step);
    assert!(!pairs.is_empty(), "{}", stderr(&o));
    assert_eq!(pairs, jsonl(&two_step));
    let generated_rows = jsonl(&generated);
    for pair in &pairs {
        for field in [
            "prompt",
            "chosen",
            "rejected",
            "score_chosen",
            "score_rejected",
            "id",
        ] {
            assert!(pair.get(field).is_some(), "missing {field}: {pair}");
        }
        assert!(is_assistant_turn(&pair["chosen"]) && is_assistant_turn(&pair["rejected"]));
        assert!(pair["score_chosen"].as_f64().unwrap() > pair["score_rejected"].as_f64().unwrap());
        let row = generated_rows
            .iter()
            .find(|r| r["id"] == pair["id"])
            .unwrap();
        assert_eq!(row["prompt"], pair["prompt"]);
        let responses = row["responses"].as_array().unwrap();
        assert!(responses.contains(&pair["chosen"][0]["content"]));
        assert!(responses.contains(&pair["rejected"][0]["content"]));
    }
}

#[test]
fn bad_sampling_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_prompts(dir.path());
    let output = dir.path().join("g.jsonl");
    for bad in [["--top-p", "0"], ["--temperature", "-1"], ["--n", "0"]] {
        let o = generate(&input, &output, &bad);
        assert!(!o.status.success(), "{bad:?} accepted");
        assert!(stderr(&o).contains("error"), "{}", stderr(&o));
    }
    let o = cdr(&[
        "generate",
        "--policy",
        "/no/such/model",
        "--input",
        &input,
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--policy"),
        "{}",
        stderr(&o)
    );
    assert!(
        !output.exists(),
        "nothing is written before the policy is found"
    );
}

#[test]
fn route_with_the_llm_router() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("routes.jsonl");
    let router = model("qwen2_tiny");
    let input = pairs().display().to_string();
    let out = output.display().to_string();
    let o = cdr(&[
        "route",
        "--router",
        "llm",
        "--router-model",
        &router,
        "--input",
        &input,
        "--output",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = jsonl(&output);
    assert_eq!(rows.len(), 16);
    let domains = ["CHAT", "SAFETY", "REASONING"];
    assert!(
        rows.iter()
            .all(|r| domains.contains(&r["domain"].as_str().unwrap()))
    );
}

/// Sampling settings the flags leave out come from the policy's generation_config.json, as
/// transformers' `generate` takes them; a flag still wins, and a bad value names the file.
#[test]
fn sampling_defaults_come_from_generation_config() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_prompts(dir.path());
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    for entry in std::fs::read_dir(model("llama_gqa")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), policy.join(entry.file_name())).unwrap();
    }
    let config_path = policy.join("generation_config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    // Temperature 0 is greedy: all four samples of a prompt are then the same.
    config["temperature"] = 0.0.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let policy = policy.display().to_string();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "generate",
            "--policy",
            &policy,
            "--n",
            "4",
            "--max-new-tokens",
            "8",
        ];
        let input = input.as_str();
        let out_s = out.display().to_string();
        args.extend(["--input", input, "--output", &out_s]);
        args.extend_from_slice(extra);
        let o = cdr(&args);
        (o, out)
    };
    let distinct = |path: &Path| -> Vec<usize> {
        jsonl(path)
            .iter()
            .map(|row| {
                let mut r: Vec<String> = row["responses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect();
                r.sort();
                r.dedup();
                r.len()
            })
            .collect()
    };
    let (o, from_config) = run("config.jsonl", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        distinct(&from_config).iter().all(|&n| n == 1),
        "greedy from the config"
    );
    let (o, flagged) = run("flag.jsonl", &["--temperature", "1.0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        distinct(&flagged).iter().any(|&n| n > 1),
        "the flag overrides the config"
    );

    config["top_p"] = "high".into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let (o, _) = run("bad.jsonl", &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("generation_config.json") && err.contains("top_p"),
        "{err}"
    );
}

/// Batching prompts together changes speed only: one prompt at a time and all at once write the
/// same file.
#[test]
fn batch_size_does_not_change_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_prompts(dir.path());
    let one = dir.path().join("one.jsonl");
    let all = dir.path().join("all.jsonl");
    let o = generate(&input, &one, &["--batch-rows", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = generate(&input, &all, &["--batch-rows", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&one).unwrap(),
        std::fs::read_to_string(&all).unwrap()
    );
}
