//! Element-wise loops compiled for AVX-512 where the CPU has it.
//!
//! The crate is built for baseline x86-64, so the loops around the matrix products (bf16 rounding of
//! every product output, RMSNorm, SwiGLU, the attention tile's conversions) vectorized to 4-lane
//! SSE: rounding f32 to bf16 alone was 15% of a bf16 scoring run. Running the same code inside a
//! function compiled with AVX-512 enabled lets the compiler use 16 lanes. The arithmetic is the
//! same IEEE operations in the same order (no fused multiply-adds are formed), so results are
//! bit-identical; `CDR_CPU_KERNEL=portable` keeps the baseline code, so CI covers both.

/// Runs `f`, inlined into a body compiled for AVX-512 when the chosen CPU path has it. Mark the
/// closure `#[inline(always)]` so its body (and what it calls inline) is compiled there.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if super::bf16::isa() >= super::bf16::Isa::Avx512 {
        // SAFETY: the chosen path is clamped to what the CPU has (`bf16::isa`), and every path
        // from Avx512 up requires avx512f, avx512bw, avx512dq and avx512vl at detection.
        return unsafe { avx512(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}
