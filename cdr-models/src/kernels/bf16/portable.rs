//! The micro-kernel in plain Rust, for CPUs without AVX-512: bf16 widened to f32 (exact), each
//! output summed over `k` pair by pair in the packed order (even element, then odd), as the
//! AVX-512 kernel does.

use super::{BLOCK_K, BLOCK_M, HALF, PANEL};

/// # Safety
/// None beyond the slice sizes of [`super::MicroKernel`], which are checked here (a short slice
/// panics); the function is `unsafe` only to share the kernel type.
pub unsafe fn block(a: &[u16], stride: usize, rows: usize, panel: &[u16], c: &mut [f32]) {
    let widen = |v: u16| f32::from_bits(u32::from(v) << 16);
    let blocks = stride / BLOCK_K;
    for r in 0..rows.min(BLOCK_M) {
        let a = &a[r * stride..(r + 1) * stride];
        let mut acc = [0f32; PANEL];
        for b in 0..blocks {
            for pair in 0..BLOCK_K / 2 {
                let (x0, x1) = (
                    widen(a[b * BLOCK_K + 2 * pair]),
                    widen(a[b * BLOCK_K + 2 * pair + 1]),
                );
                for half in 0..2 {
                    let w = &panel[(b * 2 + half) * HALF + pair * 32..][..32];
                    for (col, acc) in acc[half * 16..(half + 1) * 16].iter_mut().enumerate() {
                        *acc += x0 * widen(w[col * 2]);
                        *acc += x1 * widen(w[col * 2 + 1]);
                    }
                }
            }
        }
        c[r * PANEL..(r + 1) * PANEL].copy_from_slice(&acc);
    }
}
