//! `Discretization(bin_boundaries=…)` with the float32 comparison TensorFlow really does.
//!
//! TF's `Bucketize` kernel stores the boundaries as `float` and converts the input to `float`,
//! then returns `upper_bound(boundaries, x) − begin`: the number of boundaries `b` with
//! `f32(b) ≤ f32(x)`. A value equal to a boundary goes to the upper bucket, and `n` boundaries
//! give `n + 1` buckets.

use serde::{Deserialize, Serialize};

/// Frozen bucket boundaries (held as the float32 values TF compares against).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    boundaries_f64: Vec<f64>,
    boundaries: Vec<f32>,
}

impl Buckets {
    /// Buckets with the given (ascending) boundaries.
    pub fn new(boundaries: Vec<f64>) -> Self {
        let boundaries_f32 = boundaries.iter().map(|&b| b as f32).collect();
        Self { boundaries_f64: boundaries, boundaries: boundaries_f32 }
    }

    /// Checks what deserialising cannot: both boundary lists agree, none is NaN, and they ascend.
    ///
    /// # Errors
    /// A description of the first problem.
    pub fn check(&self) -> Result<(), String> {
        if self.boundaries.len() != self.boundaries_f64.len() {
            return Err(format!(
                "{} float32 boundaries for {} float64 ones",
                self.boundaries.len(),
                self.boundaries_f64.len()
            ));
        }
        if let Some(i) = self.boundaries_f64.iter().position(|b| b.is_nan()) {
            return Err(format!("boundary {i} is NaN"));
        }
        if let Some(i) = self.boundaries_f64.windows(2).position(|w| w[0] > w[1]) {
            return Err(format!("boundaries {i} and {} descend", i + 1));
        }
        if let Some(i) = self.boundaries.iter().zip(&self.boundaries_f64).position(|(&b, &b64)| b != b64 as f32) {
            return Err(format!("float32 boundary {i} is not the rounding of the float64 one"));
        }
        Ok(())
    }

    /// The tutorials' boundaries, `np.linspace(min, max, num).tolist()`: numpy computes
    /// `min + i · step` with `step = (max − min) / (num − 1)` in float64 and sets the last value
    /// exactly to `max`.
    pub fn linspace(min: f64, max: f64, num: usize) -> Self {
        let boundaries = match num {
            0 => Vec::new(),
            1 => vec![min],
            _ => {
                let step = (max - min) / (num - 1) as f64;
                let mut b: Vec<f64> = (0..num).map(|i| i as f64 * step + min).collect();
                b[num - 1] = max;
                b
            }
        };
        Self::new(boundaries)
    }

    /// The bucket of `x`: `#{ i : f32(b_i) ≤ f32(x) }`, in `0..=n_boundaries`.
    pub fn bucketize(&self, x: i64) -> u32 {
        self.bucketize_f32(x as f32)
    }

    /// The bucket of a float: `#{ i : f32(b_i) ≤ x }` (so `-0.0` and `0.0` fall on the same side
    /// of a boundary at 0, and NaN, which is not ≥ any boundary, falls in bucket 0).
    pub fn bucketize_f32(&self, x: f32) -> u32 {
        self.boundaries.partition_point(|&b| b <= x) as u32
    }

    /// Number of buckets (`boundaries + 1`), i.e. rows of the embedding table behind it.
    pub fn n_buckets(&self) -> usize {
        self.boundaries.len() + 1
    }

    /// The boundaries as given (float64).
    pub fn boundaries(&self) -> &[f64] {
        &self.boundaries_f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_goes_up_and_float32_rounding_is_applied() {
        let buckets = Buckets::linspace(874724710.0, 893286638.0, 1000);
        assert_eq!(buckets.n_buckets(), 1001);
        // From the semantics note: b[1] = 874743290.51 is 874743296 in f32.
        let cases = [(874724709, 1), (874724710, 1), (874743290, 2), (893286638, 1000), (0, 0), (2_000_000_000, 1000)];
        for (x, expected) in cases {
            assert_eq!(buckets.bucketize(x), expected, "{x}");
        }
    }
}
