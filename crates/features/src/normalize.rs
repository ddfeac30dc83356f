//! `Normalization(axis=None)`: one mean and one population variance, adapted the Keras way.
//!
//! Keras adapts a numpy array in batches of 32, in float32. For each batch it takes
//! `tf.nn.moments` (mean, population variance), then merges into the running state with
//! `w = n_b / (n + n_b)`:
//!
//! ```text
//! μ' = μ·(1 − w) + μ_b·w
//! σ²' = (σ² + (μ − μ')²)·(1 − w) + (σ²_b + (μ_b − μ')²)·w
//! ```
//!
//! The batch sums are pairwise (a binary tree), which is what reproduces TF's float32 values
//! bit for bit on MovieLens (μ = 883528896, σ² = 28556256083968). `normalize` is then
//! `(f32(x) − μ) / max(sqrt(σ²), 1e-7)`.

use serde::{Deserialize, Serialize};

/// Keras' default `adapt` batch size for numpy input.
const ADAPT_BATCH: usize = 32;
/// `backend.epsilon()`, used as a floor on the standard deviation.
const STD_FLOOR: f32 = 1e-7;

/// A frozen scalar normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// The adapted mean.
    pub mean: f32,
    /// The adapted population variance.
    pub variance: f32,
}

impl Normalizer {
    /// Adapts on `values` in the given order, exactly as `Normalization(axis=None).adapt(array)`.
    pub fn adapt(values: &[i64]) -> Self {
        let floats: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        Self::adapt_f32(&floats)
    }

    /// One normaliser per column of `rows` (`Normalization(axis=-1)`), each adapted as
    /// [`Self::adapt_f32`] on its column.
    ///
    /// # Panics
    /// If the rows have different lengths.
    pub fn adapt_columns(rows: &[Vec<f32>]) -> Vec<Self> {
        let width = rows.first().map_or(0, Vec::len);
        assert!(rows.iter().all(|r| r.len() == width), "Normalizer::adapt_columns: ragged rows");
        (0..width)
            .map(|c| Self::adapt_with(&rows.iter().map(|r| r[c]).collect::<Vec<f32>>(), ADAPT_BATCH, sequential_sum))
            .collect()
    }

    /// Adapts on float `values` in the given order: Keras' batch-of-32 float32 merge.
    pub fn adapt_f32(values: &[f32]) -> Self {
        Self::adapt_with(values, ADAPT_BATCH, pairwise_sum)
    }

    /// One normaliser over every value of `rows` (`Normalization(axis=None)` on 2-D data): the
    /// batches are 32 rows, each reduced as one flat buffer.
    pub fn adapt_rows(rows: &[Vec<f32>]) -> Self {
        let width = rows.first().map_or(1, Vec::len).max(1);
        Self::adapt_with(&rows.concat(), ADAPT_BATCH * width, pairwise_sum)
    }

    /// The merge, with the batch reduction TF uses for the layout: pairwise for a 1-D batch
    /// (`axis=None`), row by row down each column for a 2-D batch reduced over axis 0.
    fn adapt_with(values: &[f32], batch_len: usize, sum: fn(&[f32]) -> f32) -> Self {
        let mut mean = 0f32;
        let mut variance = 0f32;
        let mut count = 0usize;
        let mut batch = Vec::with_capacity(batch_len);
        for chunk in values.chunks(batch_len) {
            batch.clear();
            batch.extend_from_slice(chunk);
            let n_b = batch.len() as f32;
            let batch_mean = sum(&batch) / n_b;
            for v in batch.iter_mut() {
                *v = (*v - batch_mean) * (*v - batch_mean);
            }
            let batch_variance = sum(&batch) / n_b;
            count += chunk.len();
            let w = n_b / count as f32;
            let existing = 1.0 - w;
            let new_mean = mean * existing + batch_mean * w;
            variance = (variance + (mean - new_mean) * (mean - new_mean)) * existing
                + (batch_variance + (batch_mean - new_mean) * (batch_mean - new_mean)) * w;
            mean = new_mean;
        }
        Self { mean, variance }
    }

    /// `(f32(x) − μ) / max(sqrt(σ²), 1e-7)`.
    pub fn normalize(&self, x: i64) -> f32 {
        self.normalize_f32(x as f32)
    }

    /// `(x − μ) / max(sqrt(σ²), 1e-7)`.
    pub fn normalize_f32(&self, x: f32) -> f32 {
        (x - self.mean) / self.variance.sqrt().max(STD_FLOOR)
    }
}

/// Sums in order.
fn sequential_sum(values: &[f32]) -> f32 {
    values.iter().sum()
}

/// Sums neighbours pairwise, level by level; an odd last element is carried up unchanged.
fn pairwise_sum(values: &[f32]) -> f32 {
    let mut level: Vec<f32> = values.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| if p.len() == 2 { p[0] + p[1] } else { p[0] }).collect();
    }
    level.first().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_variance_and_std_floor() {
        let n = Normalizer::adapt(&[1, 2, 3, 4, 10]);
        assert_eq!((n.mean, n.variance), (4.0, 10.0));
        let constant = Normalizer::adapt(&[5, 5, 5]);
        assert_eq!(constant.normalize(6), 1e7);
    }

    #[test]
    fn merges_batches_of_32() {
        let values: Vec<i64> = (0..100).collect();
        let n = Normalizer::adapt(&values);
        assert!((n.mean - 49.5).abs() < 1e-4);
        assert!((n.variance - 833.25).abs() < 1e-2);
    }
}
