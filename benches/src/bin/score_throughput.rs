//! Scoring throughput of a random-weight model of a real shape: tokens/s of the batched
//! log-prob forward (`score_spans`), printed as a Markdown table.
//!
//! ```text
//! cargo run --release -p cdr-benches --bin score_throughput -- smollm2-135m 1x256 4x256
//! ```
//! Arguments: a shape (`tiny`, `smollm2-135m`, `qwen2.5-0.5b`) then `BATCHxSEQ` workloads;
//! `--dtype f32|bf16`, `--iters N`. The random checkpoint is written once under `.cache/bench/`.

use std::time::Instant;

use cdr_benches::shapes::{Shape, checkpoint};
use cdr_models::{ComputeDtype, LoadOptions, ModelDir, ScoreSpan};

type B = cdr_models::backend::Selected;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shape_name = args.next().unwrap_or_else(|| "tiny".into());
    let shape = Shape::find(&shape_name)?;
    let mut dtype = ComputeDtype::F32;
    let mut iters = 3usize;
    let mut workloads = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dtype" => dtype = args.next().ok_or("--dtype needs a value")?.parse()?,
            "--iters" => iters = args.next().ok_or("--iters needs a value")?.parse()?,
            w => {
                let (b, s) = w
                    .split_once('x')
                    .ok_or(format!("workload {w}: use BATCHxSEQ"))?;
                workloads.push((b.parse::<usize>()?, s.parse::<usize>()?));
            }
        }
    }
    if workloads.is_empty() {
        workloads = vec![(1, 256), (4, 256)];
    }
    let dir = checkpoint(shape)?;
    let device = Default::default();
    let model = ModelDir::new(&dir).load::<B>(&device, LoadOptions { dtype })?;
    println!(
        "shape `{}` ({:.0}M params), dtype {dtype}, backend {}",
        shape.name,
        shape.params() as f64 / 1e6,
        std::any::type_name::<B>()
    );
    println!("| batch x seq | ms / batch | tokens/s |\n|---|---:|---:|");
    let mut state = 1u64;
    for (batch, seq) in workloads {
        let seqs: Vec<Vec<u32>> = (0..batch)
            .map(|_| {
                (0..seq)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 33) % shape.vocab as u64) as u32
                    })
                    .collect()
            })
            .collect();
        // Score the second half of each sequence, as a response after a prompt.
        let spans: Vec<ScoreSpan<'_>> = seqs
            .iter()
            .map(|ids| ScoreSpan {
                ids,
                start: seq / 2,
            })
            .collect();
        model.score_spans(&spans)?; // warm-up (and kernel compilation on GPU backends)
        let start = Instant::now();
        for _ in 0..iters {
            model.score_spans(&spans)?;
        }
        let secs = start.elapsed().as_secs_f64() / iters as f64;
        println!(
            "| {batch} x {seq} | {:.1} | {:.0} |",
            secs * 1e3,
            (batch * seq) as f64 / secs
        );
    }
    Ok(())
}
