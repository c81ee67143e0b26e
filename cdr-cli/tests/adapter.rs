//! Adapter pairs end to end: a PEFT LoRA adapter over its base as the strong model, the base as
//! the weak one, against the merged checkpoint over the base (fixtures of
//! `tools/make_lora_fixtures.py`).

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::*;

fn lora(path: &str) -> PathBuf {
    root().join("cdr-models/tests/fixtures/lora").join(path)
}

fn score(strong: &Path, weak: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    let (strong, weak) = (strong.display().to_string(), weak.display().to_string());
    let input = pairs().display().to_string();
    let output = out.display().to_string();
    let mut args = vec![
        "score",
        "--strong",
        &strong,
        "--weak",
        &weak,
        "--input",
        &input,
        "--output",
        &output,
        "--dtype",
        "f32",
        "--no-cache",
    ];
    args.extend_from_slice(extra);
    let o = cdr(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    jsonl(out)
}

fn rewards(rows: &[Value]) -> Vec<f64> {
    rows.iter()
        .flat_map(|r| {
            [
                r["reward_chosen"].as_f64().unwrap(),
                r["reward_rejected"].as_f64().unwrap(),
            ]
        })
        .collect()
}

#[test]
fn an_adapter_pair_scores_as_the_merged_checkpoint_over_the_base() {
    let tmp = tempfile::tempdir().unwrap();
    for (case, base) in [
        ("attn_qkvo", "base_llama"),
        ("rslora", "base_qwen2"),
        ("modules_to_save_lm_head", "base_llama"),
    ] {
        let base = lora(base);
        // One output file per run: an existing output is resumed, not rescored.
        let out = |kind: &str| tmp.path().join(format!("{case}-{kind}.jsonl"));
        let adapter = score(&lora(case).join("adapter"), &base, &out("adapter"), &[]);
        let merged = score(&lora(case).join("merged"), &base, &out("merged"), &[]);
        let (a, m) = (rewards(&adapter), rewards(&merged));
        assert_eq!(a.len(), 32, "{case}");
        // Merging rounds W + s·BA once in f32 where the adapter path adds s·(xA)B: the two differ
        // by f32 rounding per token (PEFT's own merged and unmerged forwards differ by up to 1.5e-5
        // per token on these fixtures), so a sum over n tokens gets 1e-4 per 100 tokens.
        let tokens: Vec<f64> = adapter
            .iter()
            .flat_map(|r| {
                ["chosen", "rejected"].map(|k| r[k]["n_response_tokens"].as_f64().unwrap())
            })
            .collect();
        for ((x, y), n) in a.iter().zip(&m).zip(&tokens) {
            let tolerance = 1e-4 * (n / 100.0).max(1.0);
            assert!(
                (x - y).abs() <= tolerance,
                "{case}: {x} vs merged {y} ({n} tokens)"
            );
        }
        // Not a vacuous equality: the adapter moves the strong model away from the base.
        assert!(a.iter().any(|r| r.abs() > 0.5), "{case}: {a:?}");
    }
}

#[test]
fn a_moved_adapter_takes_its_base_from_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = tmp.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(lora("attn_qkvo/adapter").join(f), adapter.join(f)).unwrap();
    }
    let base = lora("base_llama");
    // The recorded base (../../base_llama) is not next to the copy.
    let (a, b) = (adapter.display().to_string(), base.display().to_string());
    let input = pairs().display().to_string();
    let out = tmp.path().join("out.jsonl").display().to_string();
    let o = cdr(&[
        "score", "--strong", &a, "--weak", &b, "--input", &input, "--output", &out,
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("../../base_llama") && err.contains("--adapter-base"),
        "{err}"
    );
    assert!(!Path::new(&out).exists() || jsonl(Path::new(&out)).is_empty());
    let moved = score(
        &adapter,
        &base,
        &tmp.path().join("moved.jsonl"),
        &["--adapter-base", &b],
    );
    let original = score(
        &lora("attn_qkvo/adapter"),
        &base,
        &tmp.path().join("o.jsonl"),
        &[],
    );
    assert_eq!(rewards(&moved), rewards(&original));
}
