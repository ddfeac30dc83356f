//! One row of softmax cross-entropy and its gradient, and the exponential it uses.

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
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if underflow {
        0.0
    } else {
        y * scale
    }
}

/// For one row of logits `s` with its positive at `positive`, returns
/// `logsumexp(s) − s[positive]` and overwrites `s` with `weight · (softmax(s) − onehot) · scale`.
///
/// Sums run in eight interleaved f32 lanes (vectorisable, and deterministic: the order depends
/// only on the row length).
pub fn softmax_cross_entropy_row(s: &mut [f32], positive: usize, weight: f32, scale: f32) -> f64 {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let positive_logit = s[positive];
    let mut lanes = [0f32; 8];
    let mut chunks = s.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *v = fast_exp(*v - max);
            *lane += *v;
        }
    }
    for (lane, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
        *v = fast_exp(*v - max);
        *lane += *v;
    }
    let sum: f32 = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    let factor = weight * scale / sum;
    for v in s.iter_mut() {
        *v *= factor;
    }
    s[positive] -= weight * scale;
    let loss = f64::from(max) + f64::from(sum).ln() - f64::from(positive_logit);
    f64::from(weight) * loss
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
    fn row_is_stable_for_huge_logits() {
        let mut s = vec![1e4f32, 0.0, -1e4, 1e4 - 1.0];
        let loss = softmax_cross_entropy_row(&mut s, 0, 1.0, 1.0);
        let expected = (1.0 + (-1f64).exp()).ln();
        assert!((loss - expected).abs() < 1e-6, "{loss}");
        assert!(s.iter().all(|v| v.is_finite()));
        assert!((s.iter().sum::<f32>()).abs() < 1e-6, "gradient of a row sums to 0");
    }
}
