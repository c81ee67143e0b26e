//! Every path this CPU can run against an f64 reference of the same bf16 inputs, on shapes with
//! ragged edges (rows, columns and `k` not multiples of the blocks).

use half::bf16;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::*;

fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<bf16> {
    (0..len)
        .map(|_| bf16::from_f32((rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 4.0))
        .collect()
}

/// The exact sums (f64) and, per output, the sum of absolute products (the scale of rounding).
fn reference(x: &[bf16], w: &[bf16], m: usize, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut exact = vec![0f64; m * n];
    let mut scale = vec![0f64; m * n];
    for r in 0..m {
        for c in 0..n {
            for i in 0..k {
                let p = f64::from(x[r * k + i].to_f32()) * f64::from(w[c * k + i].to_f32());
                exact[r * n + c] += p;
                scale[r * n + c] += p.abs();
            }
        }
    }
    (exact, scale)
}

const SHAPES: [(usize, usize, usize); 6] = [
    (1, 32, 32),
    (3, 45, 70),
    (33, 64, 96),
    (70, 100, 33),
    (64, 96, 896),
    (5, 33, 1000),
];

#[test]
fn every_path_matches_the_exact_sums() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (m, n, k) in SHAPES {
        let (x, w) = (random(m * k, &mut rng), random(n * k, &mut rng));
        let packed = PackedBf16::pack(&w, n, k);
        let (exact, scale) = reference(&x, &w, m, n, k);
        for isa in Isa::available() {
            let got = matmul_f32_on(isa, &x, m, &packed);
            let worst = got
                .iter()
                .zip(exact.iter().zip(&scale))
                .map(|(&g, (&e, &s))| (f64::from(g) - e).abs() / s.max(1e-30))
                .fold(0f64, f64::max);
            // f32 accumulation over k products: a few ulps of the absolute sum.
            assert!(
                worst < 1e-6 * (k as f64).sqrt().max(4.0),
                "{isa} on {m}x{n}x{k}: relative error {worst:e}"
            );
        }
    }
}

#[test]
fn a_row_gets_the_same_bits_alone_or_in_any_batch() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (n, k) = (70, 200);
    let w = PackedBf16::pack(&random(n * k, &mut rng), n, k);
    let x = random(50 * k, &mut rng);
    for isa in Isa::available() {
        let all = matmul_f32_on(isa, &x, 50, &w);
        for (r, len) in [(0, 1), (17, 1), (31, 3), (40, 10)] {
            let part = matmul_f32_on(isa, &x[r * k..(r + len) * k], len, &w);
            assert_eq!(
                part,
                all[r * n..(r + len) * n],
                "{isa}: rows {r}..{}",
                r + len
            );
        }
    }
}

#[test]
fn packing_round_trips() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (n, k) in [(1, 1), (33, 45), (64, 64)] {
        let w = random(n * k, &mut rng);
        assert_eq!(PackedBf16::pack(&w, n, k).unpack(), w);
        let f: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
        assert_eq!(PackedBf16::pack_f32(&f, n, k).unpack(), w);
    }
}

#[test]
fn the_rounded_product_is_the_rounded_sums() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (m, n, k) = (9, 40, 64);
    let (x, w) = (random(m * k, &mut rng), random(n * k, &mut rng));
    let packed = PackedBf16::pack(&w, n, k);
    let sums = matmul_f32_on(isa(), &x, m, &packed);
    let rounded: Vec<bf16> = sums.into_iter().map(bf16::from_f32).collect();
    assert_eq!(matmul(&x, m, &packed), rounded);
}

#[test]
fn forcing_names_parse() {
    assert_eq!(Isa::parse("AMX"), Some(Isa::Amx));
    assert_eq!(Isa::parse("avx512_bf16"), Some(Isa::Avx512Bf16));
    assert_eq!(Isa::parse("avx512"), Some(Isa::Avx512));
    assert_eq!(Isa::parse("portable"), Some(Isa::Portable));
    assert_eq!(Isa::parse("sse"), None);
    assert!(Isa::available().contains(&Isa::Portable));
}
