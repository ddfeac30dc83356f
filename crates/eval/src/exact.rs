//! Kernel-independent ranking: GEMM scores decide only what they decide for certain, and an
//! exact score settles everything close.
//!
//! Two BLAS kernels (AVX2 and AVX-512 OpenBLAS, or matrixmultiply) may round `q·c` differently
//! in the last bits, and even two columns of one GEMM can round differently. A ranking that
//! compared GEMM scores directly would then depend on the CPU: two identical candidate rows
//! could rank apart, or a twin of the true candidate could outrank it.
//!
//! Ranks here are defined by the **exact score** [`exact_score`]: the f32 products summed in
//! f64 in index order. Each product of two f32 is exact in f64 (24 + 24 < 53 mantissa bits) and
//! the order of the sum is fixed, so the value is the same on every machine, and identical rows
//! get identical scores. The fast GEMM score `s̃` only filters: with the forward error bound of
//! a dot product of length `d` in any summation order, with or without FMA,
//!
//! ```text
//! |s̃ − q·c| ≤ γ_d · Σ|q_i c_i| ≤ γ_d · ‖q‖₂‖c‖₂,   γ_d = d·u / (1 − d·u),  u = 2⁻²⁴
//! ```
//!
//! a candidate whose GEMM score is further than that [`Band`] from a threshold is on the same
//! side of it exactly; only the few inside the band are rescored exactly.

use ndarray::ArrayView1;

/// `q·c` as f64: exact products, summed in index order. The same value on every CPU.
///
/// # Shapes
/// `q: (d)`, `c: (d)`.
pub fn exact_score(q: ArrayView1<'_, f32>, c: ArrayView1<'_, f32>) -> f64 {
    debug_assert_eq!(q.len(), c.len(), "exact_score: lengths differ");
    q.iter().zip(c.iter()).fold(0.0f64, |sum, (&a, &b)| sum + f64::from(a) * f64::from(b))
}

/// Each row's Euclidean norm, in f64.
pub(crate) fn row_norms(rows: ndarray::ArrayView2<'_, f32>) -> Vec<f64> {
    rows.rows().into_iter().map(|row| row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt()).collect()
}

/// How far a GEMM score of a query block may lie from the exact score, for one query against
/// one block of candidates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Band(f64);

impl Band {
    /// The bound for a dot product of length `dim` between a query of norm `query_norm` and
    /// candidates of norm at most `max_candidate_norm`, widened by a factor 2 and by the
    /// rounding of the thresholds to f32 (see [`Band::around`]).
    pub(crate) fn new(dim: usize, query_norm: f64, max_candidate_norm: f64) -> Self {
        let u = f64::from(f32::EPSILON) / 2.0;
        let du = (dim.max(1) as f64 + 2.0) * u;
        let gamma = du / (1.0 - du).max(f64::MIN_POSITIVE);
        // f32 underflow (subnormal products flushed or rounded) adds at most 2⁻¹⁴⁹ per term.
        let underflow = dim as f64 * f64::from(f32::from_bits(1));
        Self(2.0 * gamma * query_norm * max_candidate_norm + 2.0 * underflow)
    }

    /// `(lo, hi)` in f32 with `lo ≤ threshold − band` and `hi ≥ threshold + band`: a GEMM score
    /// `> hi` is exactly above the threshold, one `< lo` exactly below it. NaN or infinite
    /// bands give `(−∞, +∞)`: everything is rescored.
    pub(crate) fn around(self, threshold: f64) -> (f32, f32) {
        let (lo, hi) = (threshold - self.0, threshold + self.0);
        if !(lo.is_finite() && hi.is_finite()) {
            return (f32::NEG_INFINITY, f32::INFINITY);
        }
        (round_down(lo), round_up(hi))
    }

    /// Whether a GEMM score `score` may be at or above `threshold` exactly.
    pub(crate) fn may_reach(self, score: f32, threshold: f64) -> bool {
        // NaN anywhere: cannot rule it out, so rescore.
        (f64::from(score) + self.0).partial_cmp(&threshold) != Some(std::cmp::Ordering::Less)
    }
}

/// The largest f32 not above `x` (finite `x`).
fn round_down(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) > x {
        next_toward_neg_infinity(y)
    } else {
        y
    }
}

/// The smallest f32 not below `x` (finite `x`).
fn round_up(x: f64) -> f32 {
    -round_down(-x)
}

fn next_toward_neg_infinity(y: f32) -> f32 {
    if y.is_nan() || y == f32::NEG_INFINITY {
        return y;
    }
    if y == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = y.to_bits();
    f32::from_bits(if y > 0.0 { bits - 1 } else { bits + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn exact_score_is_the_f64_sum_of_exact_products() {
        let q = array![1.0f32 + f32::EPSILON, 3.0, -0.5];
        let c = array![1.0f32 - f32::EPSILON, 1e-8, 2.0];
        let expected =
            (1.0f64 + f64::from(f32::EPSILON)) * (1.0 - f64::from(f32::EPSILON)) + 3.0 * f64::from(1e-8f32) - 1.0;
        assert_eq!(exact_score(q.view(), c.view()), expected);
    }

    #[test]
    fn band_edges_round_outward() {
        let band = Band::new(32, 1.0, 1.0);
        for threshold in [0.0, 1.0 / 3.0, -7.123_456_789, 1e-30, 123_456.789] {
            let (lo, hi) = band.around(threshold);
            assert!(f64::from(lo) <= threshold - band.0 && f64::from(hi) >= threshold + band.0, "{threshold}");
            assert!(lo < hi);
        }
        assert_eq!(band.around(f64::NAN), (f32::NEG_INFINITY, f32::INFINITY));
        assert_eq!(Band::new(4, f64::INFINITY, 1.0).around(0.0), (f32::NEG_INFINITY, f32::INFINITY));
    }
}
