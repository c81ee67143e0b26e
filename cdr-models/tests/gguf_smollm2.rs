//! The real SmolLM2-135M-Instruct Q4_1 GGUF (a llama.cpp conversion: llama architecture, Q4_1
//! linear layers, Q8_0 embeddings, tied): config, log-probs against transformers on the same
//! file (`tests/fixtures/gguf/smollm2_expected.json`), and peak memory while loading.
//!
//! The file lives in the git-ignored `.cache/assets/` (`tools/fetch_assets.sh smollm2`); every
//! test here prints a NOTE and passes when it is absent.

mod gguf_common;

use std::collections::BTreeMap;

use cdr_models::backend::Cpu;
use cdr_models::gguf::{GgufFile, GgufWeights, chat_template, config_from_gguf};
use cdr_models::{ComputeDtype, LlamaForCausalLm, Weights};
use gguf_common::smollm2_asset;

#[test]
#[cfg_attr(not(cdr_has_smollm2), ignore = "needs tools/fetch_assets.sh smollm2")]
fn smollm2_config_and_tensor_types() {
    let path = smollm2_asset();
    let file = GgufFile::open(&path).unwrap();
    let c = config_from_gguf(&file).unwrap();
    assert_eq!(c.model_type, "llama");
    assert_eq!(c.hidden_size, 576);
    assert_eq!(c.num_hidden_layers, 30);
    assert_eq!(c.num_attention_heads, 9);
    assert_eq!(c.num_kv_heads(), 3);
    assert_eq!(c.head_dim(), 64);
    assert_eq!(c.intermediate_size, 1536);
    assert_eq!(c.vocab_size, 49152);
    assert!(c.tie_word_embeddings());
    assert_eq!(c.rope_theta(), 100000.0);
    assert_eq!(c.rms_norm_eps(), f64::from(1e-5f32));
    assert_eq!(c.max_position_embeddings(), 8192);
    assert_eq!((c.bos_token_id, c.eos_token_ids()), (Some(1), vec![2]));
    let mut types = BTreeMap::new();
    for t in file.tensors() {
        *types.entry(t.ggml_type().to_string()).or_insert(0) += 1;
    }
    println!("{}: {types:?}", path.display());
    assert_eq!(types.get("Q4_1"), Some(&210));
    assert_eq!(types.get("Q8_0"), Some(&1));
    assert_eq!(types.get("F32"), Some(&61));
    assert!(chat_template(&file).unwrap().contains("<|im_start|>"));
}

const CHILD_VAR: &str = "CDR_GGUF_MEMORY_CHILD";

/// Runs in a fresh process, so memory freed by other tests cannot hide the peak.
#[test]
#[cfg_attr(not(cdr_has_smollm2), ignore = "needs tools/fetch_assets.sh smollm2")]
fn smollm2_peak_rss_while_loading_stays_near_the_loaded_weights() {
    smollm2_asset();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "measure_smollm2_load",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("ratio "))
        .unwrap_or_else(|| panic!("no measurement:\n{stdout}"));
    println!("{line}");
    let ratio: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ratio < 1.3, "{line}");
}

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} not in /proc/self/status"))
}

#[test]
#[ignore = "run in a child process by smollm2_peak_rss_while_loading_stays_near_the_loaded_weights"]
fn measure_smollm2_load() {
    assert!(std::env::var(CHILD_VAR).is_ok(), "run by the parent test");
    let path = smollm2_asset();
    let weights = GgufWeights::open(&path).unwrap();
    let config = config_from_gguf(weights.file()).unwrap();
    let params: u64 = weights
        .file()
        .tensors()
        .iter()
        .map(|t| t.n_elements())
        .sum();
    let loaded = (params * 4) as f64;
    let device = Default::default();
    let before = status_kib("VmRSS:");
    // Resets VmHWM to the current RSS (Linux >= 4.0).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let start = std::time::Instant::now();
    let model =
        LlamaForCausalLm::<Cpu>::load(&Weights::new(&weights, &device, ComputeDtype::F32), &config)
            .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let growth = status_kib("VmHWM:").saturating_sub(before) as f64 * 1024.0;
    drop(model);
    println!(
        "SmolLM2 Q4_1 -> f32: loaded {:.1} MiB in {secs:.2} s, peak RSS growth {:.1} MiB, ratio {:.3}",
        loaded / 1048576.0,
        growth / 1048576.0,
        growth / loaded
    );
}
