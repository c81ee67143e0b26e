//! The key/value cache: decoding token by token (and in chunks) gives the log-probs of one full
//! forward, sliding-window models keep only the window, and scoring continuations of a shared prefix
//! equals scoring each sequence alone.

mod common;

use burn::tensor::{DType, Int, Tensor, TensorData, activation::log_softmax};
use cdr_models::{LlamaForCausalLm, ScoreSpan, backend::Cpu};
use common::{FIXTURES, expected, max_abs_diff};

fn load(name: &str) -> LlamaForCausalLm<Cpu> {
    common::load_fixture(name)
}

fn ids_tensor(rows: &[&[u32]]) -> Tensor<Cpu, 2, Int> {
    let width = rows[0].len();
    let flat: Vec<i32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&i| i as i32))
        .collect();
    Tensor::from_data(
        TensorData::new(flat, [rows.len(), width]),
        &Default::default(),
    )
}

/// `log p(next[t] | hidden[t])` for each position of row 0.
fn next_logprobs(model: &LlamaForCausalLm<Cpu>, hidden: Tensor<Cpu, 3>, next: &[u32]) -> Vec<f32> {
    let [_, s, h] = hidden.dims();
    let rows = hidden.narrow(0, 0, 1).reshape([s, h]);
    let lp = log_softmax(model.logits(rows).cast(DType::F32), 1);
    let values = lp.into_data().to_vec::<f32>().unwrap();
    let vocab = model.config().vocab_size;
    next.iter()
        .enumerate()
        .map(|(t, &id)| values[t * vocab + id as usize])
        .collect()
}

#[test]
fn cached_decoding_matches_the_full_forward() {
    for name in FIXTURES {
        let model = load(name);
        let expected = expected(name);
        let seq = expected
            .sequences
            .iter()
            .max_by_key(|s| s.ids.len())
            .unwrap();
        let ids = &seq.ids;
        let full = model.token_logprobs(&[ids]).unwrap().remove(0);
        for chunk in [1, 7] {
            let mut cache = model.new_cache();
            let prefill = 10;
            let mut got = Vec::new();
            let hidden = model
                .forward_cached(ids_tensor(&[&ids[..prefill]]), &mut cache)
                .unwrap();
            got.extend(next_logprobs(&model, hidden, &ids[1..=prefill]));
            let mut at = prefill;
            while at < ids.len() - 1 {
                let end = (at + chunk).min(ids.len() - 1);
                let hidden = model
                    .forward_cached(ids_tensor(&[&ids[at..end]]), &mut cache)
                    .unwrap();
                got.extend(next_logprobs(&model, hidden, &ids[at + 1..=end]));
                at = end;
            }
            assert_eq!(cache.position(), ids.len() - 1);
            // Sliding layers keep only their window; full-attention layers keep everything.
            let windows = model.config().layer_windows();
            for (layer, (window, stored)) in windows.iter().zip(cache.stored_by_layer()).enumerate()
            {
                let want = window.map_or(ids.len() - 1, |w| w.min(ids.len() - 1));
                assert_eq!(
                    stored, want,
                    "{name}: layer {layer} (window {window:?}) holds {stored} positions"
                );
            }
            let vs_full = max_abs_diff(&got, &full);
            let vs_hf = max_abs_diff(&got, &seq.logprobs);
            println!(
                "{name:14} cached decoding (chunks of {chunk}): max |diff| vs full forward {vs_full:.2e}, vs transformers {vs_hf:.2e}"
            );
            assert!(
                vs_full <= 1e-4 && vs_hf <= 1e-4,
                "{name}: {vs_full:e} / {vs_hf:e}"
            );
        }
    }
}

#[test]
fn shared_prefix_scoring_equals_scoring_alone() {
    for name in FIXTURES {
        let model = load(name);
        let expected = expected(name);
        let mut seqs = expected.ids();
        seqs.sort_by_key(|s| std::cmp::Reverse(s.len()));
        // One "prompt" (the longest sequence's first 40 tokens) followed by each sequence's tokens as
        // a response of a different length.
        let prompt = &seqs[0][..40];
        let joined: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| {
                prompt
                    .iter()
                    .chain(&s[1..s.len().min(50)])
                    .copied()
                    .collect()
            })
            .collect();
        let spans: Vec<ScoreSpan<'_>> = joined
            .iter()
            .map(|ids| ScoreSpan {
                ids,
                start: prompt.len(),
            })
            .collect();
        let shared = model.score_spans(&spans).unwrap();
        let mut worst = 0f32;
        for (span, got) in spans.iter().zip(&shared) {
            let alone = model.score_spans(std::slice::from_ref(span)).unwrap();
            worst = worst.max(max_abs_diff(&alone[0], got));
        }
        println!("{name:14} shared-prefix scoring vs alone: max |diff| = {worst:.2e}");
        assert!(worst <= 1e-5, "{name}: {worst:e}");
    }
}

#[test]
fn cache_rows_can_be_repeated_and_selected() {
    let model = load("llama_gqa");
    let ids: Vec<u32> = (1..20).collect();
    let mut cache = model.new_cache();
    model
        .forward_cached(ids_tensor(&[&ids[..12], &ids[3..15]]), &mut cache)
        .unwrap();
    let repeated = cache.repeat_rows(3);
    assert_eq!(repeated.batch(), Some(6));
    let mut picked = repeated.select_rows(&[4, 0]).unwrap();
    let next = ids_tensor(&[&ids[15..17], &ids[12..14]]);
    let a = model.forward_cached(next, &mut picked).unwrap();
    let mut reference = cache.select_rows(&[1, 0]).unwrap();
    let b = model
        .forward_cached(ids_tensor(&[&ids[15..17], &ids[12..14]]), &mut reference)
        .unwrap();
    let diff: f32 = (a - b).abs().max().into_scalar();
    assert!(diff <= 1e-6, "{diff}");
    assert!(repeated.select_rows(&[6]).is_err(), "row 6 of 6 is refused");
    assert!(
        model
            .forward_cached(ids_tensor(&[&ids[..2]]), &mut picked)
            .is_err(),
        "a batch of 1 after a cache of 2 rows is refused"
    );
}
