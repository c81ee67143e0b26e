//! PEFT LoRA adapters against PEFT itself: fixtures written by `tools/make_lora_fixtures.py`
//! (tiny random Llama and Qwen2 bases, adapters saved by `save_pretrained`, per-token log-probs of
//! base + adapter computed by PEFT in f32).

use std::path::{Path, PathBuf};

use cdr_models::{ComputeDtype, Device, LoadOptions, Model, ModelDir};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Case {
    accept: bool,
    #[serde(default)]
    refuse_key: Option<String>,
    #[serde(default)]
    sequences: Vec<Sequence>,
}

#[derive(Debug, Deserialize)]
struct Sequence {
    ids: Vec<u32>,
    base_logprobs: Vec<f32>,
    adapter_logprobs: Vec<f32>,
    merged_logprobs: Vec<f32>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora")
}

fn cases() -> Vec<(String, Case)> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("manifest.json")).unwrap())
            .unwrap();
    let cases: Vec<(String, Case)> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            let text = std::fs::read_to_string(root().join(&name).join("expected.json")).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    // The fixture set: every kind of target set, and two refusals.
    assert!(cases.len() >= 10, "{} cases", cases.len());
    cases
}

const F32: LoadOptions = LoadOptions {
    dtype: ComputeDtype::F32,
};

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn adapter_logprobs_match_peft_per_token() {
    let mut checked = 0;
    for (name, case) in cases() {
        if !case.accept {
            continue;
        }
        let dir = ModelDir::new(root().join(&name).join("adapter"));
        assert!(dir.is_adapter(), "{name}");
        let model = Model::load(&dir, &Device::Cpu, F32).unwrap();
        assert!(model.is_adapter());
        let ids: Vec<&[u32]> = case.sequences.iter().map(|s| s.ids.as_slice()).collect();
        // One sequence at a time and all in one padded batch.
        let batched = model.token_logprobs(&ids).unwrap();
        let mut worst = 0f32;
        for (i, s) in case.sequences.iter().enumerate() {
            let alone = model.token_logprobs(&[&s.ids]).unwrap().remove(0);
            let d = max_diff(&alone, &s.adapter_logprobs);
            assert!(d <= 1e-4, "{name} seq {i}: {d} from PEFT");
            worst = worst.max(d);
            let d = max_diff(&batched[i], &s.adapter_logprobs);
            assert!(d <= 1e-4, "{name} seq {i} batched: {d} from PEFT");
            worst = worst.max(d);
            assert!(
                max_diff(&s.merged_logprobs, &s.adapter_logprobs) <= 1e-4,
                "{name}"
            );
        }
        // The adapter does change the model: a test that would pass without it proves nothing.
        let effect = case
            .sequences
            .iter()
            .map(|s| max_diff(&s.adapter_logprobs, &s.base_logprobs))
            .fold(0.0, f32::max);
        assert!(effect > 0.5, "{name}: {effect}");
        eprintln!(
            "{name}: max |cdr - PEFT| {worst:.2e} per token (the adapter moves up to {effect:.2})"
        );
        checked += 1;
    }
    assert!(checked >= 8, "{checked} accepted cases");
}

#[test]
fn the_base_beside_its_adapter_is_untouched_and_shared() {
    let case_dir = root().join("modules_to_save_lm_head");
    let expected: Case =
        serde_json::from_str(&std::fs::read_to_string(case_dir.join("expected.json")).unwrap())
            .unwrap();
    let base_dir = ModelDir::new(root().join("base_llama"));
    let base = Model::load_shared(&base_dir, &Device::Cpu, F32).unwrap();
    let adapted = Model::load(&ModelDir::new(case_dir.join("adapter")), &Device::Cpu, F32).unwrap();
    // The same base, from the registry, not a second load.
    let again = Model::load_shared(&base_dir, &Device::Cpu, F32).unwrap();
    assert!(std::sync::Arc::ptr_eq(&base, &again));
    for s in &expected.sequences {
        let b = base.token_logprobs(&[&s.ids]).unwrap().remove(0);
        assert!(max_diff(&b, &s.base_logprobs) <= 1e-4);
        let a = adapted.token_logprobs(&[&s.ids]).unwrap().remove(0);
        assert!(max_diff(&a, &s.adapter_logprobs) <= 1e-4);
    }
}

#[test]
fn refused_adapters_name_the_key() {
    let mut refused = 0;
    for (name, case) in cases() {
        let Some(key) = case.refuse_key else {
            continue;
        };
        let dir = ModelDir::new(root().join(&name).join("adapter"));
        let err = Model::load(&dir, &Device::Cpu, F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("`{key}`")), "{name}: {err}");
        assert!(err.contains("adapter_config.json"), "{name}: {err}");
        refused += 1;
    }
    assert_eq!(refused, 2);
}

/// Copies a case's adapter (over `base_llama`) elsewhere, base path made absolute, to edit its
/// config.
fn edited_adapter(case: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = root().join(case).join("adapter");
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let path = tmp.path().join("adapter_config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let base = root().join("base_llama");
    config["base_model_name_or_path"] = base.display().to_string().into();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    tmp
}

fn load_err(dir: &Path) -> String {
    Model::load(&ModelDir::new(dir), &Device::Cpu, F32)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn configs_that_disagree_with_the_tensors_are_refused() {
    // An unknown key that is set: refused rather than ignored.
    let dir = edited_adapter("attn_qkvo", |c| c["use_new_variant"] = true.into());
    assert!(load_err(dir.path()).contains("`use_new_variant`"));
    // The same key switched off is harmless.
    let dir = edited_adapter("attn_qkvo", |c| {
        c["use_new_variant"] = serde_json::Value::Null
    });
    Model::load(&ModelDir::new(dir.path()), &Device::Cpu, F32).unwrap();
    // A target without factors in the file.
    let dir = edited_adapter("attn_qkvo", |c| {
        c["target_modules"] = serde_json::json!(["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"])
    });
    let err = load_err(dir.path());
    assert!(
        err.contains("up_proj") && err.contains("no LoRA factors"),
        "{err}"
    );
    // Factors for a module the config does not target.
    let dir = edited_adapter("attn_qkvo", |c| {
        c["target_modules"] = serde_json::json!(["q_proj", "k_proj", "v_proj"])
    });
    let err = load_err(dir.path());
    assert!(
        err.contains("o_proj") && err.contains("does not target"),
        "{err}"
    );
    // A rank the tensors do not have.
    let dir = edited_adapter("attn_qkvo", |c| c["r"] = 5.into());
    let err = load_err(dir.path());
    assert!(err.contains("rank 4") && err.contains("rank 5"), "{err}");
    // Another PEFT method.
    let dir = edited_adapter("attn_qkvo", |c| c["peft_type"] = "LOHA".into());
    assert!(load_err(dir.path()).contains("LOHA"));
    // A base that is not here.
    let dir = edited_adapter("attn_qkvo", |c| {
        c["base_model_name_or_path"] = "/nowhere/base".into()
    });
    let err = load_err(dir.path());
    assert!(
        err.contains("/nowhere/base") && err.contains("--adapter-base"),
        "{err}"
    );
}

#[test]
fn rank_and_alpha_patterns_follow_the_file_order() {
    // The fixture's alpha_pattern has two keys that match layers.1's v_proj; PEFT (and cdr) take
    // the first in the file. Reordering the keys by hand changes which one applies.
    let text =
        std::fs::read_to_string(root().join("rank_alpha_pattern/adapter/adapter_config.json"))
            .unwrap();
    let anchored = r#""^model\\.layers\\.1\\.self_attn\\.v_proj": 3"#;
    assert!(text.contains(anchored), "fixture changed");
    let expected: Case = serde_json::from_str(
        &std::fs::read_to_string(root().join("rank_alpha_pattern/expected.json")).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = root().join("rank_alpha_pattern/adapter");
    std::fs::copy(
        src.join("adapter_model.safetensors"),
        tmp.path().join("adapter_model.safetensors"),
    )
    .unwrap();
    // Move the anchored key after "v_proj".
    let reordered = text
        .replace(&format!("{anchored},"), "")
        .replace(r#""v_proj": 20"#, &format!(r#""v_proj": 20, {anchored}"#))
        .replace(
            "../../base_llama",
            &root().join("base_llama").display().to_string(),
        );
    assert_ne!(reordered, text);
    std::fs::write(tmp.path().join("adapter_config.json"), reordered).unwrap();
    let model = Model::load(&ModelDir::new(tmp.path()), &Device::Cpu, F32).unwrap();
    let s = &expected.sequences[3];
    let lp = model.token_logprobs(&[&s.ids]).unwrap().remove(0);
    // Now layers.1 v_proj takes alpha 20: the numbers leave PEFT's reload.
    assert!(max_diff(&lp, &s.adapter_logprobs) > 1e-3);
}

#[test]
fn in_bf16_the_adapter_adds_no_error_of_its_own() {
    // bf16 weights with the low-rank path in f32 (as PEFT computes it): the adapted model's
    // distance from PEFT's f32 numbers stays within what bf16 costs the base alone.
    let bf16 = LoadOptions {
        dtype: ComputeDtype::BF16,
    };
    for (name, case) in cases() {
        if !case.accept {
            continue;
        }
        let adapter_dir = ModelDir::new(root().join(&name).join("adapter"));
        let base_dir = adapter_dir.resolved().unwrap();
        let base = Model::load(&base_dir, &Device::Cpu, bf16).unwrap();
        let adapted = Model::load(&adapter_dir, &Device::Cpu, bf16).unwrap();
        let (mut base_err, mut adapter_err) = (0f32, 0f32);
        for s in &case.sequences {
            let b = base.token_logprobs(&[&s.ids]).unwrap().remove(0);
            let a = adapted.token_logprobs(&[&s.ids]).unwrap().remove(0);
            base_err = base_err.max(max_diff(&b, &s.base_logprobs));
            adapter_err = adapter_err.max(max_diff(&a, &s.adapter_logprobs));
        }
        eprintln!("{name}: bf16 base {base_err:.4}, bf16 adapter {adapter_err:.4}");
        assert!(base_err > 0.0, "{name}: bf16 must differ from f32");
        assert!(
            adapter_err <= 2.0 * base_err + 0.02,
            "{name}: bf16 adapter {adapter_err} vs base {base_err}"
        );
    }
}
