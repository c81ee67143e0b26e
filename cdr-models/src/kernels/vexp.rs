//! `exp` over f32 slices, 16 lanes at a time on AVX-512: the softmaxes, SiLU and the vocabulary
//! log-sum-exp call it hundreds of millions of times per scoring run, and libm's scalar `expf` was
//! the largest single cost after the matrix products. std has no vector `exp`, and a math crate
//! for one function is more than this needs.
//!
//! Range reduction `x = n ln2 + r` (`|r| <= ln2 / 2`, ln2 split in two for an exact `n ln2`), the
//! Taylor polynomial of degree 7 for `e^r` (truncation error `r^8 / 8! < 6e-9`, below an f32 ulp),
//! and `2^n` applied with `vscalefps`, which also covers overflow and gradual underflow. Results
//! are within about one ulp of the correctly rounded value.

/// `x[i] = exp(x[i])` in place.
pub fn exp_in_place(x: &mut [f32]) {
    // The AVX-512 body unless a lower path is forced (`CDR_CPU_KERNEL=portable` covers this
    // fallback on any CPU).
    #[cfg(target_arch = "x86_64")]
    if super::bf16::isa() >= super::bf16::Isa::Avx512 && std::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was just detected.
        unsafe { x86::exp_avx512(x) };
        return;
    }
    for v in x {
        *v = v.exp();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_avx512(x: &mut [f32]) {
        let mut at = 0;
        while at < x.len() {
            let left = x.len() - at;
            let mask: __mmask16 = if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            // SAFETY: the mask keeps every lane inside `x`.
            let v = unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr().add(at)) };
            let e = exp16(v);
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(x.as_mut_ptr().add(at), mask, e) };
            at += 16;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub fn exp16(x: __m512) -> __m512 {
        // Below -104 the result is 0 in f32 anyway; clamping keeps the reduction finite (-inf in).
        let x = _mm512_max_ps(x, _mm512_set1_ps(-104.0));
        let x = _mm512_min_ps(x, _mm512_set1_ps(89.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let c = |v: f32| _mm512_set1_ps(v);
        let mut p = c(1.0 / 5040.0);
        p = _mm512_fmadd_ps(p, r, c(1.0 / 720.0));
        p = _mm512_fmadd_ps(p, r, c(1.0 / 120.0));
        p = _mm512_fmadd_ps(p, r, c(1.0 / 24.0));
        p = _mm512_fmadd_ps(p, r, c(1.0 / 6.0));
        p = _mm512_fmadd_ps(p, r, c(0.5));
        p = _mm512_fmadd_ps(p, r, c(1.0));
        p = _mm512_fmadd_ps(p, r, c(1.0));
        _mm512_scalef_ps(p, n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_f64_exp_within_two_ulps() {
        let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.0437).collect();
        xs.extend([
            0.0,
            -0.0,
            1e-8,
            -1e-8,
            88.5,
            -87.0,
            -100.0,
            -1e4,
            f32::NEG_INFINITY,
        ]);
        let mut got = xs.clone();
        super::exp_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = f64::from(x).exp();
            if want < f64::from(f32::MIN_POSITIVE) {
                assert!(
                    f64::from(g) < 2.0 * f64::from(f32::MIN_POSITIVE),
                    "exp({x}) = {g}"
                );
                continue;
            }
            let ulp = f64::from(f32::EPSILON) * want;
            assert!(
                (f64::from(g) - want).abs() <= 2.0 * ulp,
                "exp({x}) = {g}, want {want}"
            );
        }
    }
}
