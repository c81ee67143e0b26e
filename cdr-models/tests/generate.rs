//! Generation: greedy decoding equals transformers' greedy `generate` token for token
//! (tools/make_generation_fixtures.py), seeded sampling repeats, top-k / top-p draw only from their
//! support, and the stop conditions (ids, strings, length) end samples where they should.

mod common;

use std::collections::HashSet;

use cdr_models::candidates;
use cdr_models::{
    FinishReason, GenerateOptions, Generator, LlamaForCausalLm, ModelDir, Sampling, backend::Cpu,
    model_stop_ids,
};
use common::{FIXTURES, fixture_dir};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    eos_token_ids: Vec<u32>,
    max_new_tokens: usize,
    prompts: Vec<ExpectedPrompt>,
}

#[derive(Deserialize)]
struct ExpectedPrompt {
    ids: Vec<u32>,
    expected: Vec<u32>,
    alone: Vec<u32>,
}

fn load(name: &str) -> LlamaForCausalLm<Cpu> {
    common::load_fixture(name)
}

fn expected(name: &str) -> Expected {
    let path = fixture_dir(name).join("generate.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tools/make_generation_fixtures.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn sampled(temperature: f32, top_k: usize, top_p: f32) -> Sampling {
    Sampling {
        temperature,
        top_k,
        top_p,
    }
}

#[test]
fn greedy_equals_transformers_generate() {
    for name in FIXTURES {
        let model = load(name);
        let exp = expected(name);
        let stop_ids = model_stop_ids(&ModelDir::new(fixture_dir(name)), model.config()).unwrap();
        assert_eq!(
            stop_ids, exp.eos_token_ids,
            "{name}: the stop ids are the eos ids generate stops on"
        );
        let generator = Generator::new(
            &model,
            GenerateOptions {
                max_new_tokens: exp.max_new_tokens,
                stop_ids,
                ..Default::default()
            },
        )
        .unwrap();
        let prompts: Vec<&[u32]> = exp.prompts.iter().map(|p| p.ids.as_slice()).collect();
        let seeds = vec![vec![0]; prompts.len()];
        let got = generator.generate_batch(&prompts, &seeds).unwrap();
        let mut lengths = Vec::new();
        for (i, (p, g)) in exp.prompts.iter().zip(&got).enumerate() {
            assert_eq!(
                p.expected, p.alone,
                "{name}: the reference's batched and single runs differ"
            );
            assert_eq!(g[0].ids, p.expected, "{name}: prompt {i}");
            let ended_on_eos = p
                .expected
                .last()
                .is_some_and(|t| exp.eos_token_ids.contains(t));
            let want = if ended_on_eos {
                FinishReason::Eos
            } else {
                FinishReason::Length
            };
            assert_eq!(g[0].finish, want, "{name}: prompt {i}");
            lengths.push((p.ids.len(), g[0].ids.len()));
        }
        if let Some(window) = model.config().sliding_window() {
            assert!(
                lengths.iter().any(|(p, n)| p + n > window),
                "{name}: generation should run past the sliding window ({window})"
            );
        }
        println!(
            "{name:14} greedy == transformers generate on {} prompts (prompt, new tokens) {lengths:?}",
            lengths.len()
        );
    }
}

/// A repeated sample of one prompt gives what decoding it alone gives: the rows of one prefill
/// do not disturb each other, also after finished rows leave the batch.
#[test]
fn samples_sharing_a_prefill_match_samples_alone() {
    let model = load("mistral_sw");
    let exp = expected("mistral_sw");
    let prompt = &exp.prompts[1].ids;
    let generator = Generator::new(
        &model,
        GenerateOptions {
            max_new_tokens: 30,
            sampling: sampled(1.0, 0, 1.0),
            // Every 7th id stops a sample, so that rows finish at different steps.
            stop_ids: (0..384).step_by(7).collect(),
            ..Default::default()
        },
    )
    .unwrap();
    let seeds: Vec<u64> = (0..6).collect();
    let together = generator.generate(prompt, &seeds).unwrap();
    let lengths: HashSet<usize> = together.iter().map(|g| g.ids.len()).collect();
    assert!(
        lengths.len() > 1,
        "samples should finish at different steps"
    );
    for (seed, joint) in seeds.iter().zip(&together) {
        let alone = generator.generate(prompt, &[*seed]).unwrap().remove(0);
        assert_eq!(joint, &alone, "seed {seed}");
    }
}

/// Prompts of different lengths decoded in one batch (left-padded in the cache) give each prompt
/// the samples it gets alone — on every fixture (sliding windows, per-layer windows, GQA). The
/// composed burn ops (GPU backends) get the same check in tests/composed_path.rs.
#[test]
fn prompts_batched_together_match_each_prompt_alone() {
    for name in FIXTURES {
        let model = load(name);
        let exp = expected(name);
        let generator = Generator::new(
            &model,
            GenerateOptions {
                max_new_tokens: 24,
                sampling: sampled(1.0, 0, 0.9),
                // Every 9th id stops a sample, so that rows finish at different steps.
                stop_ids: (0..384).step_by(9).collect(),
                ..Default::default()
            },
        )
        .unwrap();
        let prompts: Vec<&[u32]> = exp.prompts.iter().map(|p| p.ids.as_slice()).collect();
        // A different number of samples per prompt, one prompt with none.
        let seeds: Vec<Vec<u64>> = (0..prompts.len())
            .map(|i| (0..(3 - i as u64 % 3)).map(|s| 10 * i as u64 + s).collect())
            .chain(std::iter::once(Vec::new()))
            .collect();
        let mut prompts_plus = prompts.clone();
        prompts_plus.push(prompts[0]);
        let together = generator.generate_batch(&prompts_plus, &seeds).unwrap();
        let mut steps = HashSet::new();
        for (p, (prompt, seeds)) in prompts_plus.iter().zip(&seeds).enumerate() {
            assert_eq!(together[p].len(), seeds.len(), "{name}: prompt {p}");
            let alone = generator.generate(prompt, seeds).unwrap();
            assert_eq!(together[p], alone, "{name}: prompt {p}");
            steps.extend(alone.iter().map(|g| g.ids.len()));
        }
        assert!(
            steps.len() > 1,
            "{name}: samples should finish at different steps"
        );
    }
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let model = load("llama_gqa");
    let prompt: Vec<u32> = (20..40).collect();
    let generator = Generator::new(
        &model,
        GenerateOptions {
            max_new_tokens: 20,
            sampling: sampled(1.0, 0, 1.0),
            ..Default::default()
        },
    )
    .unwrap();
    let seeds = [1, 2, 3, 4];
    let a = generator.generate(&prompt, &seeds).unwrap();
    let b = generator.generate(&prompt, &seeds).unwrap();
    assert_eq!(a, b, "same seeds, same samples");
    let distinct: HashSet<&Vec<u32>> = a.iter().map(|g| &g.ids).collect();
    assert_eq!(
        distinct.len(),
        seeds.len(),
        "different seeds, different samples"
    );
    assert!(
        a.iter()
            .all(|g| g.ids.len() == 20 && g.finish == FinishReason::Length)
    );
}

/// Every sampled token lies in the top-k / top-p support of the logits it was drawn from; the
/// support is recomputed here from a full forward over the prompt and the tokens so far.
#[test]
fn top_k_and_top_p_sample_only_from_their_support() {
    let model = load("llama3_tied");
    let prompt: Vec<u32> = (11..30).collect();
    for sampling in [
        sampled(1.0, 5, 1.0),
        sampled(1.5, 0, 0.3),
        sampled(0.7, 20, 0.6),
    ] {
        let generator = Generator::new(
            &model,
            GenerateOptions {
                max_new_tokens: 12,
                sampling,
                ..Default::default()
            },
        )
        .unwrap();
        let seeds: Vec<u64> = (0..8).collect();
        let samples = generator.generate(&prompt, &seeds).unwrap();
        let mut drawn = HashSet::new();
        let mut largest_support = 0;
        for s in &samples {
            let mut ids = prompt.clone();
            for &token in &s.ids {
                let logits = full_forward_last_logits(&model, &ids);
                let support: Vec<u32> =
                    candidates(&logits, &sampling).iter().map(|c| c.0).collect();
                largest_support = largest_support.max(support.len());
                if sampling.top_k > 0 {
                    assert!(support.len() <= sampling.top_k + 1);
                }
                assert!(
                    support.contains(&token),
                    "{sampling:?}: token {token} outside its support {support:?}"
                );
                drawn.insert(token);
                ids.push(token);
            }
        }
        assert!(largest_support < 384, "{sampling:?} filtered nothing");
        assert!(drawn.len() > 1, "{sampling:?}: the draws should vary");
    }
}

fn full_forward_last_logits(model: &LlamaForCausalLm<Cpu>, ids: &[u32]) -> Vec<f32> {
    use burn::tensor::{DType, Int, Tensor, TensorData};
    let flat: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    let t = Tensor::<Cpu, 2, Int>::from_data(
        TensorData::new(flat, [1, ids.len()]),
        &Default::default(),
    );
    let hidden = model.hidden_states(t);
    let [_, s, h] = hidden.dims();
    let last = hidden.narrow(1, s - 1, 1).reshape([1, h]);
    model
        .logits(last)
        .cast(DType::F32)
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn stop_strings_cut_the_text_and_end_the_sample() {
    let name = "llama_gqa";
    let dir = ModelDir::new(fixture_dir(name));
    let model = load(name);
    let tokenizer = dir.tokenizer().unwrap();
    let exp = expected(name);
    let p = &exp.prompts[1];
    // The reference's greedy continuation, decoded: stop on a piece of it.
    let full = tokenizer.decode(&p.expected, true).unwrap();
    let chars: Vec<char> = full.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 3].iter().collect();
    let generator = Generator::new(
        &model,
        GenerateOptions {
            max_new_tokens: exp.max_new_tokens,
            stop_strings: vec![stop.clone()],
            ..Default::default()
        },
    )
    .unwrap()
    .with_tokenizer(&tokenizer);
    let g = generator.generate(&p.ids, &[0]).unwrap().remove(0);
    assert_eq!(g.finish, FinishReason::StopString);
    assert!(g.ids.len() < p.expected.len());
    assert_eq!(g.ids, p.expected[..g.ids.len()], "greedy up to the stop");
    let text = g.text.unwrap();
    let cut = full.find(&stop).unwrap();
    assert_eq!(text, full[..cut], "text ends before the stop string");

    // Without a tokenizer, stop strings are refused rather than ignored.
    let no_tok = Generator::new(
        &model,
        GenerateOptions {
            stop_strings: vec!["x".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert!(no_tok.generate(&p.ids, &[0]).is_err());
}

#[test]
fn eos_ids_are_kept_in_ids_but_not_in_text_and_bad_inputs_fail() {
    let name = "llama3_tied";
    let dir = ModelDir::new(fixture_dir(name));
    let model = load(name);
    let tokenizer = dir.tokenizer().unwrap();
    let exp = expected(name);
    // The third prompt's reference ends on an eos id.
    let p = &exp.prompts[2];
    assert!(exp.eos_token_ids.contains(p.expected.last().unwrap()));
    let generator = Generator::new(
        &model,
        GenerateOptions {
            max_new_tokens: exp.max_new_tokens,
            stop_ids: exp.eos_token_ids.clone(),
            ..Default::default()
        },
    )
    .unwrap()
    .with_tokenizer(&tokenizer);
    let g = generator.generate(&p.ids, &[0]).unwrap().remove(0);
    assert_eq!(g.ids, p.expected);
    let body = &p.expected[..p.expected.len() - 1];
    assert_eq!(g.text.unwrap(), tokenizer.decode(body, true).unwrap());

    let zero = Generator::new(
        &model,
        GenerateOptions {
            max_new_tokens: 0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        zero.generate(&p.ids, &[0, 1])
            .unwrap()
            .iter()
            .all(|g| g.ids.is_empty())
    );
    assert!(generator.generate(&[], &[0]).is_err(), "empty prompt");
    assert!(
        generator.generate(&[5000], &[0]).is_err(),
        "id outside the vocabulary"
    );
    let bad = |options: GenerateOptions| Generator::new(&model, options).is_err();
    assert!(bad(GenerateOptions {
        stop_ids: vec![384],
        ..Default::default()
    }));
    assert!(bad(GenerateOptions {
        sampling: sampled(-0.5, 0, 1.0),
        ..Default::default()
    }));
    assert!(bad(GenerateOptions {
        stop_strings: vec![String::new()],
        ..Default::default()
    }));
}
