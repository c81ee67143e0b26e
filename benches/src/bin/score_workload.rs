//! Scoring throughput on realistic workloads — cdr and transformers + PyTorch on the same token ids,
//! the same weights and the same machine, in one run — printed as a Markdown table.
//!
//! ```text
//! cargo run --release -p cdr-benches --bin score_workload -- --shape smollm2-135m \
//!     --workload pairwise:8 --workload best-of-8:2 --baseline /path/to/python
//! ```
//! Options: `--shape NAME`, `--workload KIND:PROMPTS` (repeatable; KIND is `pairwise` or
//! `best-of-N`), `--dtype f32|bf16`, `--max-batch-tokens N` (cdr's budget, default 8192 as in the
//! CLI), `--baseline PYTHON` (runs `benches/torch_baseline.py` with it), `--baseline-batch N`
//! (sequences per padded batch in the baseline, default 8), `--baseline-lean` (the baseline projects
//! onto the vocabulary only at response positions, as cdr does, instead of everywhere), `--device cpu|cuda` (for the baseline),
//! `--seed N`. Each engine scores every workload once, timed, after an untimed warm-up: one batch
//! on the CPU, every batch on GPU backends (kernel compilation and autotuning happen per new shape;
//! their time is printed on stderr).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use cdr_benches::shapes::{Shape, checkpoint};
use cdr_benches::workload::{Kind, Workload};
use cdr_core::batch::{SeqShape, plan_batches, plan_shared_batches};
use cdr_models::{ComputeDtype, LlamaForCausalLm, LoadOptions, ModelDir, ScoreSpan};
use serde::Deserialize;

type B = cdr_models::backend::Selected;
type Error = Box<dyn std::error::Error>;

struct Options {
    shape: &'static Shape,
    workloads: Vec<(Kind, usize)>,
    dtype: ComputeDtype,
    max_batch_tokens: usize,
    baseline: Option<String>,
    baseline_batch: usize,
    baseline_lean: bool,
    device: String,
    seed: u64,
}

fn parse() -> Result<Options, Error> {
    let mut o = Options {
        shape: Shape::find("smollm2-135m")?,
        workloads: Vec::new(),
        dtype: ComputeDtype::F32,
        max_batch_tokens: 8192,
        baseline: None,
        baseline_batch: 8,
        baseline_lean: false,
        device: if cfg!(feature = "cuda") {
            "cuda"
        } else {
            "cpu"
        }
        .into(),
        seed: 7,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--shape" => o.shape = Shape::find(&value()?)?,
            "--workload" => {
                let v = value()?;
                let (kind, prompts) = v
                    .split_once(':')
                    .ok_or(format!("--workload {v}: use KIND:PROMPTS"))?;
                o.workloads.push((kind.parse()?, prompts.parse()?));
            }
            "--dtype" => o.dtype = value()?.parse()?,
            "--max-batch-tokens" => o.max_batch_tokens = value()?.parse()?,
            "--baseline" => o.baseline = Some(value()?),
            "--baseline-batch" => o.baseline_batch = value()?.parse()?,
            "--baseline-lean" => o.baseline_lean = true,
            "--device" => o.device = value()?,
            "--seed" => o.seed = value()?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if o.workloads.is_empty() {
        o.workloads = vec![(Kind::Pairwise, 8), (Kind::BestOfN(8), 2)];
    }
    Ok(o)
}

/// One engine's pass over a workload.
struct Run {
    seconds: f64,
    /// Summed response log-prob per sequence, in workload order.
    sums: Vec<f64>,
    peak_mem_gb: Option<f64>,
}

#[derive(Deserialize)]
struct BaselineOut {
    seconds: f64,
    sums: Vec<f64>,
    peak_mem_gb: Option<f64>,
    ceiling_tflops: Option<f64>,
    torch: String,
}

fn score(
    model: &LlamaForCausalLm<B>,
    seqs: &[(Vec<u32>, usize)],
    batches: &[Vec<usize>],
    shared: bool,
) -> Result<Run, Error> {
    let spans: Vec<ScoreSpan<'_>> = seqs
        .iter()
        .map(|(ids, start)| ScoreSpan { ids, start: *start })
        .collect();
    let run = |batch: &[usize]| {
        let spans: Vec<ScoreSpan<'_>> = batch.iter().map(|&i| spans[i]).collect();
        if shared {
            model.score_spans(&spans)
        } else {
            model.score_spans_padded(&spans)
        }
    };
    // Warm-up, untimed. On GPU backends every new batch shape compiles kernels and autotunes on
    // first use (minutes for a fresh process), so one pass over all batches; the timed pass is then
    // the steady state a long annotation run sees. On the CPU one batch (page faults) is enough.
    let warm = if cfg!(any(feature = "cuda", feature = "wgpu")) {
        batches
    } else {
        &batches[..batches.len().min(1)]
    };
    let t = Instant::now();
    for batch in warm {
        run(batch)?;
    }
    eprintln!(
        "  warm-up over {} of {} batches: {:.1} s",
        warm.len(),
        batches.len(),
        t.elapsed().as_secs_f64()
    );
    let mut sums = vec![0f64; seqs.len()];
    let t = Instant::now();
    for batch in batches {
        for (&i, lp) in batch.iter().zip(run(batch)?) {
            sums[i] = lp.iter().map(|&x| x as f64).sum();
        }
    }
    Ok(Run {
        seconds: t.elapsed().as_secs_f64(),
        sums,
        peak_mem_gb: peak_rss_gb(),
    })
}

/// The process's peak resident memory (weights included), where the OS reports it.
fn peak_rss_gb() -> Option<f64> {
    if cfg!(feature = "cuda") || cfg!(feature = "wgpu") {
        return None;
    }
    cdr_models::memory::peak_rss_bytes().map(|b| b as f64 / (1u64 << 30) as f64)
}

/// Dense matmul TFLOP/s of this backend in the compute dtype (square 8192 on CUDA, 2048 elsewhere:
/// wgpu devices cap a buffer at 256 MiB by default).
fn matmul_ceiling(dtype: ComputeDtype) -> f64 {
    use burn::tensor::{Distribution, Tensor};
    let n = if cfg!(feature = "cuda") { 8192 } else { 2048 };
    let device = Default::default();
    let a = Tensor::<B, 2>::random([n, n], Distribution::Default, &device).cast(dtype.burn());
    let b = Tensor::<B, 2>::random([n, n], Distribution::Default, &device).cast(dtype.burn());
    let _ = a.clone().matmul(b.clone()).sum().into_scalar();
    let reps = 3;
    let t = Instant::now();
    let mut acc = a.clone().matmul(b.clone()).sum();
    for _ in 1..reps {
        acc = acc + a.clone().matmul(b.clone()).sum();
    }
    let _ = acc.into_scalar();
    reps as f64 * 2.0 * (n as f64).powi(3) / t.elapsed().as_secs_f64() / 1e12
}

/// Sequence indices of the best and worst response of each prompt, by summed log-prob.
fn decisions(w: &Workload, sums: &[f64]) -> Vec<(usize, usize)> {
    let mut at = 0;
    w.groups
        .iter()
        .map(|g| {
            let n = g.responses.len();
            let slice = &sums[at..at + n];
            let best = (0..n)
                .max_by(|&a, &b| slice[a].total_cmp(&slice[b]))
                .unwrap_or(0);
            let worst = (0..n)
                .min_by(|&a, &b| slice[a].total_cmp(&slice[b]))
                .unwrap_or(0);
            at += n;
            (best, worst)
        })
        .collect()
}

fn main() -> Result<(), Error> {
    let o = parse()?;
    let dir = checkpoint(o.shape)?;
    let model =
        ModelDir::new(&dir).load::<B>(&Default::default(), LoadOptions { dtype: o.dtype })?;
    let ceiling = matmul_ceiling(o.dtype);
    eprintln!(
        "shape {} ({:.2}B params), dtype {}, backend {}, matmul {ceiling:.2} TFLOP/s",
        o.shape.name,
        o.shape.params() as f64 / 1e9,
        o.dtype,
        std::any::type_name::<B>()
    );
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    let mut baseline_info = None;
    for &(kind, prompts) in &o.workloads {
        let w = Workload::generate(kind, prompts, o.shape.vocab, o.seed);
        let path = PathBuf::from(".cache/bench/workloads")
            .join(format!("{}-{kind}-{prompts}-{}.json", o.shape.name, o.seed));
        w.save(&path)?;
        let seqs = w.sequences();
        let tokens = w.tokens();
        let flops: f64 = seqs.iter().map(|(ids, _)| o.shape.flops(ids.len())).sum();
        let shapes: Vec<SeqShape<'_>> = seqs
            .iter()
            .map(|(ids, start)| SeqShape {
                len: ids.len(),
                prefix: &ids[..start - 1],
            })
            .collect();
        let lengths: Vec<usize> = seqs.iter().map(|(ids, _)| ids.len()).collect();

        eprintln!("{}: {} sequences, {tokens} tokens", w.name, seqs.len());
        let mut runs = vec![
            (
                "cdr",
                score(
                    &model,
                    &seqs,
                    &plan_shared_batches(&shapes, o.max_batch_tokens),
                    true,
                )?,
            ),
            (
                "cdr, no prefix sharing",
                score(
                    &model,
                    &seqs,
                    &plan_batches(&lengths, o.max_batch_tokens),
                    false,
                )?,
            ),
        ];
        if let Some(python) = &o.baseline {
            let out = Command::new(python)
                .arg("benches/torch_baseline.py")
                .arg("--checkpoint")
                .arg(&dir)
                .arg("--workload")
                .arg(&path)
                .args(["--dtype", &o.dtype.to_string(), "--device", &o.device])
                .args(["--batch", &o.baseline_batch.to_string()])
                .args(o.baseline_lean.then_some("--lean"))
                .output()?;
            if !out.status.success() {
                return Err(
                    format!("baseline failed: {}", String::from_utf8_lossy(&out.stderr)).into(),
                );
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout.lines().last().ok_or("baseline printed nothing")?;
            let b: BaselineOut = serde_json::from_str(line)?;
            baseline_info = Some((b.torch.clone(), b.ceiling_tflops));
            runs.push((
                if o.baseline_lean {
                    "transformers + PyTorch (lean)"
                } else {
                    "transformers + PyTorch"
                },
                Run {
                    seconds: b.seconds,
                    sums: b.sums,
                    peak_mem_gb: b.peak_mem_gb,
                },
            ));
        }
        let peak = baseline_info
            .as_ref()
            .and_then(|(_, c)| *c)
            .map_or(ceiling, |c| c.max(ceiling));
        let reference = runs.last().map(|(_, r)| r.seconds).unwrap_or(1.0);
        let rows_per_group = 2.0; // a strong and a weak model of this shape score each prompt
        for (engine, run) in &runs {
            let tflops = flops / run.seconds / 1e12;
            rows.push(format!(
                "| {} | {engine} | {:.1} | {:.0} | {:.3} | {:.2} | {:.1}% | {} | {:.2}x |",
                w.name,
                run.seconds,
                tokens as f64 / run.seconds,
                w.groups.len() as f64 / run.seconds / rows_per_group,
                tflops,
                100.0 * tflops / peak,
                run.peak_mem_gb
                    .map_or("n/a".into(), |g| format!("{g:.2} GiB")),
                reference / run.seconds,
            ));
        }
        let (fast, plain) = (&runs[0].1, &runs[1].1);
        let mut worst = 0f64;
        for (a, b) in fast.sums.iter().zip(&plain.sums) {
            worst = worst.max((a - b).abs());
        }
        let same = decisions(&w, &fast.sums) == decisions(&w, &plain.sums);
        checks.push(format!(
            "{}: prefix sharing vs plain: max |sum diff| {worst:.2e}, best/worst picks identical: {same}",
            w.name
        ));
        if let Some((_, base)) = runs.get(2) {
            let mut worst = 0f64;
            for (a, b) in fast.sums.iter().zip(&base.sums) {
                worst = worst.max((a - b).abs());
            }
            let same = decisions(&w, &fast.sums) == decisions(&w, &base.sums);
            checks.push(format!(
                "{}: cdr vs transformers: max |sum diff| {worst:.2e}, best/worst picks identical: {same}",
                w.name
            ));
        }
    }
    println!(
        "shape `{}`, {}, matmul ceiling {ceiling:.2} TFLOP/s (burn){}",
        o.shape.name,
        o.dtype,
        baseline_info
            .as_ref()
            .map(|(v, c)| format!(
                ", {} (torch {v})",
                c.map_or("n/a".into(), |c| format!("{c:.2} TFLOP/s"))
            ))
            .unwrap_or_default()
    );
    println!();
    println!(
        "| workload | engine | s | tokens/s | pairs/s (2 models) | TFLOP/s | of ceiling | peak mem | speed vs last row |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    println!();
    for c in checks {
        println!("- {c}");
    }
    Ok(())
}
