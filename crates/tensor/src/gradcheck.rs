//! Finite-difference gradient checking, shared by every crate's tests (feature `test-utils`).
//!
//! Reduce an op's output to a scalar with a fixed random projection, `L = Σ out ⊙ R`, so that
//! the upstream gradient `R` is not all ones; then compare the analytic gradient with central
//! differences `(L(x + h) − L(x − h)) / 2h`, element by element, with
//! `|a − n| ≤ atol + rtol · max(|a|, |n|)`.

use ndarray::Array2;
use rand::Rng;

use crate::init::uniform;

/// A `U(−1, 1)` projection matrix to use as the upstream gradient.
pub fn projection(shape: (usize, usize), rng: &mut impl Rng) -> Array2<f32> {
    uniform(shape, 1.0, rng)
}

/// A matrix from rows, as golden JSON files store them.
///
/// # Panics
/// If the rows are empty or ragged.
pub fn matrix(rows: &[Vec<f32>]) -> Array2<f32> {
    let n_cols = rows.first().map_or(0, Vec::len);
    Array2::from_shape_vec((rows.len(), n_cols), rows.concat())
        .expect("matrix: rows must be non-empty and of equal length")
}

/// Central differences of `loss` at `x`, one element at a time (f32 steps, f64 loss).
pub fn numeric_gradient(x: &[f32], h: f32, mut loss: impl FnMut(&[f32]) -> f64) -> Vec<f32> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + h;
            let up = loss(&probe);
            probe[i] = x[i] - h;
            let down = loss(&probe);
            probe[i] = x[i];
            // The actual step after f32 rounding, so that large x do not bias the quotient.
            let step = f64::from(x[i] + h) - f64::from(x[i] - h);
            ((up - down) / step) as f32
        })
        .collect()
}

/// Asserts element-wise closeness and returns the largest absolute error (for reports).
///
/// # Panics
/// On a length mismatch or any element outside tolerance; the message names the first
/// offending index and both values.
#[track_caller]
pub fn assert_close(what: &str, analytic: &[f32], numeric: &[f32], atol: f32, rtol: f32) -> f32 {
    assert_eq!(analytic.len(), numeric.len(), "{what}: length");
    let mut max_error = 0f32;
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let error = (a - n).abs();
        max_error = max_error.max(error);
        assert!(error <= atol + rtol * a.abs().max(n.abs()), "{what}[{i}]: analytic {a}, numeric {n} (|diff| {error})");
    }
    eprintln!("gradcheck {what}: {} elements, max |analytic - numeric| = {max_error:e}", analytic.len());
    max_error
}
