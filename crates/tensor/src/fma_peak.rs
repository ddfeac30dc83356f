//! The machine's arithmetic limit, measured: fused multiply-adds on registers only, with the
//! widest vectors the lane kernels use ([`crate::lanes::avx512_enabled`], else AVX2 + FMA).
//!
//! A GEMM library's peak is only as good as its kernel for the CPU it finds: OpenBLAS 0.3.21
//! runs its AVX2 (Haswell) kernels on AMD Zen 5, half of what that CPU's 512-bit units do, and
//! a kernel of ours measured against it can then pass 1.0. This loop has no memory traffic and
//! enough independent accumulators to cover the FMA latency on every current x86 core, so it
//! reaches the issue rate of the vector units: the figure no kernel can beat.
//!
//! ```text
//! GFLOP/s = 2 · lanes · accumulators · iterations / seconds / 1e9
//! ```

use std::time::Instant;

/// The vector width of the measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FmaWidth {
    /// 16 f32 lanes (`vfmadd231ps zmm`).
    Avx512,
    /// 8 f32 lanes (`vfmadd231ps ymm`).
    Avx2,
}

impl FmaWidth {
    /// The width the lane kernels run on this machine, or `None` without AVX2 + FMA.
    pub fn of_this_machine() -> Option<Self> {
        if crate::lanes::avx512_enabled() {
            return Some(Self::Avx512);
        }
        Self::Avx2.is_supported().then_some(Self::Avx2)
    }

    /// Whether the CPU has the instructions of this width (whatever `TWOTOWER_NO_AVX512` says).
    pub fn is_supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Self::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// `"avx512"` or `"avx2"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
        }
    }

    fn lanes(self) -> usize {
        match self {
            Self::Avx512 => 16,
            Self::Avx2 => 8,
        }
    }

    /// Independent accumulators: FMA latency 4 × 2 pipes needs 8. AVX-512 has 32 registers and
    /// takes 16; AVX2 has 16, and 12 leave room for the two constants without spilling.
    fn accumulators(self) -> usize {
        match self {
            Self::Avx512 => AVX512_ACCUMULATORS,
            Self::Avx2 => AVX2_ACCUMULATORS,
        }
    }
}

const AVX512_ACCUMULATORS: usize = 16;
const AVX2_ACCUMULATORS: usize = 12;

/// GFLOP/s of `iterations` rounds of one FMA of `width` per accumulator (16 for AVX-512, 12 for
/// AVX2) on the calling thread. Run it on every core at once (one thread each) and add the
/// figures for the machine's limit.
///
/// # Panics
/// If the CPU lacks `width` (check [`FmaWidth::of_this_machine`] first).
pub fn fma_gflops_one_thread(width: FmaWidth, iterations: usize) -> f64 {
    let started = Instant::now();
    let checksum = run(width, iterations);
    let seconds = started.elapsed().as_secs_f64();
    // The sum depends on every accumulator, so no FMA can be optimised away.
    assert!(checksum.is_finite(), "fma_peak: the accumulators left the finite range");
    2.0 * (width.lanes() * width.accumulators() * iterations) as f64 / seconds / 1e9
}

fn run(width: FmaWidth, iterations: usize) -> f32 {
    assert!(width.is_supported(), "fma_peak: this CPU has no {} instructions", width.name());
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU supports `width`'s instructions (asserted above).
        #[allow(unsafe_code)]
        unsafe {
            match width {
                FmaWidth::Avx512 => x86::avx512(iterations),
                FmaWidth::Avx2 => x86::avx2(iterations),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = iterations;
        unreachable!("no width is supported off x86_64")
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{AVX2_ACCUMULATORS, AVX512_ACCUMULATORS};

    /// `acc = acc·a + b` on every accumulator, from 0 towards the fixed point `b / (1 − a) ≈ 1`,
    /// so values stay finite.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(iterations: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-6));
        let mut acc = [_mm512_setzero_ps(); AVX512_ACCUMULATORS];
        for _ in 0..iterations {
            for v in &mut acc {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let total = acc.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v));
        _mm512_reduce_add_ps(total)
    }

    /// The AVX2 form of [`avx512`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(iterations: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-6));
        let mut acc = [_mm256_setzero_ps(); AVX2_ACCUMULATORS];
        for _ in 0..iterations {
            for v in &mut acc {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let total = acc.iter().fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), total);
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iteration_runs() {
        // From 0, acc_n = (1 − aⁿ) · b / (1 − a): a loop cut short would leave less. In f32,
        // a = 0.99999899 and b / (1 − a) = 0.9869.
        for width in [FmaWidth::Avx512, FmaWidth::Avx2].into_iter().filter(|w| w.is_supported()) {
            let fixed_point = 1e-6 / (1.0 - f64::from(0.999_999f32));
            for iterations in [100_000usize, 1_000_000] {
                let sum = f64::from(run(width, iterations));
                let expected = (width.accumulators() * width.lanes()) as f64
                    * fixed_point
                    * (1.0 - f64::from(0.999_999f32).powi(iterations as i32));
                assert!((sum - expected).abs() < 1e-3 * expected, "{width:?}, {iterations}: {sum} against {expected}");
            }
        }
    }
}
