//! Fixture parity on whichever backend this example is built for: per-token log-probs against the
//! transformers references in `tests/fixtures`, in f32 and bf16, plus padded-batch consistency.
//!
//! ```text
//! cargo run --release -p cdr-models --example parity -- cdr-models/tests/fixtures
//! cargo build --release -p cdr-models --example parity --no-default-features --features cuda
//! ```
//! With a `generate.json`, each prompt is also decoded greedily alone and compared with transformers'
//! tokens (all must agree in f32).
//!
//! Prints one row per fixture and dtype; exits non-zero if f32 exceeds `--f32-tol` (default 1e-4) or
//! f16/bf16 exceed `--half-tol` (default 1: bf16 rounding costs up to about 0.45 on these fixtures on
//! the CPU, a wrong kernel costs nats). `--dtypes f32,f16` and `--fixtures a,b`
//! narrow the run; `--long-batch` adds a 5 x 1,000-1,400-token padded batch checked against its
//! sequences scored alone.

use std::path::PathBuf;

use cdr_models::{ComputeDtype, GenerateOptions, Generator, LoadOptions, ModelDir, ScoreSpan};
use serde::Deserialize;

type B = cdr_models::backend::Selected;

#[derive(Deserialize)]
struct Expected {
    sequences: Vec<Seq>,
}

/// transformers' greedy generations (`generate.json`, from `tools/make_generation_fixtures.py`).
#[derive(Deserialize)]
struct Greedy {
    eos_token_ids: Vec<u32>,
    max_new_tokens: usize,
    prompts: Vec<GreedyPrompt>,
}

#[derive(Deserialize)]
struct GreedyPrompt {
    ids: Vec<u32>,
    alone: Vec<u32>,
}

/// Generated tokens that agree with the reference before the first difference, and the reference's
/// token count, summed over prompts. Each prompt decodes alone: one row per step, the shape that
/// needed a fusion workaround in half precision.
fn greedy_agreement<B: cdr_models::backend::Backend>(
    model: &cdr_models::LlamaForCausalLm<B>,
    greedy: &Greedy,
) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let generator = Generator::new(
        model,
        GenerateOptions {
            max_new_tokens: greedy.max_new_tokens,
            stop_ids: greedy.eos_token_ids.clone(),
            ..Default::default()
        },
    )?;
    let (mut agree, mut total) = (0, 0);
    for p in &greedy.prompts {
        let got = generator.generate(&p.ids, &[0])?.remove(0).ids;
        agree += got.iter().zip(&p.alone).take_while(|(a, b)| a == b).count();
        total += p.alone.len();
    }
    Ok((agree, total))
}

#[derive(Deserialize)]
struct Seq {
    ids: Vec<u32>,
    logprobs: Vec<f32>,
}

/// Continuations of one 20-token prefix (the longest sequence's head followed by each sequence),
/// scored together through the shared-prefix path (prefix run once, its keys/values repeated per
/// row, a rectangular causal mask) and one by one: the largest difference. One by one, not as plain
/// padded rows: with a length-dependent rope (dynamic, longrope) a padded batch gets the longest
/// row's frequencies, and each sequence is owed what it gets alone.
fn shared_vs_alone(
    model: &cdr_models::LlamaForCausalLm<B>,
    seqs: &[&[u32]],
) -> Result<f32, Box<dyn std::error::Error>> {
    const PREFIX: usize = 20;
    let Some(long) = seqs
        .iter()
        .max_by_key(|s| s.len())
        .filter(|s| s.len() >= PREFIX)
    else {
        return Ok(0.0);
    };
    let joined: Vec<Vec<u32>> = seqs
        .iter()
        .map(|s| long[..PREFIX].iter().chain(&s[1..]).copied().collect())
        .collect();
    let spans: Vec<ScoreSpan<'_>> = joined
        .iter()
        .map(|ids| ScoreSpan { ids, start: PREFIX })
        .collect();
    let alone = spans
        .iter()
        .map(|span| Ok(model.score_spans(std::slice::from_ref(span))?.remove(0)))
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    Ok(worst_diff(&model.score_spans(&spans)?, &alone))
}

/// Five sequences of 1,000-1,400 tokens (the fixture's tokens, cycled; no transformers reference
/// exists for them) scored as one padded batch and one by one: the largest difference, and, in a
/// build that also has the `cpu` feature, the largest difference of the lone scores from the CPU's
/// f32. Such a batch's attention scores exceed what one buffer holds on some devices, and its key
/// counts reach the inner dimensions where a burn matmul kernel was found wrong.
fn long_batch_check(
    model: &cdr_models::LlamaForCausalLm<B>,
    dir: &std::path::Path,
    seqs: &[&[u32]],
) -> Result<(f32, Option<f32>), Box<dyn std::error::Error>> {
    let pool: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
    if pool.is_empty() {
        return Ok((0.0, None));
    }
    let long: Vec<Vec<u32>> = [1400, 1300, 1200, 1100, 1000]
        .iter()
        .map(|&n| pool.iter().copied().cycle().take(n).collect())
        .collect();
    let batch: Vec<&[u32]> = long.iter().map(Vec::as_slice).collect();
    let padded = model.token_logprobs(&batch)?;
    let alone = batch
        .iter()
        .map(|ids| Ok(model.token_logprobs(&[ids])?.remove(0)))
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    Ok((
        worst_diff(&alone, &padded),
        cpu_reference(dir, &batch, &alone)?,
    ))
}

#[cfg(feature = "cpu")]
fn cpu_reference(
    dir: &std::path::Path,
    batch: &[&[u32]],
    got: &[Vec<f32>],
) -> Result<Option<f32>, Box<dyn std::error::Error>> {
    use cdr_models::backend::Cpu;
    if std::any::TypeId::of::<B>() == std::any::TypeId::of::<Cpu>() {
        return Ok(None);
    }
    let options = LoadOptions {
        dtype: ComputeDtype::F32,
    };
    let cpu = ModelDir::new(dir).load::<Cpu>(&Default::default(), options)?;
    Ok(Some(worst_diff(got, &cpu.token_logprobs(batch)?)))
}

#[cfg(not(feature = "cpu"))]
fn cpu_reference(
    _: &std::path::Path,
    _: &[&[u32]],
    _: &[Vec<f32>],
) -> Result<Option<f32>, Box<dyn std::error::Error>> {
    Ok(None)
}

/// The largest [`max_diff`] over pairs of sequences.
fn worst_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(a, b)| max_diff(a, b))
        .fold(0.0, f32::max)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        // A NaN counts as the worst difference (f32::max would skip it).
        .map(|d| if d.is_nan() { f32::INFINITY } else { d })
        .fold(0.0, f32::max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "cdr-models/tests/fixtures".into()),
    );
    let mut f32_tol = 1e-4f32;
    let mut half_tol = 1.0f32;
    let mut dtypes = vec![ComputeDtype::F32, ComputeDtype::BF16];
    let mut only: Option<Vec<String>> = None;
    let mut long_batch = false;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--f32-tol" => f32_tol = value()?.parse()?,
            "--half-tol" => half_tol = value()?.parse()?,
            "--dtypes" => {
                dtypes = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            // The CPU through the composed ops GPU backends take (no fused CPU kernels).
            "--composed" => cdr_models::kernels::use_composed_ops(true),
            "--fixtures" => only = Some(value()?.split(',').map(String::from).collect()),
            "--long-batch" => long_batch = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let device = Default::default();
    let backend = std::any::type_name::<B>();
    println!("backend: {backend}");
    println!(
        "| fixture | dtype | max abs diff vs transformers f32 | padded batch vs one by one | shared prefix vs one by one | greedy tokens as transformers f32 |"
    );
    println!("|---|---|---|---|---|---|");
    let mut failed = false;
    let mut names: Vec<_> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.path().join("expected.json").is_file() && e.path().join("config.json").is_file()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if let Some(only) = &only {
        names.retain(|n| only.contains(n));
    }
    let t0 = std::time::Instant::now();
    for name in names {
        let dir = root.join(&name);
        let expected: Expected =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json"))?)?;
        let greedy: Option<Greedy> = match std::fs::read_to_string(dir.join("generate.json")) {
            Ok(text) => Some(serde_json::from_str(&text)?),
            Err(_) => None,
        };
        for &dtype in &dtypes {
            eprintln!("[{:6.1}s] {name} {dtype}", t0.elapsed().as_secs_f32());
            let model = ModelDir::new(&dir).load::<B>(&device, LoadOptions { dtype })?;
            let mut worst = 0.0f32;
            let mut alone = Vec::new();
            for seq in &expected.sequences {
                let got = model.token_logprobs(&[&seq.ids])?.remove(0);
                let diff = max_diff(&got, &seq.logprobs);
                // Per sequence, so a slow first run (kernel compilation) shows where it stands.
                eprintln!(
                    "[{:6.1}s]   {} tokens: {diff:.3e}",
                    t0.elapsed().as_secs_f32(),
                    seq.ids.len()
                );
                worst = worst.max(diff);
                alone.push(got);
            }
            let batch: Vec<&[u32]> = expected
                .sequences
                .iter()
                .map(|s| s.ids.as_slice())
                .collect();
            let padded = model.token_logprobs(&batch)?;
            let pad_diff = worst_diff(&alone, &padded);
            let shared_diff = shared_vs_alone(&model, &batch)?;
            let (long_diff, long_ref) = if long_batch {
                long_batch_check(&model, &dir, &batch)?
            } else {
                (0.0, None)
            };
            let greedy_cell = match &greedy {
                Some(greedy) => {
                    let (agree, total) = greedy_agreement(&model, greedy)?;
                    // f32 must reproduce transformers' tokens; half precision may drift once two
                    // logits are closer than its rounding, so it is reported, not gated.
                    if dtype == ComputeDtype::F32 && agree != total {
                        failed = true;
                    }
                    format!("{agree}/{total}")
                }
                None => "-".into(),
            };
            println!(
                "| {name} | {dtype} | {worst:.3e} | {pad_diff:.3e} | {shared_diff:.3e} | {greedy_cell} |"
            );
            let tol = match dtype {
                ComputeDtype::F32 => f32_tol,
                _ => half_tol,
            };
            let long_ref_diff = long_ref.unwrap_or(0.0);
            if long_batch {
                let vs_cpu = long_ref.map_or("-".into(), |d| format!("{d:.3e}"));
                println!(
                    "|   5 x 1,000-1,400 tokens (vs the CPU's f32 in a build with `cpu`) | {dtype} | {vs_cpu} | {long_diff:.3e} | | |"
                );
            }
            if worst > tol
                || pad_diff > tol
                || shared_diff > tol
                || long_diff > tol
                || long_ref_diff > tol
            {
                failed = true;
            }
        }
    }
    if failed {
        return Err(
            format!("difference above tolerance (f32 {f32_tol:e}, f16/bf16 {half_tol:e})").into(),
        );
    }
    Ok(())
}
