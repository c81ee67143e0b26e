//! The bf16 matrix products of `cdr_models::kernels::bf16` on the projection shapes of real models,
//! per kernel path this CPU can run, beside burn flex's bf16 and f32 matmul; a Markdown table.
//!
//! ```text
//! cargo run --release -p cdr-benches --bin gemm_bf16 -- [--rows 512] [--shape qwen2.5-0.5b]...
//!     [--path amx] [--no-flex]
//! ```
//! Compare with PyTorch (oneDNN) on the same shapes: `python benches/torch_gemm.py --rows 512`.

use std::time::Instant;

use burn::tensor::{DType, Distribution, Tensor};
use cdr_models::backend::Cpu;
use cdr_models::kernels::bf16::{Isa, PackedBf16, matmul_f32_on};
use half::bf16;

type Error = Box<dyn std::error::Error>;

/// (model, projection, n, k): the four products of a layer, fused or not as cdr runs them.
const SHAPES: &[(&str, &str, usize, usize)] = &[
    ("qwen2.5-0.5b", "q", 896, 896),
    ("qwen2.5-0.5b", "gate/up", 4864, 896),
    ("qwen2.5-0.5b", "down", 896, 4864),
    ("qwen2.5-1.5b", "q", 1536, 1536),
    ("qwen2.5-1.5b", "gate/up", 8960, 1536),
    ("qwen2.5-1.5b", "down", 1536, 8960),
];

fn seconds(mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() -> Result<(), Error> {
    let mut rows = 512;
    let mut only: Vec<String> = Vec::new();
    let mut paths = Isa::available();
    let mut flex = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rows" => rows = value()?.parse()?,
            "--shape" => only.push(value()?),
            "--path" => {
                let v = value()?;
                paths.retain(|p| p.name() == v);
            }
            "--no-flex" => flex = false,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let device = Default::default();
    print!("| model | product | m x n x k |");
    for p in &paths {
        print!(" {p} GFLOP/s |");
    }
    println!(" flex bf16 | flex f32 |");
    print!("|---|---|---|");
    for _ in 0..paths.len() + 2 {
        print!("---:|");
    }
    println!();
    for &(model, name, n, k) in SHAPES {
        if !only.is_empty() && !only.iter().any(|o| o == model) {
            continue;
        }
        let flops = 2.0 * (rows * n * k) as f64 / 1e9;
        let x: Tensor<Cpu, 2> = Tensor::random([rows, k], Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<Cpu, 2> = Tensor::random([n, k], Distribution::Normal(0.0, 1.0), &device);
        let xb = x.clone().cast(DType::BF16);
        let wb = w.clone().cast(DType::BF16);
        let xv: Vec<bf16> = xb.to_data().to_vec()?;
        let wv: Vec<bf16> = wb.to_data().to_vec()?;
        let packed = PackedBf16::pack(&wv, n, k);
        print!("| {model} | {name} | {rows} x {n} x {k} |");
        for &p in &paths {
            let s = seconds(|| {
                std::hint::black_box(matmul_f32_on(p, &xv, rows, &packed));
            });
            print!(" {:.0} |", flops / s);
        }
        if !flex {
            println!(" - | - |");
            continue;
        }
        let s = seconds(|| {
            std::hint::black_box(xb.clone().matmul(wb.clone().transpose()).into_data());
        });
        print!(" {:.0} |", flops / s);
        let s = seconds(|| {
            std::hint::black_box(x.clone().matmul(w.clone().transpose()).into_data());
        });
        println!(" {:.0} |", flops / s);
    }
    Ok(())
}
