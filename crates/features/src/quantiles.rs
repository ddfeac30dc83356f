//! `Discretization(num_bins=…, epsilon=…).adapt(data)`: bucket boundaries from approximate
//! quantiles, replaying tf-keras 2.21 step by step.
//!
//! Keras adapts on batches of 32 values. Each batch is *summarised* (sorted; every
//! `step = max(⌊n / (1/ε)⌋, 1)`-th value from index `⌊n / (1/ε)⌋`, each weighing `step`), the
//! summary is *merged* with the running one (concatenated new-first, stably sorted by value)
//! and *compressed* back to `1/ε` points by interpolating the cumulative weights (numpy's
//! `interp` in float64 on float32 inputs, results stored as float32). The boundaries are the
//! final summary compressed to `num_bins` points, without the last one.

use crate::Buckets;

/// Keras' adapt batch size for arrays.
const ADAPT_BATCH: usize = 32;

/// A weighted summary: `(values, weights)`, both float32 as Keras stores them.
#[derive(Debug, Clone, Default)]
struct Summary {
    values: Vec<f32>,
    weights: Vec<f32>,
}

/// `summarize(batch, epsilon)` (TF ops: float32 element count, int32 truncation).
fn summarize(batch: &[f32], epsilon: f64) -> Summary {
    let mut sorted = batch.to_vec();
    sorted.sort_by(f32::total_cmp);
    let elements = sorted.len() as f32;
    let num_buckets = (1.0 / epsilon) as f32;
    let increment = (elements / num_buckets) as i32;
    let (start, step) = (increment.max(0) as usize, increment.max(1) as usize);
    let values: Vec<f32> = sorted.iter().skip(start).step_by(step).copied().collect();
    let weights = vec![step as f32; values.len()];
    Summary { values, weights }
}

/// `merge_summaries(new, old, epsilon)`: concatenate new first, sort stably by value, compress.
fn merge(new: Summary, old: Summary, epsilon: f64) -> Summary {
    let mut pairs: Vec<(f32, f32)> =
        new.values.into_iter().zip(new.weights).chain(old.values.into_iter().zip(old.weights)).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (values, weights) = pairs.into_iter().unzip();
    compress(Summary { values, weights }, epsilon)
}

/// numpy's `arange(0.0, 1.0, step)`: `ceil(1 / step)` values `i · step`.
fn arange_unit(step: f64) -> Vec<f64> {
    let n = (1.0 / step).ceil() as usize;
    (0..n).map(|i| i as f64 * step).collect()
}

/// numpy's `interp(x, xp, fp)` for increasing `xp` (ties allowed), as its C implementation:
/// left of `xp[0]` → `fp[0]`, right of `xp[-1]` → `fp[-1]`, on a knot → that knot's value,
/// else the linear interpolation from the last knot at or below `x`.
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if x < xp[0] {
        return fp[0];
    }
    if x > xp[n - 1] {
        return fp[n - 1];
    }
    // The last j with xp[j] <= x.
    let j = xp.partition_point(|&v| v <= x) - 1;
    if j == n - 1 || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let value = slope * (x - xp[j]) + fp[j];
    if value.is_nan() {
        let value = slope * (x - xp[j + 1]) + fp[j + 1];
        if value.is_nan() && fp[j] == fp[j + 1] {
            return fp[j];
        }
        return value;
    }
    value
}

/// `_compress_summary_numpy(summary, epsilon)`.
fn compress(summary: Summary, epsilon: f64) -> Summary {
    if (summary.values.len() as f64) * epsilon < 1.0 {
        return summary;
    }
    let percents: Vec<f64> = arange_unit(epsilon).into_iter().map(|p| epsilon + p).collect();
    let mut cumulative = Vec::with_capacity(summary.weights.len());
    let mut total = 0f32;
    for &w in &summary.weights {
        total += w;
        cumulative.push(total);
    }
    let last = *cumulative.last().expect("non-empty: len · ε ≥ 1");
    let xp: Vec<f64> = cumulative.iter().map(|&c| f64::from(c / last)).collect();
    let values: Vec<f64> = summary.values.iter().map(|&v| f64::from(v)).collect();
    let cum64: Vec<f64> = cumulative.iter().map(|&c| f64::from(c)).collect();
    let new_values: Vec<f32> = percents.iter().map(|&p| interp(p, &xp, &values) as f32).collect();
    let new_cum: Vec<f64> = percents.iter().map(|&p| interp(p, &xp, &cum64)).collect();
    let new_weights =
        (0..new_cum.len()).map(|i| (new_cum[i] - if i == 0 { 0.0 } else { new_cum[i - 1] }) as f32).collect();
    Summary { values: new_values, weights: new_weights }
}

impl Buckets {
    /// Boundaries adapted as `Discretization(num_bins, epsilon).adapt(values)` (see the module
    /// docs); `num_bins − 1` boundaries when the data has enough values.
    ///
    /// # Panics
    /// If `num_bins` is 0 or `epsilon` is not in `(0, 1]`.
    pub fn adapt_quantiles(values: &[f32], num_bins: usize, epsilon: f64) -> Self {
        assert!(num_bins > 0, "Buckets::adapt_quantiles: num_bins must be at least 1");
        assert!(epsilon > 0.0 && epsilon <= 1.0, "Buckets::adapt_quantiles: epsilon {epsilon} not in (0, 1]");
        let mut summary = Summary::default();
        for batch in values.chunks(ADAPT_BATCH) {
            summary = merge(summarize(batch, epsilon), summary, epsilon);
        }
        let mut boundaries = compress(summary, 1.0 / num_bins as f64).values;
        boundaries.pop();
        Self::new(boundaries.into_iter().map(f64::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interp_follows_numpy_at_knots_ties_and_ends() {
        let xp = [0.0, 0.5, 0.5, 1.0];
        let fp = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(interp(-1.0, &xp, &fp), 10.0);
        assert_eq!(interp(2.0, &xp, &fp), 40.0);
        assert_eq!(interp(0.25, &xp, &fp), 15.0);
        assert_eq!(interp(0.5, &xp, &fp), 30.0, "on a tied knot: the last of the tie");
        assert_eq!(interp(0.75, &xp, &fp), 35.0);
        assert_eq!(interp(1.0, &xp, &fp), 40.0);
    }

    #[test]
    fn uniform_data_gives_evenly_spaced_boundaries() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let buckets = Buckets::adapt_quantiles(&values, 4, 0.01);
        let b = buckets.boundaries();
        assert_eq!(b.len(), 3);
        for (got, want) in b.iter().zip([250.0, 500.0, 750.0]) {
            assert!((got - want).abs() < 15.0, "{b:?}");
        }
    }
}
