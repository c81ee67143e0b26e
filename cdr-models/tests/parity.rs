//! Per-token log-probs against transformers, on the fixtures written by tools/make_fixtures.py.

mod common;

use cdr_models::backend::Cpu;
use cdr_models::{ComputeDtype, LoadOptions, ModelDir};
use common::{FIXTURES, expected, fixture_dir, max_abs_diff};

fn check_fixture(name: &str, dtype: ComputeDtype, tolerance: Option<f32>) -> f32 {
    let device = Default::default();
    let dir = ModelDir::new(fixture_dir(name));
    let model = dir
        .load::<Cpu>(&device, LoadOptions { dtype })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let expected = expected(name);
    // bf16 carries 8 mantissa bits: cdr's bf16 may sit as far from the f32 reference as
    // transformers' own bf16 forward does, with some slack for a different summation order.
    let tolerance = tolerance.unwrap_or(1.5 * expected.transformers_bf16_max_abs_diff);
    let mut worst = 0.0f32;
    for (i, seq) in expected.sequences.iter().enumerate() {
        let got = model.token_logprobs(&[&seq.ids]).unwrap();
        let diff = max_abs_diff(&got[0], &seq.logprobs);
        assert!(
            diff <= tolerance,
            "{name} ({dtype}) sequence {i} (len {}): max |diff| {diff:e} > {tolerance:e}",
            seq.ids.len()
        );
        worst = worst.max(diff);
    }
    println!(
        "{name:14} {dtype}: max |logprob - transformers {} f32| = {worst:.3e} over {} sequences \
         (transformers bf16: {:.3e})",
        expected.transformers_version,
        expected.sequences.len(),
        expected.transformers_bf16_max_abs_diff
    );
    worst
}

#[test]
fn f32_matches_transformers() {
    for name in FIXTURES {
        check_fixture(name, ComputeDtype::F32, Some(1e-4));
    }
}

#[test]
fn bf16_stays_close_to_transformers_f32() {
    for name in FIXTURES {
        check_fixture(name, ComputeDtype::BF16, None);
    }
}

#[test]
fn padded_batch_equals_one_by_one() {
    let device = Default::default();
    for name in FIXTURES {
        let model = ModelDir::new(fixture_dir(name))
            .load::<Cpu>(&device, LoadOptions::default())
            .unwrap();
        let expected = expected(name);
        let seqs: Vec<&[u32]> = expected
            .sequences
            .iter()
            .map(|s| s.ids.as_slice())
            .collect();
        let batched = model.token_logprobs(&seqs).unwrap();
        let mut worst = 0.0f32;
        for (seq, got) in seqs.iter().zip(&batched) {
            let alone = model.token_logprobs(&[seq]).unwrap();
            worst = worst.max(max_abs_diff(&alone[0], got));
        }
        println!("{name:14} padded batch vs one by one: max |diff| = {worst:.3e}");
        assert!(worst <= 1e-5, "{name}: padded batch differs by {worst:e}");
    }
}

#[test]
fn spans_score_only_the_requested_tokens() {
    let model = ModelDir::new(fixture_dir("llama_gqa"))
        .load::<Cpu>(&Default::default(), LoadOptions::default())
        .unwrap();
    let expected = expected("llama_gqa");
    let seq = expected
        .sequences
        .iter()
        .max_by_key(|s| s.ids.len())
        .unwrap();
    let start = seq.ids.len() / 2;
    let got = model
        .score_spans(&[cdr_models::ScoreSpan {
            ids: &seq.ids,
            start,
        }])
        .unwrap();
    assert_eq!(got[0].len(), seq.ids.len() - start);
    assert!(max_abs_diff(&got[0], &seq.logprobs[start - 1..]) <= 1e-4);
}

#[test]
fn tokenizer_matches_python_tokenizers() {
    for name in FIXTURES {
        let tokenizer = ModelDir::new(fixture_dir(name)).tokenizer().unwrap();
        let mut checked = 0;
        for seq in expected(name).sequences {
            if let Some(text) = &seq.text {
                let enc = tokenizer.encode(text.as_str(), false).unwrap();
                assert_eq!(enc.get_ids(), seq.ids.as_slice(), "{name}: {text:?}");
                checked += 1;
            }
        }
        assert!(checked > 0, "{name}: no text sequences to check");
    }
}

#[test]
fn out_of_vocabulary_ids_are_an_error() {
    let model = ModelDir::new(fixture_dir("llama_gqa"))
        .load::<Cpu>(&Default::default(), LoadOptions::default())
        .unwrap();
    let vocab = model.config().vocab_size as u32;
    let err = model
        .token_logprobs(&[&[1, vocab]])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&vocab.to_string()), "{err}");
}
