//! The composed-ops attention path (what CUDA and wgpu run) against transformers, on the CPU: full
//! forward, padded batch and shared-prefix scoring. Its own test binary because the switch is
//! process-wide.

mod common;

use cdr_models::{ScoreSpan, kernels};
use common::{FIXTURES, expected, max_abs_diff};

#[test]
fn composed_ops_match_transformers() {
    kernels::use_composed_ops(true);
    for name in FIXTURES {
        let model = common::load_fixture(name);
        let expected = expected(name);
        let seqs = expected.ids();
        let got = model.token_logprobs(&seqs).unwrap();
        let mut worst = 0f32;
        for (g, e) in got.iter().zip(&expected.sequences) {
            worst = worst.max(max_abs_diff(g, &e.logprobs));
        }
        // Continuations of one 20-token prefix: the shared path with a rectangular causal mask.
        let long = seqs.iter().max_by_key(|s| s.len()).unwrap();
        let joined: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| long[..20].iter().chain(&s[1..]).copied().collect())
            .collect();
        let spans: Vec<ScoreSpan<'_>> = joined
            .iter()
            .map(|ids| ScoreSpan { ids, start: 20 })
            .collect();
        let shared = model.score_spans(&spans).unwrap();
        let plain = model.score_spans_padded(&spans).unwrap();
        let mut shared_worst = 0f32;
        for (a, b) in shared.iter().zip(&plain) {
            shared_worst = shared_worst.max(max_abs_diff(a, b));
        }
        println!(
            "{name:14} composed ops: vs transformers {worst:.2e}, shared prefix vs padded {shared_worst:.2e}"
        );
        assert!(worst <= 1e-4, "{name}: {worst:e}");
        assert!(shared_worst <= 1e-5, "{name}: {shared_worst:e}");
    }
}

/// Generation with prompts of different lengths in one batch (left padding masked per row, rope
/// tables per row) gives each prompt what it gets alone on the composed ops too.
#[test]
fn composed_ops_batch_prompts_of_different_lengths() {
    use cdr_models::{GenerateOptions, Generator, Sampling};
    kernels::use_composed_ops(true);
    for name in FIXTURES {
        let model = common::load_fixture(name);
        let expected = expected(name);
        let long = &expected
            .sequences
            .iter()
            .max_by_key(|s| s.ids.len())
            .unwrap()
            .ids;
        let prompts: Vec<&[u32]> = [5usize, 40, 23].iter().map(|&n| &long[..n]).collect();
        let generator = Generator::new(
            &model,
            GenerateOptions {
                max_new_tokens: 20,
                sampling: Sampling {
                    temperature: 1.0,
                    top_k: 0,
                    top_p: 1.0,
                },
                stop_ids: (0..384).step_by(11).collect(),
                ..Default::default()
            },
        )
        .unwrap();
        let seeds: Vec<Vec<u64>> = vec![vec![1, 2], vec![3], vec![4, 5, 6]];
        let together = generator.generate_batch(&prompts, &seeds).unwrap();
        for (p, (prompt, seeds)) in prompts.iter().zip(&seeds).enumerate() {
            let alone = generator.generate(prompt, seeds).unwrap();
            assert_eq!(together[p], alone, "{name}: prompt {p}");
        }
    }
}

/// LoRA adapters on the composed path (burn ops; the CPU's fused low-rank kernel is off) against
/// PEFT: the reference both paths are held to (the fused one in `tests/adapter.rs`).
#[test]
fn composed_ops_adapters_match_peft() {
    use cdr_models::{ComputeDtype, Device, LoadOptions, Model, ModelDir};
    kernels::use_composed_ops(true);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora");
    let options = LoadOptions {
        dtype: ComputeDtype::F32,
    };
    let mut checked = 0;
    for case in [
        "attn_qkvo",
        "rslora",
        "embed_and_head",
        "modules_to_save_lm_head",
    ] {
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(case).join("expected.json")).unwrap(),
        )
        .unwrap();
        let dir = ModelDir::new(root.join(case).join("adapter"));
        let model = Model::load(&dir, &Device::Cpu, options).unwrap();
        for s in expected["sequences"].as_array().unwrap() {
            let ids: Vec<u32> = serde_json::from_value(s["ids"].clone()).unwrap();
            let want: Vec<f32> = serde_json::from_value(s["adapter_logprobs"].clone()).unwrap();
            let got = model.token_logprobs(&[&ids]).unwrap().remove(0);
            let d = max_abs_diff(&got, &want);
            assert!(d <= 1e-4, "{case}: composed path {d} from PEFT");
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}
