//! One row of a numerically stable softmax (`exp(s − max)` and its sum), and the exponential it uses.

/// `exp(x)` for f32 in straight-line code the compiler can vectorise.
///
/// Cody-Waite range reduction `x = n·ln2 + r` with `|r| ≤ ln2/2`, then a degree-6 minimax
/// polynomial (Cephes' `expf` coefficients), then `2ⁿ` by exponent arithmetic. The relative error
/// is below 2 ulp on the range used here; inputs below −87.3 give exactly 0 (as `exp` underflows),
/// inputs above 88 are clamped (the softmax never produces positive inputs).
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let underflow = x < -87.33;
    let x = x.clamp(-87.33, 88.0);
    // Round to nearest with the 1.5·2²³ trick: plain adds, so it vectorises without SSE4.1.
    const ROUNDER: f32 = 12_582_912.0;
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    // The same n as an integer, read from the mantissa (a float-to-int cast would not vectorise).
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n is within [-126, 127] after the clamp, so the exponent field is in range.
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    let value = y * scale;
    if underflow {
        0.0
    } else {
        value
    }
}

/// The max and the sum of one row, after [`exp_row`] replaced it by `exp(s − max)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowExp {
    /// `max_j s_j`.
    pub max: f32,
    /// `Σ_j exp(s_j − max)`.
    pub sum: f32,
}

impl RowExp {
    /// `logsumexp(s)`, in f64.
    pub fn logsumexp(&self) -> f64 {
        f64::from(self.max) + f64::from(self.sum).ln()
    }
}

/// Overwrites `s` with `exp(s − max(s))` and returns the max and the sum, so that
/// `softmax(s) = s / sum` afterwards.
///
/// The max and the sum run in eight interleaved f32 lanes combined in a fixed order, so the
/// result depends only on the row (not on threads or CPU). On x86-64 CPUs with AVX2 the same
/// code runs compiled for AVX2; multiplications and additions are never fused, so both builds
/// give bit-identical results.
pub fn exp_row(s: &mut [f32]) -> RowExp {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        #[allow(unsafe_code)]
        return unsafe { exp_row_avx2(s) };
    }
    exp_row_kernel(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exp_row_avx2(s: &mut [f32]) -> RowExp {
    exp_row_kernel(s)
}

#[inline(always)]
fn exp_row_kernel(s: &mut [f32]) -> RowExp {
    let mut max_lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        for (m, &v) in max_lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    for (m, &v) in max_lanes.iter_mut().zip(chunks.remainder()) {
        *m = if v > *m { v } else { *m };
    }
    let max = max_lanes.iter().copied().fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    let mut lanes = [0f32; 8];
    let mut chunks = s.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let chunk: &mut [f32; 8] = chunk.try_into().expect("chunks of 8");
        let mut e = [0f32; 8];
        for i in 0..8 {
            e[i] = fast_exp(chunk[i] - max);
        }
        *chunk = e;
        for (lane, v) in lanes.iter_mut().zip(e) {
            *lane += v;
        }
    }
    for (lane, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
        *v = fast_exp(*v - max);
        *lane += *v;
    }
    let sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    RowExp { max, sum }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_of_std() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, reference) = (fast_exp(x), x.exp());
            worst = worst.max(((ours - reference) / reference).abs());
            x += 0.001_37;
        }
        assert!(worst < 2.5e-7, "max relative error {worst}");
        assert_eq!(fast_exp(-1e30), 0.0);
        assert_eq!(fast_exp(-88.0), 0.0);
        assert_eq!(fast_exp(0.0), 1.0);
    }

    #[test]
    fn avx2_and_portable_kernels_agree_bit_for_bit() {
        let row: Vec<f32> = (0..1003).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
        let (mut a, mut b) = (row.clone(), row.clone());
        assert_eq!(exp_row(&mut a), exp_row_kernel(&mut b));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn row_is_stable_for_huge_logits() {
        let mut s = vec![1e4f32, 0.0, -1e4, 1e4 - 1.0];
        let row = exp_row(&mut s);
        let expected = 1e4 + (1.0 + (-1f64).exp()).ln();
        assert!((row.logsumexp() - expected).abs() < 1e-3, "{}", row.logsumexp());
        assert!(s.iter().all(|v| v.is_finite()));
        assert_eq!(s[2], 0.0);
    }
}
