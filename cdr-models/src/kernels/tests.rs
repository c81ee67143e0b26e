//! The fast paths against the composed burn ops (flex's own attention) on random inputs.

use burn::tensor::{DType, Distribution, Tensor};

use super::{CausalMask, cpu, generic};
use crate::backend::Cpu;
use crate::rope::RopeTables;

fn random(shape: [usize; 4], dtype: DType) -> Tensor<Cpu, 4> {
    Tensor::<Cpu, 4>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default()).cast(dtype)
}

fn max_diff(a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>) -> f32 {
    (a.cast(DType::F32) - b.cast(DType::F32))
        .abs()
        .max()
        .into_scalar()
}

/// Largest `|a - b| / (1 + |b|)`: half-precision rounding grows with magnitude (a bf16 step is 1/128
/// of the value), so random normal inputs need a relative bound.
fn max_rel_diff(a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>) -> f32 {
    let b = b.cast(DType::F32);
    ((a.cast(DType::F32) - b.clone()).abs() / (b.abs() + 1.0))
        .max()
        .into_scalar()
}

#[test]
fn attention_matches_composed_ops() {
    // (batch, q_len, kv_len, heads, kv_heads, head_dim, window)
    let cases = [
        (2, 70, 70, 6, 2, 16, None),
        (3, 130, 130, 4, 4, 8, Some(20)),
        (2, 5, 70, 6, 3, 16, None),
        (1, 9, 200, 2, 1, 32, Some(64)),
        (2, 1, 1, 2, 1, 4, None),
    ];
    for (b, q_len, kv_len, heads, kv_heads, d, window) in cases {
        let q = random([b, q_len, heads, d], DType::F32);
        let k = random([b, kv_len, kv_heads, d], DType::F32);
        let v = random([b, kv_len, kv_heads, d], DType::F32);
        let mask = CausalMask { window, pad: &[] };
        let fast = cpu::attention(&q, &k, &v, mask).expect("the flex fast path applies");
        assert_eq!(fast.dims(), [b, q_len, heads, d]);
        let reference = generic::attention(q, k, v, mask);
        let diff = max_diff(fast, reference);
        println!(
            "attention b{b} q{q_len} kv{kv_len} h{heads}/{kv_heads} d{d} w{window:?}: {diff:.2e}"
        );
        assert!(diff <= 1e-5, "max |diff| {diff}");
    }
}

/// (batch, q_len, kv_len, heads, kv_heads, head_dim, window, pad)
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    Option<usize>,
    &'static [usize],
);

/// The composed attention, in query blocks of every size down to one, against burn's own attention
/// op (flex) with an explicit mask: causal, windowed, rectangular (a query block after cached keys)
/// and left-padded rows.
#[test]
fn blocked_attention_matches_burn_sdpa() {
    use burn::tensor::{Bool, TensorData, module::attention as sdpa, ops::AttentionModuleOptions};
    // (batch, q_len, kv_len, heads, kv_heads, head_dim, window, pad)
    let cases: [Case; 4] = [
        (2, 37, 37, 4, 2, 8, None, &[]),
        (2, 37, 37, 4, 4, 8, Some(6), &[]),
        (3, 7, 50, 6, 2, 16, Some(20), &[]),
        (3, 19, 19, 2, 1, 8, None, &[0, 4, 11]),
    ];
    for (b, q_len, kv_len, heads, kv_heads, d, window, pad) in cases {
        let q = random([b, q_len, heads, d], DType::F32);
        let k = random([b, kv_len, kv_heads, d], DType::F32);
        let v = random([b, kv_len, kv_heads, d], DType::F32);
        let mask = CausalMask { window, pad };
        let offset = kv_len - q_len;
        let mut hidden = vec![false; b * q_len * kv_len];
        for r in 0..b {
            for i in 0..q_len {
                let p = offset + i;
                let first = mask.first_key(r, p);
                for j in 0..kv_len {
                    hidden[(r * q_len + i) * kv_len + j] = j < first || j > p;
                }
            }
        }
        let explicit = Tensor::<Cpu, 3, Bool>::from_data(
            TensorData::new(hidden, [b, q_len, kv_len]),
            &Default::default(),
        )
        .unsqueeze_dim::<4>(1)
        .expand([b, heads, q_len, kv_len]);
        let group = heads / kv_heads;
        let repeat = |x: Tensor<Cpu, 4>| {
            x.swap_dims(1, 2)
                .unsqueeze_dim::<5>(2)
                .expand([b, kv_heads, group, kv_len, d])
                .reshape([b, heads, kv_len, d])
        };
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: false,
        };
        let reference = sdpa(
            q.clone().swap_dims(1, 2),
            repeat(k.clone()),
            repeat(v.clone()),
            Some(explicit),
            None,
            options,
        )
        .swap_dims(1, 2);
        // The scores of one query: a row per head over the keys padded to KEY_ALIGN.
        let per_query = b * heads * kv_len.next_multiple_of(generic::KEY_ALIGN) * 4;
        for queries_per_block in [q_len, 5, 1] {
            let got = generic::attention_in_blocks(
                q.clone(),
                k.clone(),
                v.clone(),
                mask,
                per_query * queries_per_block,
            );
            // Rows that see no key at all (queries inside a row's left padding) are undefined:
            // compare real positions only.
            let mut worst = 0f32;
            for r in 0..b {
                let p = pad.get(r).copied().unwrap_or(0);
                let diff = max_diff(
                    got.clone().slice([r..r + 1, p..q_len]),
                    reference.clone().slice([r..r + 1, p..q_len]),
                );
                worst = worst.max(diff);
            }
            assert!(
                worst <= 1e-5,
                "b{b} q{q_len} kv{kv_len} w{window:?} pad{pad:?} block {queries_per_block}: {worst:e}"
            );
            assert!(!got.contains_nan().into_scalar(), "NaN in padded rows");
        }
    }
}

#[test]
fn attention_keeps_half_precision_dtypes() {
    for dtype in [DType::BF16, DType::F16] {
        let (q, k, v) = (
            random([2, 40, 4, 16], dtype),
            random([2, 40, 2, 16], dtype),
            random([2, 40, 2, 16], dtype),
        );
        let mask = CausalMask {
            window: Some(8),
            pad: &[],
        };
        let fast = cpu::attention(&q, &k, &v, mask).expect("the flex fast path applies");
        assert_eq!(fast.dtype(), dtype);
        let reference = generic::attention(q, k, v, mask);
        let diff = max_rel_diff(fast, reference);
        assert!(diff <= 3e-2, "{dtype:?}: max relative diff {diff}");
    }
}

#[test]
fn rotary_matches_composed_ops() {
    let inv_freq: Vec<f32> = (0..8)
        .map(|i| 1.0 / 10000f32.powf(i as f32 / 8.0))
        .collect();
    for (start, dtype) in [(0, DType::F32), (37, DType::F32), (5, DType::BF16)] {
        let x = random([2, 33, 3, 16], dtype);
        let rope = RopeTables::<Cpu>::new(&inv_freq, start, 33, dtype, &Default::default());
        let fast = cpu::rotary(&x, &rope).expect("the flex fast path applies");
        assert_eq!(fast.dtype(), dtype);
        let reference = generic::rotary(x, &rope);
        let (diff, bound) = if dtype == DType::F32 {
            (max_diff(fast, reference), 1e-6)
        } else {
            // The composed ops round each product and the sum to bf16; the kernel rounds once.
            (max_rel_diff(fast, reference), 3e-2)
        };
        assert!(diff <= bound, "start {start} {dtype:?}: max |diff| {diff}");
    }
}

#[test]
fn few_row_linear_matches_matmul() {
    for (rows, k, n) in [(1, 64, 600), (4, 96, 1024), (64, 32, 513)] {
        let x = Tensor::<Cpu, 2>::random(
            [rows, k],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        );
        let w =
            Tensor::<Cpu, 2>::random([n, k], Distribution::Normal(0.0, 1.0), &Default::default());
        let fast = cpu::linear(&x, &w).expect("the flex fast path applies");
        let reference = x.matmul(w.transpose());
        let diff: f32 = (fast - reference).abs().max().into_scalar();
        assert!(diff <= 1e-4, "{rows}x{k}x{n}: {diff}");
    }
    let many = Tensor::<Cpu, 2>::zeros([65, 8], &Default::default());
    let w = Tensor::<Cpu, 2>::zeros([600, 8], &Default::default());
    assert!(
        cpu::linear(&many, &w).is_none(),
        "many rows go to gemm's own threading"
    );
}

/// The decoding product gives a row the same bits whatever rows come with it (gemm does not), and
/// agrees with a plain matmul to rounding.
#[test]
fn row_stable_linear_is_independent_of_the_batch() {
    use burn::tensor::{Int, TensorData};
    let dev = Default::default();
    // Odd sizes: a remainder after the 16-lane chunks, a short last column quad and block.
    for (k, n) in [(576usize, 1539usize), (1536, 576), (37, 600)] {
        let w = Tensor::<Cpu, 2>::random([n, k], Distribution::Normal(0.0, 1.0), &dev);
        let x = Tensor::<Cpu, 2>::random([64, k], Distribution::Normal(0.0, 1.0), &dev);
        let row =
            |t: Tensor<Cpu, 2>, r: usize| t.narrow(0, r, 1).into_data().to_vec::<f32>().unwrap();
        let alone = row(
            cpu::linear_row_stable(&x.clone().narrow(0, 0, 1), &w).unwrap(),
            0,
        );
        for rows in [2usize, 4, 5, 7, 32, 64] {
            let many = cpu::linear_row_stable(&x.clone().narrow(0, 0, rows), &w).unwrap();
            assert_eq!(row(many, 0), alone, "k {k} n {n}: row 0 of {rows}");
        }
        // Past 64 rows the scope splits the batch into groups; a row still gets its bits.
        let big = Tensor::<Cpu, 2>::cat(vec![x.clone(), x.clone(), x.clone().narrow(0, 0, 3)], 0);
        let grouped =
            super::row_stable_scope(|| super::linear(big, &super::Weight::new(w.clone())));
        assert_eq!(row(grouped.clone(), 0), alone, "k {k} n {n}: 131 rows");
        assert_eq!(row(grouped, 128), alone, "k {k} n {n}: row 128 of 131");
        assert!(!super::row_stable(), "the scope restores the setting");
        // The same row at another position of the batch.
        let mut idx: Vec<i64> = (0..9).collect();
        idx[6] = 0;
        let moved = x.clone().select(
            0,
            Tensor::<Cpu, 1, Int>::from_data(TensorData::new(idx, [9]), &dev),
        );
        assert_eq!(row(cpu::linear_row_stable(&moved, &w).unwrap(), 6), alone);
        let reference = row(x.clone().narrow(0, 0, 1).matmul(w.clone().transpose()), 0);
        let worst = alone
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0f32, f32::max);
        // Sums of up to 1,536 products of normal numbers, rounded in another order.
        assert!(worst < 1e-4, "k {k} n {n}: {worst}");
    }
}
