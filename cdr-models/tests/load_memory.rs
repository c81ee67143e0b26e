//! Peak resident memory while loading stays under 1.3x the size of the loaded weights.
//!
//! Its own test binary, so no other test allocates while the peak is measured.

use std::collections::HashMap;

use cdr_models::backend::Cpu;
use cdr_models::{ComputeDtype, LoadOptions, ModelDir};
use safetensors::{Dtype, tensor::TensorView};

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} not in /proc/self/status"))
}

/// Writes a random-weight Llama checkpoint with `dtype` storage; returns the number of parameters.
fn write_checkpoint(dir: &std::path::Path, dtype: Dtype) -> usize {
    let (vocab, hidden, inter, layers) = (8192usize, 512usize, 1408usize, 6usize);
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": 8,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "tie_word_embeddings": false
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![vocab, hidden]),
        ("lm_head.weight".into(), vec![vocab, hidden]),
        ("model.norm.weight".into(), vec![hidden]),
    ];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            shapes.push((format!("{p}.self_attn.{proj}.weight"), vec![hidden, hidden]));
        }
        shapes.push((format!("{p}.mlp.gate_proj.weight"), vec![inter, hidden]));
        shapes.push((format!("{p}.mlp.up_proj.weight"), vec![inter, hidden]));
        shapes.push((format!("{p}.mlp.down_proj.weight"), vec![hidden, inter]));
        shapes.push((format!("{p}.input_layernorm.weight"), vec![hidden]));
        shapes.push((format!("{p}.post_attention_layernorm.weight"), vec![hidden]));
    }
    let elem = if dtype == Dtype::F32 { 4 } else { 2 };
    let mut seed = 0x2545F4914F6CDD1Du64;
    let buffers: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| {
            let n: usize = s.iter().product();
            (0..n * elem)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Small exponents only, so every value is finite.
                    (seed as u8) & 0x3f
                })
                .collect()
        })
        .collect();
    let views: HashMap<String, TensorView<'_>> = shapes
        .iter()
        .zip(&buffers)
        .map(|((n, s), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(&views, None, &dir.join("model.safetensors")).unwrap();
    shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum()
}

const CASES: [(Dtype, ComputeDtype); 3] = [
    (Dtype::F32, ComputeDtype::F32),
    (Dtype::BF16, ComputeDtype::F32),
    (Dtype::F32, ComputeDtype::BF16),
];
const CASE_VAR: &str = "CDR_LOAD_MEMORY_CASE";

/// Each case runs in a fresh process: memory freed by an earlier load would be reused by the
/// allocator and hide the next load's peak.
#[test]
fn peak_rss_while_loading_is_under_1_3x_the_loaded_weights() {
    let exe = std::env::current_exe().unwrap();
    for case in 0..CASES.len() {
        let out = std::process::Command::new(&exe)
            .args([
                "measure_one_load",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CASE_VAR, case.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "case {case} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.find("stored ").map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("case {case} printed no measurement:\n{stdout}"));
        println!("{line}");
        let ratio: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            ratio < 1.3,
            "peak RSS while loading is {ratio:.3}x the loaded weights: {line}"
        );
    }
}

#[test]
#[ignore = "one measurement; run in a child process by peak_rss_while_loading_is_under_1_3x_the_loaded_weights"]
fn measure_one_load() {
    let case: usize = std::env::var(CASE_VAR)
        .expect("set by the parent test")
        .parse()
        .unwrap();
    let (stored, compute) = CASES[case];
    let tmp = tempfile::tempdir().unwrap();
    let params = write_checkpoint(tmp.path(), stored);
    let loaded_bytes = (params * compute.size()) as f64;

    let before = status_kib("VmRSS:");
    // Resets VmHWM to the current RSS (Linux >= 4.0).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let model = ModelDir::new(tmp.path())
        .load::<Cpu>(&Default::default(), LoadOptions { dtype: compute })
        .unwrap();
    let growth = status_kib("VmHWM:").saturating_sub(before) as f64 * 1024.0;
    drop(model);
    println!(
        "stored {stored:?} -> {compute}: loaded {:.1} MiB, peak RSS growth {:.1} MiB, ratio {:.3}",
        loaded_bytes / 1048576.0,
        growth / 1048576.0,
        growth / loaded_bytes
    );
}
