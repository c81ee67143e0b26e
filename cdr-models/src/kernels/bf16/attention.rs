//! Causal attention with bf16 inputs on the same micro-kernels as the projections.
//!
//! In a bf16 model the queries, keys and values are bf16 already; widening them to f32 and running
//! f32 products made attention a fifth of a bf16 scoring run. Here both products (`q·kᵀ` and
//! `p·v`) run on the matrix units, the way PyTorch's bf16 attention on the CPU rounds: bf16
//! operands, f32 sums, softmax in f32, the unnormalised probabilities rounded to bf16 for `p·v`,
//! and the division by their f32 sum at the end.
//!
//! A tile stacks the query rows of every head of one key/value group, so each key block is read
//! once per group. That is safe here (it was not with f32 `gemm`, whose blocking depends on the row
//! count) because every output is summed in one fixed order: `q·k` over the head dimension, `p·v`
//! over keys in blocks of [`BLOCK_K`] aligned to the sequence's first key. Masked keys add exact
//! zeros, so a row gets the same bits alone, batched, or after a shared prefix.

use half::bf16;
use rayon::prelude::*;

use super::{BLOCK_K, BLOCK_M, HALF, Isa, PANEL, PackedBf16, Shared, micro_kernel};
use crate::kernels::cpu::{lane_max, lane_sum};
use crate::kernels::vexp::exp_in_place;
use crate::kernels::wide::wide;

/// Shapes of one attention call: `q` is `[batch, q_len, heads, d]`, `k` and `v` are
/// `[batch, kv_len, kv_heads, d]`; query `i` sits at key position `kv_len - q_len + i`.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub batch: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub d: usize,
}

/// Which keys a query sees: `first_key(batch, position)` (causal window, left padding), and the
/// first key of each batch row's sequence (`start(batch)`, its left padding), to which the key
/// blocks of `p·v` are aligned.
pub trait Visibility: Sync {
    fn first_key(&self, batch: usize, position: usize) -> usize;
    fn start(&self, batch: usize) -> usize;
}

/// Query rows per tile (per head of the group).
const QUERY_BLOCK: usize = 64;

/// Scaled dot-product attention (scale `1/sqrt(d)`), the result rounded to bf16, on path `isa`.
pub fn attention(
    isa: Isa,
    g: Geometry,
    (q, k, v): (&[bf16], &[bf16], &[bf16]),
    mask: &impl Visibility,
) -> Vec<bf16> {
    assert!(
        g.kv_heads > 0 && g.heads.is_multiple_of(g.kv_heads) && g.kv_len >= g.q_len,
        "attention: {g:?}"
    );
    assert_eq!(q.len(), g.batch * g.q_len * g.heads * g.d, "attention: q");
    assert_eq!(
        k.len(),
        g.batch * g.kv_len * g.kv_heads * g.d,
        "attention: k"
    );
    assert_eq!(v.len(), k.len(), "attention: v");
    let isa = isa.min(super::detect());
    // Keys as the "weight" of `q·kᵀ` ([keys, d]) and values transposed as the weight of `p·v`
    // ([d, keys]), from each sequence's first key, packed once per (batch row, key/value head).
    let packed: Vec<(PackedBf16, PackedBf16)> = (0..g.batch * g.kv_heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / g.kv_heads, bh % g.kv_heads);
            let s0 = mask.start(b).min(g.kv_len);
            let n = g.kv_len - s0;
            let at = |key: usize| ((b * g.kv_len + s0 + key) * g.kv_heads + h) * g.d;
            let keys = PackedBf16::pack_with(n, g.d, |r, row| {
                for (o, x) in row.iter_mut().zip(&k[at(r)..at(r) + g.d]) {
                    *o = x.to_bits();
                }
            });
            let values = PackedBf16::pack_with(g.d, n, |c, row| {
                for (key, o) in row.iter_mut().enumerate() {
                    *o = v[at(key) + c].to_bits();
                }
            });
            (keys, values)
        })
        .collect();

    let mut out = vec![bf16::ZERO; q.len()];
    let blocks = g.q_len.div_ceil(QUERY_BLOCK);
    // Tiles write disjoint (batch, head, query row) regions of `out`.
    let dst = Shared(out.as_mut_ptr());
    (0..g.batch * g.kv_heads * blocks)
        .into_par_iter()
        .for_each(|tile| {
            let (bh, at) = (tile / blocks, tile % blocks);
            let rows = at * QUERY_BLOCK..((at + 1) * QUERY_BLOCK).min(g.q_len);
            let (keys, values) = &packed[bh];
            TILE.with(|cell| {
                let buffers = &mut *cell.borrow_mut();
                wide(
                    #[inline(always)]
                    || tile_on(isa, &g, mask, (bh, rows), q, (keys, values), buffers, &dst),
                );
            });
        });
    out
}

/// A tile's stacked queries, scores, probabilities (bf16 bits) and the kernel's 32×32 block.
#[derive(Default)]
struct Buffers {
    queries: Vec<u16>,
    scores: Vec<f32>,
    probs: Vec<u16>,
    sums: Vec<f32>,
    block: Vec<f32>,
}

thread_local! {
    static TILE: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// One (batch row, key/value head, query block) tile.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_on(
    isa: Isa,
    g: &Geometry,
    mask: &impl Visibility,
    (bh, rows): (usize, std::ops::Range<usize>),
    q: &[bf16],
    (keys, values): (&PackedBf16, &PackedBf16),
    buf: &mut Buffers,
    out: &Shared<bf16>,
) {
    let (b, kv_head) = (bh / g.kv_heads, bh % g.kv_heads);
    let group = g.heads / g.kv_heads;
    let offset = g.kv_len - g.q_len;
    let s0 = mask.start(b).min(g.kv_len);
    let (first_pos, last_pos) = (offset + rows.start, offset + rows.end - 1);
    // Key blocks [kb0, kb1) relative to the sequence start cover every key a row of the tile sees.
    let kb0 = mask.first_key(b, first_pos).max(s0).saturating_sub(s0) / BLOCK_K;
    let kb1 = (last_pos + 1).saturating_sub(s0).div_ceil(BLOCK_K).max(kb0);
    let first_key = s0 + kb0 * BLOCK_K;
    let n = (kb1 - kb0) * BLOCK_K;
    let m = rows.len();
    let gm = group * m;
    // Row `j * m + r` of the stacked matrices is query row `rows.start + r` of head
    // `kv_head * group + j`.
    let q_at = |i: usize| {
        let (j, r) = (i / m, i % m);
        ((b * g.q_len + rows.start + r) * g.heads + kv_head * group + j) * g.d
    };
    if n == 0 {
        // Every query of the tile sits in left padding and sees no key (the output is zeroed).
        return;
    }
    let padded = gm.div_ceil(BLOCK_M) * BLOCK_M;
    let stride = g.d.div_ceil(BLOCK_K) * BLOCK_K;
    let kernel = micro_kernel(isa);
    #[cfg(target_arch = "x86_64")]
    let _tiles = (isa == Isa::Amx).then(super::x86::TileScope::enter);

    buf.queries.clear();
    buf.queries.resize(padded * stride, 0);
    for i in 0..gm {
        let src = &q[q_at(i)..q_at(i) + g.d];
        for (o, x) in buf.queries[i * stride..].iter_mut().zip(src) {
            *o = x.to_bits();
        }
    }
    buf.block.resize(BLOCK_M * PANEL, 0.0);
    buf.scores.clear();
    buf.scores.resize(gm * n, 0.0);
    let scale = 1.0 / (g.d as f32).sqrt();
    for r0 in (0..gm).step_by(BLOCK_M) {
        let real = BLOCK_M.min(gm - r0);
        let a = &buf.queries[r0 * stride..(r0 + BLOCK_M) * stride];
        for p in kb0..kb1 {
            // SAFETY: `a` is BLOCK_M rows of `stride` values, the key panel has `stride / BLOCK_K`
            // blocks (packed with k = d), `block` is BLOCK_M × PANEL; the kernel is of a detected
            // path (clamped to `detect()`), and AMX runs inside the `TileScope` above.
            unsafe { kernel(a, stride, real, keys.panel(p), &mut buf.block) };
            let col = (p - kb0) * PANEL;
            for r in 0..real {
                let dst = &mut buf.scores[(r0 + r) * n + col..(r0 + r) * n + col + PANEL];
                for (o, s) in dst.iter_mut().zip(&buf.block[r * PANEL..(r + 1) * PANEL]) {
                    *o = s * scale;
                }
            }
        }
    }

    // Softmax numerators in f32, rounded to bf16 for `p·v`; their sums stay f32.
    buf.probs.clear();
    buf.probs.resize(padded * n, 0);
    buf.sums.clear();
    buf.sums.resize(gm, 0.0);
    for i in 0..gm {
        let p = offset + rows.start + i % m;
        let end = (p + 1).saturating_sub(first_key);
        // A query that sees no key (a left-padding position) gets zeros.
        let visible = (mask.first_key(b, p).max(first_key) - first_key).min(end)..end;
        let row = &mut buf.scores[i * n..(i + 1) * n];
        let seen = &mut row[visible.clone()];
        let max = lane_max(seen);
        seen.iter_mut().for_each(|s| *s -= max);
        exp_in_place(seen);
        buf.sums[i] = lane_sum(seen);
        let probs = &mut buf.probs[i * n..(i + 1) * n];
        for (o, &e) in probs[visible.clone()].iter_mut().zip(seen.iter()) {
            *o = bf16::from_f32(e).to_bits();
        }
    }

    let value_blocks = (kb0 * 2 * HALF)..(kb1 * 2 * HALF);
    for r0 in (0..gm).step_by(BLOCK_M) {
        let real = BLOCK_M.min(gm - r0);
        let a = &buf.probs[r0 * n..(r0 + BLOCK_M) * n];
        for p in 0..g.d.div_ceil(PANEL) {
            let panel = &values.panel(p)[value_blocks.clone()];
            // SAFETY: `a` is BLOCK_M rows of `n` values; the value panel slice holds exactly
            // `n / BLOCK_K` blocks; otherwise as above.
            unsafe { kernel(a, n, real, panel, &mut buf.block) };
            let cols = PANEL.min(g.d - p * PANEL);
            for r in 0..real {
                let sum = buf.sums[r0 + r];
                let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                let src = &buf.block[r * PANEL..r * PANEL + cols];
                let dst = q_at(r0 + r) + p * PANEL;
                for (c, &s) in src.iter().enumerate() {
                    // SAFETY: the element lies inside `out` (same index space as `q`), in a row
                    // only this tile writes.
                    unsafe { *out.0.add(dst + c) = bf16::from_f32(s * inv) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    use super::*;

    struct Mask {
        window: Option<usize>,
        pad: Vec<usize>,
    }

    impl Visibility for Mask {
        fn first_key(&self, batch: usize, p: usize) -> usize {
            let w = self.window.map_or(0, |w| (p + 1).saturating_sub(w));
            w.max(self.start(batch))
        }
        fn start(&self, batch: usize) -> usize {
            self.pad.get(batch).copied().unwrap_or(0)
        }
    }

    fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<bf16> {
        (0..len)
            .map(|_| bf16::from_f32((rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 4.0))
            .collect()
    }

    /// Exact (f64) attention of the same bf16 inputs.
    fn reference(g: &Geometry, q: &[bf16], k: &[bf16], v: &[bf16], mask: &Mask) -> Vec<f64> {
        let f = |x: bf16| f64::from(x.to_f32());
        let mut out = vec![0f64; q.len()];
        let group = g.heads / g.kv_heads;
        for b in 0..g.batch {
            for h in 0..g.heads {
                let kvh = h / group;
                for i in 0..g.q_len {
                    let p = g.kv_len - g.q_len + i;
                    let qa = ((b * g.q_len + i) * g.heads + h) * g.d;
                    let keys = mask.first_key(b, p)..p + 1;
                    let at = |j: usize| ((b * g.kv_len + j) * g.kv_heads + kvh) * g.d;
                    let s: Vec<f64> = keys
                        .clone()
                        .map(|j| {
                            (0..g.d)
                                .map(|c| f(q[qa + c]) * f(k[at(j) + c]))
                                .sum::<f64>()
                                / (g.d as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    // A left-padding query sees nothing: zeros.
                    let sum: f64 = e.iter().sum::<f64>().max(f64::MIN_POSITIVE);
                    for c in 0..g.d {
                        out[qa + c] = keys
                            .clone()
                            .zip(&e)
                            .map(|(j, w)| w * f(v[at(j) + c]))
                            .sum::<f64>()
                            / sum;
                    }
                }
            }
        }
        out
    }

    fn inputs(g: &Geometry, seed: u64) -> (Vec<bf16>, Vec<bf16>, Vec<bf16>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let kv = g.batch * g.kv_len * g.kv_heads * g.d;
        (
            random(g.batch * g.q_len * g.heads * g.d, &mut rng),
            random(kv, &mut rng),
            random(kv, &mut rng),
        )
    }

    #[test]
    fn every_path_matches_exact_attention() {
        // Ragged lengths, query groups, a key cache longer than the queries, a window, padding,
        // head dimensions that are not whole blocks.
        let cases = [
            (
                Geometry {
                    batch: 1,
                    q_len: 5,
                    kv_len: 5,
                    heads: 2,
                    kv_heads: 2,
                    d: 32,
                },
                None,
                vec![],
            ),
            (
                Geometry {
                    batch: 2,
                    q_len: 70,
                    kv_len: 70,
                    heads: 6,
                    kv_heads: 2,
                    d: 64,
                },
                None,
                vec![0, 9],
            ),
            (
                Geometry {
                    batch: 1,
                    q_len: 40,
                    kv_len: 130,
                    heads: 4,
                    kv_heads: 1,
                    d: 40,
                },
                Some(50),
                vec![],
            ),
            (
                Geometry {
                    batch: 2,
                    q_len: 1,
                    kv_len: 77,
                    heads: 7,
                    kv_heads: 1,
                    d: 64,
                },
                None,
                vec![3, 0],
            ),
        ];
        for (n, (g, window, pad)) in cases.into_iter().enumerate() {
            let (q, k, v) = inputs(&g, n as u64);
            let mask = Mask { window, pad };
            let exact = reference(&g, &q, &k, &v, &mask);
            for isa in Isa::available() {
                let got = attention(isa, g, (&q, &k, &v), &mask);
                let worst = got
                    .iter()
                    .zip(&exact)
                    .map(|(&x, &e)| (f64::from(x.to_f32()) - e).abs())
                    .fold(0f64, f64::max);
                // Probabilities and the output are rounded to bf16 (2^-8 relative), values are
                // at most 2 in magnitude.
                assert!(
                    worst < 2.0 * 2f64.powi(-7),
                    "{isa} on {g:?}: max error {worst:e}"
                );
            }
        }
    }

    #[test]
    fn a_query_gets_the_same_bits_alone_after_a_prefix_or_left_padded() {
        let (heads, kv_heads, d, len) = (4, 2, 64, 90);
        let whole = Geometry {
            batch: 1,
            q_len: len,
            kv_len: len,
            heads,
            kv_heads,
            d,
        };
        let (q, k, v) = inputs(&whole, 7);
        let none = Mask {
            window: None,
            pad: vec![],
        };
        for isa in Isa::available() {
            let all = attention(isa, whole, (&q, &k, &v), &none);
            // The last 23 queries after the cached first 67 keys.
            let tail = 23;
            let cont = Geometry {
                q_len: tail,
                ..whole
            };
            let q_tail = &q[(len - tail) * heads * d..];
            let got = attention(isa, cont, (q_tail, &k, &v), &none);
            assert_eq!(
                got,
                all[(len - tail) * heads * d..],
                "{isa}: after a prefix"
            );
            // The last query alone, its keys left-padded by 11 in a longer batch row.
            let pad = 11;
            let padded = Geometry {
                q_len: 1,
                kv_len: len + pad,
                ..whole
            };
            let mut kp = random(pad * kv_heads * d, &mut ChaCha8Rng::seed_from_u64(9));
            let mut vp = kp.clone();
            kp.extend_from_slice(&k);
            vp.extend_from_slice(&v);
            let mask = Mask {
                window: None,
                pad: vec![pad],
            };
            let got = attention(isa, padded, (&q[(len - 1) * heads * d..], &kp, &vp), &mask);
            assert_eq!(got, all[(len - 1) * heads * d..], "{isa}: left-padded");
        }
    }
}
