//! Per-token log-probs against transformers, on the fixtures written by tools/make_fixtures.py.

mod common;

use burn::tensor::{DType, Int, Tensor, TensorData, activation::log_softmax};
use cdr_models::backend::Cpu;
use cdr_models::rope::Rope;
use cdr_models::{ComputeDtype, LoadOptions, ModelDir, ScoreSpan};
use common::{FIXTURES, ROPE_FIXTURES, expected, fixture_dir, max_abs_diff};

fn all_fixtures() -> impl Iterator<Item = &'static str> {
    FIXTURES.into_iter().chain(ROPE_FIXTURES)
}

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
    for name in all_fixtures() {
        check_fixture(name, ComputeDtype::F32, Some(1e-4));
    }
}

#[test]
fn bf16_stays_close_to_transformers_f32() {
    // CI runs this test once per kernel path, forced with CDR_CPU_KERNEL: the path taken must be
    // the one asked for (every x86 path exists on the CI machine).
    use cdr_models::kernels::bf16::{FORCE_VAR, Isa, isa};
    if let Ok(forced) = std::env::var(FORCE_VAR)
        && Isa::available().iter().any(|i| i.name() == forced)
    {
        assert_eq!(
            isa().name(),
            forced,
            "{FORCE_VAR}={forced} was not honoured"
        );
    }
    println!("bf16 products on the {} path", isa());
    for name in all_fixtures() {
        check_fixture(name, ComputeDtype::BF16, None);
    }
}

#[test]
fn padded_batch_equals_one_by_one() {
    for name in FIXTURES {
        let model = common::load_fixture(name);
        let expected = expected(name);
        let seqs = expected.ids();
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

/// tokenizer.json as written against Python's `PreTrainedTokenizerFast` on it (which wrote the
/// fixture ids). A model directory's tokenizer is that, except for qwen2, whose directories
/// tokenize as transformers' own Qwen2Tokenizer (tests/tokenizer_class.rs).
#[test]
fn tokenizer_matches_python_tokenizers() {
    for name in all_fixtures() {
        let dir = ModelDir::new(fixture_dir(name));
        let as_written =
            cdr_models::load_tokenizer(fixture_dir(name).join("tokenizer.json")).unwrap();
        let model_dir = dir.tokenizer().unwrap();
        let qwen2 = dir.config().unwrap().model_type == "qwen2";
        let mut checked = 0;
        for seq in expected(name).sequences {
            if let Some(text) = &seq.text {
                let enc = as_written.encode(text.as_str(), false).unwrap();
                assert_eq!(enc.get_ids(), seq.ids.as_slice(), "{name}: {text:?}");
                if !qwen2 {
                    let enc = model_dir.encode(text.as_str(), false).unwrap();
                    assert_eq!(enc.get_ids(), seq.ids.as_slice(), "{name}: {text:?}");
                }
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

#[test]
fn rope_frequencies_match_transformers() {
    for name in ROPE_FIXTURES {
        let config = ModelDir::new(fixture_dir(name)).config().unwrap();
        let rope = Rope::new(&config).unwrap();
        let expected = expected(name);
        assert!(!expected.rope.is_empty(), "{name}: no rope reference");
        let mut worst = 0.0f32;
        for r in &expected.rope {
            let got = rope.frequencies(r.seq_len);
            assert_eq!(got.len(), r.inv_freq.len(), "{name}");
            for (g, w) in got.iter().zip(&r.inv_freq) {
                worst = worst.max((g - w).abs() / w.abs());
            }
            let scale = f64::from(rope.attention_scaling());
            assert!(
                (scale - r.attention_scaling).abs() <= 1e-6 * r.attention_scaling,
                "{name}: attention scaling {scale} vs transformers {}",
                r.attention_scaling
            );
        }
        println!("{name:14} inv_freq: max relative diff to transformers {worst:.3e}");
        // Both sides compute in f32; a different pow implementation may round one ulp apart.
        assert!(
            worst <= 3e-7,
            "{name}: inv_freq differs by {worst:e} (relative)"
        );
    }
}

/// transformers' batch forward takes the frequencies from the longest row (positions `0..width`),
/// so for dynamic and longrope a short row scores differently than alone; cdr's padded forward
/// does the same. (Scoring does not batch such rows: see the test below.)
#[test]
fn rope_padded_batch_matches_transformers_batch() {
    for name in ROPE_FIXTURES {
        let model = common::load_fixture(name);
        let expected = expected(name);
        let seqs = expected.ids();
        assert_eq!(expected.batch_logprobs.len(), seqs.len(), "{name}");
        let spans: Vec<ScoreSpan<'_>> = seqs.iter().map(|ids| ScoreSpan::all(ids)).collect();
        let batched = model.score_spans_padded(&spans).unwrap();
        let mut worst = 0.0f32;
        let mut vs_alone = 0.0f32;
        for ((got, want), seq) in batched
            .iter()
            .zip(&expected.batch_logprobs)
            .zip(&expected.sequences)
        {
            worst = worst.max(max_abs_diff(got, want));
            vs_alone = vs_alone.max(max_abs_diff(got, &seq.logprobs));
        }
        println!(
            "{name:14} padded batch: max |diff| to transformers' batch {worst:.3e} \
             (to each sequence alone {vs_alone:.3e})"
        );
        assert!(worst <= 1e-4, "{name}: padded batch differs by {worst:e}");
        if !model
            .config()
            .rope_scaling_kind()
            .unwrap()
            .depends_on_length()
        {
            assert!(
                vs_alone <= 1e-4,
                "{name}: batch differs from alone by {vs_alone:e}"
            );
        }
    }
}

/// A prefill and then one token a step on the cache, as transformers' `generate` runs it: for
/// dynamic and longrope each step's query and key get the frequencies of the length reached so far
/// while the cached keys keep theirs.
#[test]
fn rope_cached_decoding_matches_transformers_steps() {
    let device = Default::default();
    for name in ROPE_FIXTURES {
        let model = common::load_fixture(name);
        let expected = expected(name);
        let cached = expected.cached.as_ref().unwrap();
        let ids = &cached.ids;
        let vocab = model.config().vocab_size;
        let step = |cache: &mut cdr_models::KvCache<Cpu>, chunk: &[u32], next: &[u32]| {
            let data: Vec<i32> = chunk.iter().map(|&i| i as i32).collect();
            let x =
                Tensor::<Cpu, 2, Int>::from_data(TensorData::new(data, [1, chunk.len()]), &device);
            let hidden = model.forward_cached(x, cache).unwrap();
            let [_, s, h] = hidden.dims();
            let lp = log_softmax(model.logits(hidden.reshape([s, h])).cast(DType::F32), 1);
            let values = lp.into_data().to_vec::<f32>().unwrap();
            next.iter()
                .enumerate()
                .map(|(t, &id)| values[t * vocab + id as usize])
                .collect::<Vec<f32>>()
        };
        let mut cache = model.new_cache();
        let p = cached.prefill;
        let mut got = step(&mut cache, &ids[..p], &ids[1..=p]);
        for t in p..ids.len() - 1 {
            got.extend(step(&mut cache, &ids[t..=t], &ids[t + 1..=t + 1]));
        }
        let diff = max_abs_diff(&got, &cached.logprobs);
        println!(
            "{name:14} cached decoding (prefill {p}, {} steps): max |diff| to transformers {diff:.3e}",
            ids.len() - 1 - p
        );
        assert!(diff <= 1e-4, "{name}: cached decoding differs by {diff:e}");
    }
}

/// Scoring (`score_spans`: batches, shared prefixes) must give each sequence what transformers
/// gives it alone, also where the rope depends on the length a forward reaches.
#[test]
fn rope_scoring_batches_match_each_sequence_alone() {
    for name in ROPE_FIXTURES {
        let model = common::load_fixture(name);
        let expected = expected(name);
        let spans: Vec<ScoreSpan<'_>> = expected
            .sequences
            .iter()
            .filter(|s| s.ids.len() >= 2)
            .map(|s| ScoreSpan {
                ids: &s.ids,
                start: 1,
            })
            .collect();
        let scored = model.score_spans(&spans).unwrap();
        let mut worst = 0.0f32;
        for (got, seq) in scored
            .iter()
            .zip(expected.sequences.iter().filter(|s| s.ids.len() >= 2))
        {
            worst = worst.max(max_abs_diff(got, &seq.logprobs));
        }
        // Prefixes of the longest sequence: one shared prompt, continuations on both sides of
        // the original context.
        let longest = &expected
            .sequences
            .iter()
            .max_by_key(|s| s.ids.len())
            .unwrap()
            .ids;
        let lengths = [20usize, 33, 66, longest.len()];
        let shared: Vec<ScoreSpan<'_>> = lengths
            .iter()
            .map(|&n| ScoreSpan {
                ids: &longest[..n],
                start: 18,
            })
            .collect();
        let together = model.score_spans(&shared).unwrap();
        let mut worst_shared = 0.0f32;
        for (got, span) in together.iter().zip(&shared) {
            let alone = model.score_spans(std::slice::from_ref(span)).unwrap();
            worst_shared = worst_shared.max(max_abs_diff(got, &alone[0]));
        }
        println!(
            "{name:14} score_spans: max |diff| to transformers alone {worst:.3e}; shared prefix vs \
             alone {worst_shared:.3e}"
        );
        assert!(
            worst <= 1e-4,
            "{name}: batch differs from alone by {worst:e}"
        );
        assert!(
            worst_shared <= 1e-5,
            "{name}: shared-prefix batch differs from alone by {worst_shared:e}"
        );
    }
}
