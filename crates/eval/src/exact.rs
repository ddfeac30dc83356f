//! Kernel-independent ranking: GEMM scores decide only what they decide for certain, and an
//! exact score settles everything close.
//!
//! Two BLAS kernels (AVX2 and AVX-512 OpenBLAS, or matrixmultiply) may round `q·c` differently
//! in the last bits, and even two columns of one GEMM can round differently. A ranking that
//! compared GEMM scores directly would then depend on the CPU: two identical candidate rows
//! could rank apart, or a twin of the true candidate could outrank it.
//!
//! Ranks here are defined by the **exact score** [`exact_score`]: the f32 products summed in
//! f64 in a fixed order (four lanes by index mod 4, then `(l0 + l1) + (l2 + l3)`). Each product
//! of two f32 is exact in f64 (24 + 24 < 53 mantissa bits) and the order of the sum is fixed by
//! the code (Rust never reassociates floats), so the value is the same on every machine, and
//! identical rows get identical scores. The fast GEMM score `s̃` only filters: with the forward error bound of
//! a dot product of length `d` in any summation order, with or without FMA,
//!
//! ```text
//! |s̃ − q·c| ≤ γ_d · Σ|q_i c_i| ≤ γ_d · ‖q‖₂‖c‖₂,   γ_d = d·u / (1 − d·u),  u = 2⁻²⁴
//! ```
//!
//! a candidate whose GEMM score is further than that [`Band`] from a threshold is on the same
//! side of it exactly; only the few inside the band are rescored exactly.

use ndarray::ArrayView1;

/// `q·c` as f64: exact products, summed in four lanes (`i mod 4`) combined as
/// `(l0 + l1) + (l2 + l3)`. The same value on every CPU.
///
/// # Shapes
/// `q: (d)`, `c: (d)`.
pub fn exact_score(q: ArrayView1<'_, f32>, c: ArrayView1<'_, f32>) -> f64 {
    debug_assert_eq!(q.len(), c.len(), "exact_score: lengths differ");
    match (q.as_slice(), c.as_slice()) {
        (Some(q), Some(c)) => exact_dot(q, c),
        _ => {
            let mut lanes = [0f64; 4];
            for (i, (&a, &b)) in q.iter().zip(c.iter()).enumerate() {
                lanes[i % 4] += f64::from(a) * f64::from(b);
            }
            (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
        }
    }
}

/// [`exact_score`] of two slices (the same order, written so that it vectorises).
pub(crate) fn exact_dot(q: &[f32], c: &[f32]) -> f64 {
    let mut lanes = [0f64; 4];
    let (q_chunks, c_chunks) = (q.chunks_exact(4), c.chunks_exact(4));
    let (q_tail, c_tail) = (q_chunks.remainder(), c_chunks.remainder());
    for (a, b) in q_chunks.zip(c_chunks) {
        for k in 0..4 {
            lanes[k] += f64::from(a[k]) * f64::from(b[k]);
        }
    }
    for (k, (&a, &b)) in q_tail.iter().zip(c_tail).enumerate() {
        lanes[k] += f64::from(a) * f64::from(b);
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

/// Each row's Euclidean norm, in f64.
pub(crate) fn row_norms(rows: ndarray::ArrayView2<'_, f32>) -> Vec<f64> {
    rows.rows().into_iter().map(|row| row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt()).collect()
}

/// How far a GEMM score may lie from the exact score, for one query: `width(‖c‖)` bounds
/// `|s̃ − q·c|` for a candidate of norm `‖c‖`, widened by a factor 2 (which also covers the f64
/// rounding of the exact score and of the thresholds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Band {
    /// `2 γ_d ‖q‖`.
    per_norm: f64,
    /// f32 underflow (subnormal products flushed or rounded): at most 2⁻¹⁴⁹ per term, doubled.
    underflow: f64,
}

impl Band {
    /// The band of a query of norm `query_norm` in dot products of length `dim`.
    pub(crate) fn new(dim: usize, query_norm: f64) -> Self {
        let u = f64::from(f32::EPSILON) / 2.0;
        let du = (dim.max(1) as f64 + 2.0) * u;
        let gamma = du / (1.0 - du).max(f64::MIN_POSITIVE);
        Self { per_norm: 2.0 * gamma * query_norm, underflow: 2.0 * dim as f64 * f64::from(f32::from_bits(1)) }
    }

    /// The bound for a candidate of norm `candidate_norm`.
    pub(crate) fn width(self, candidate_norm: f64) -> f64 {
        self.per_norm * candidate_norm + self.underflow
    }

    /// `(lo, hi)` in f32 with `lo ≤ threshold − width` and `hi ≥ threshold + width`: a GEMM
    /// score `> hi` is exactly above the threshold, one `< lo` exactly below it, for every
    /// candidate of norm at most `candidate_norm`. NaN or infinite bands give `(−∞, +∞)`:
    /// everything is rescored.
    pub(crate) fn around(self, threshold: f64, candidate_norm: f64) -> (f32, f32) {
        let width = self.width(candidate_norm);
        let (lo, hi) = (threshold - width, threshold + width);
        if !(lo.is_finite() && hi.is_finite()) {
            return (f32::NEG_INFINITY, f32::INFINITY);
        }
        (round_down(lo), round_up(hi))
    }

    /// Where a GEMM score `score` of a candidate of norm `candidate_norm` lies against
    /// `threshold` exactly: `Some(true)` certainly above, `Some(false)` certainly not above,
    /// `None` too close to tell (rescore).
    pub(crate) fn above(self, score: f32, candidate_norm: f64, threshold: f64) -> Option<bool> {
        let (score, width) = (f64::from(score), self.width(candidate_norm));
        if score - width > threshold {
            Some(true)
        } else if score + width < threshold {
            Some(false)
        } else {
            None
        }
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
        let band = Band::new(32, 1.0);
        for threshold in [0.0, 1.0 / 3.0, -7.123_456_789, 1e-30, 123_456.789] {
            let (lo, hi) = band.around(threshold, 1.0);
            let width = band.width(1.0);
            assert!(f64::from(lo) <= threshold - width && f64::from(hi) >= threshold + width, "{threshold}");
            assert!(lo < hi);
        }
        assert_eq!(band.around(f64::NAN, 1.0), (f32::NEG_INFINITY, f32::INFINITY));
        assert_eq!(Band::new(4, f64::INFINITY).around(0.0, 1.0), (f32::NEG_INFINITY, f32::INFINITY));
        assert_eq!(band.above(2.0, 1.0, 1.0), Some(true));
        assert_eq!(band.above(0.5, 1.0, 1.0), Some(false));
        assert_eq!(band.above(1.0, 1.0, 1.0), None);
        assert_eq!(Band::new(4, f64::NAN).above(1.0, 1.0, 0.0), None);
    }

    #[test]
    fn the_slice_and_strided_orders_agree() {
        let q = ndarray::Array1::from_iter((0..37).map(|i| (i as f32 * 0.37).sin()));
        let c = ndarray::Array1::from_iter((0..74).map(|i| (i as f32 * 0.11).cos()));
        let strided = c.slice(ndarray::s![..;2]);
        let contiguous = strided.to_owned();
        assert_eq!(exact_score(q.view(), strided), exact_score(q.view(), contiguous.view()));
    }
}
