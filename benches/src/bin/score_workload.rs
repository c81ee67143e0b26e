//! Scoring throughput on realistic workloads — cdr and transformers + PyTorch on the same token ids,
//! the same weights and the same machine, in one run — printed as a Markdown table.
//!
//! ```text
//! cargo run --release -p cdr-benches --bin score_workload -- --shape smollm2-135m \
//!     --workload pairwise:8 --workload best-of-8:2 --baseline /path/to/python
//! ```
//! Options: `--shape NAME` (random weights of a real shape) or `--model PATH` (a real model: a
//! Hugging Face directory or a GGUF file), `--workload KIND:PROMPTS` (repeatable; KIND is `pairwise`
//! or `best-of-N`), `--dtype f32|bf16`, `--max-batch-tokens N` (cdr's budget, default 8192 as in the
//! CLI), `--baseline PYTHON` (runs `benches/torch_baseline.py` with it), `--baseline-dtype
//! f32|bf16|best` (default `best`: bf16 where PyTorch has fast bf16 products — AMX CPUs, GPUs —
//! else f32), `--baseline-batch N` (sequences per padded batch in the baseline, default 8), the
//! baseline is the tuned script (vocabulary projected only at response positions, as cdr does;
//! `--baseline-full` for the typical script that projects everywhere), `--llama-cpp PYTHON` (with
//! `--model` on a GGUF file: runs `benches/llama_cpp_baseline.py`, llama.cpp with prefix reuse, on the
//! same token ids; `tools/llama_cpp.sh` builds it), `--device cpu|cuda` (for the baseline),
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

// The allocator the `cdr` binary uses, so the table measures what users run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

type B = cdr_models::backend::Selected;
type Error = Box<dyn std::error::Error>;

struct Options {
    shape: &'static Shape,
    model: Option<PathBuf>,
    llama_cpp: Option<String>,
    baseline_dtype: String,
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
        model: None,
        llama_cpp: None,
        baseline_dtype: "best".into(),
        workloads: Vec::new(),
        dtype: ComputeDtype::F32,
        max_batch_tokens: 8192,
        baseline: None,
        baseline_batch: 8,
        baseline_lean: true,
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
            "--baseline-full" => o.baseline_lean = false,
            "--baseline-dtype" => o.baseline_dtype = value()?,
            "--model" => o.model = Some(PathBuf::from(value()?)),
            "--llama-cpp" => o.llama_cpp = Some(value()?),
            "--device" => o.device = value()?,
            "--seed" => o.seed = value()?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if o.workloads.is_empty() {
        o.workloads = vec![(Kind::Pairwise, 8), (Kind::BestOfN(8), 2)];
    }
    if let Some(path) = &o.model {
        let config = ModelDir::new(path).config()?;
        // Leaked once: the shape table holds `&'static` shapes and this process describes one model.
        let name: &'static str = Box::leak(
            path.file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned())
                .into_boxed_str(),
        );
        o.shape = Box::leak(Box::new(Shape {
            name,
            vocab: config.vocab_size,
            hidden: config.hidden_size,
            inter: config.intermediate_size,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            kv_heads: config.num_kv_heads(),
            tied: config.tie_word_embeddings(),
        }));
    }
    if o.baseline_dtype == "best" {
        o.baseline_dtype = best_torch_dtype(&o.device).into();
    }
    Ok(o)
}

/// The dtype PyTorch is fastest in: bf16 on GPUs and on CPUs with AMX (oneDNN's bf16 kernels run
/// there at 4-7x its f32), f32 on other CPUs (without AMX its bf16 products are slower than f32).
fn best_torch_dtype(device: &str) -> &'static str {
    let amx = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains(" amx_bf16"));
    if device != "cpu" || amx {
        "bf16"
    } else {
        "f32"
    }
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

/// The threads cdr computes on (rayon's pool), handed to the llama.cpp baseline.
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Dense matmul TFLOP/s of this backend in the compute dtype (square 8192 on CUDA, 2048 elsewhere:
/// wgpu devices cap a buffer at 256 MiB by default). On the CPU in bf16, cdr's packed products
/// (what its projections run on) instead of burn's matmul.
fn matmul_ceiling(dtype: ComputeDtype) -> f64 {
    #[cfg(all(feature = "cpu", not(feature = "cuda"), not(feature = "wgpu")))]
    if dtype == ComputeDtype::BF16 {
        use cdr_models::kernels::bf16::{PackedBf16, isa, matmul};
        let n = 2048;
        let values: Vec<half::bf16> = (0..n * n)
            .map(|i| half::bf16::from_f32((i % 7) as f32 * 0.25 - 0.75))
            .collect();
        let w = PackedBf16::pack(&values, n, n);
        let _ = matmul(&values, n, &w);
        let t = Instant::now();
        for _ in 0..3 {
            std::hint::black_box(matmul(&values, n, &w));
        }
        let _ = isa();
        return 3.0 * 2.0 * (n as f64).powi(3) / t.elapsed().as_secs_f64() / 1e12;
    }
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
    // SAFETY: before any other thread exists; as `cdr` does (cdr-cli/src/main.rs says why).
    unsafe { libmimalloc_sys::mi_option_set(5, 0) };
    let o = parse()?;
    let dir = match &o.model {
        Some(path) => path.clone(),
        None => checkpoint(o.shape)?,
    };
    let model =
        ModelDir::new(&dir).load::<B>(&Default::default(), LoadOptions { dtype: o.dtype })?;
    let ceiling = matmul_ceiling(o.dtype);
    eprintln!(
        "shape {} ({:.2}B params), dtype {}, backend {}, products: {}, matmul {ceiling:.2} TFLOP/s",
        o.shape.name,
        o.shape.params() as f64 / 1e9,
        o.dtype,
        std::any::type_name::<B>(),
        model.kernel(),
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
                .args(["--dtype", &o.baseline_dtype, "--device", &o.device])
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
                Box::leak(
                    format!(
                        "transformers + PyTorch {}{}",
                        o.baseline_dtype,
                        if o.baseline_lean { " (lean)" } else { "" }
                    )
                    .into_boxed_str(),
                ),
                Run {
                    seconds: b.seconds,
                    sums: b.sums,
                    peak_mem_gb: b.peak_mem_gb,
                },
            ));
        }
        if let (Some(python), Some(model_path)) = (&o.llama_cpp, &o.model) {
            let out = Command::new(python)
                .arg("benches/llama_cpp_baseline.py")
                .arg("--model")
                .arg(model_path)
                .arg("--workload")
                .arg(&path)
                .args(["--threads", &rayon_threads().to_string()])
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "llama.cpp baseline failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout
                .lines()
                .last()
                .ok_or("llama.cpp baseline printed nothing")?;
            let b: BaselineOut = serde_json::from_str(line)?;
            runs.push((
                Box::leak(b.torch.into_boxed_str()),
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
                "{}: cdr vs {}: max |sum diff| {worst:.2e}, best/worst picks identical: {same}",
                w.name, runs[2].0
            ));
        }
    }
    println!(
        "shape `{}`, {}, products: {}, matmul ceiling {ceiling:.2} TFLOP/s (cdr){}",
        o.shape.name,
        o.dtype,
        model.kernel(),
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
