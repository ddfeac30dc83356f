//! `L2Normalize`: each row divided by its Euclidean norm, as `tf.math.l2_normalize(x, axis=1)`.
//!
//! ```text
//! n_b  = sqrt(max(Σ_j x_bj², ε))            ε = 1e-12, as TF
//! y_b  = x_b / n_b
//! dx_b = (dy_b − y_b (y_b · dy_b)) / n_b    where Σ x² ≥ ε
//! dx_b = dy_b / n_b                         where Σ x² < ε (the clamp is constant)
//! ```
//!
//! Normalised query and candidate embeddings make the score a cosine, bounded in `[−1, 1]`; a
//! softmax temperature then sets its sharpness (Yi et al. 2019, "Sampling-bias-corrected neural
//! modeling", §3).

use ndarray::{ArrayView2, Zip};

use crate::Buffer;

/// TF's `epsilon` of `l2_normalize`: the squared norm is clamped to at least this.
pub const L2_EPSILON: f32 = 1e-12;

/// What backward needs: the output and each row's (clamped) norm.
#[derive(Debug, Clone, Default)]
pub struct L2NormalizeCache {
    output: Buffer,
    norms: Vec<f32>,
    clamped: Vec<bool>,
    input_grad: Buffer,
}

/// Row-wise L2 normalisation (no parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2Normalize;

impl L2Normalize {
    /// `y = x / ‖x‖` per row.
    ///
    /// # Shapes
    /// `x: (B, d)` → `(B, d)`, a view into `cache`.
    pub fn forward<'c>(self, x: ArrayView2<'_, f32>, cache: &'c mut L2NormalizeCache) -> ArrayView2<'c, f32> {
        let (rows, cols) = x.dim();
        cache.output.reshape(rows, cols);
        cache.norms.clear();
        cache.clamped.clear();
        for (x_row, mut y_row) in x.rows().into_iter().zip(cache.output.view_mut().rows_mut()) {
            let squared: f32 = x_row.iter().map(|v| v * v).sum();
            let clamped = squared < L2_EPSILON;
            let norm = squared.max(L2_EPSILON).sqrt();
            Zip::from(&mut y_row).and(&x_row).for_each(|y, &v| *y = v / norm);
            cache.norms.push(norm);
            cache.clamped.push(clamped);
        }
        cache.output.view()
    }

    /// The input gradient for upstream `dy: (B, d)`, a view into `cache`.
    ///
    /// # Panics
    /// If `dy` has another shape than the last forward's output.
    #[track_caller]
    pub fn backward<'c>(self, cache: &'c mut L2NormalizeCache, dy: ArrayView2<'_, f32>) -> ArrayView2<'c, f32> {
        let L2NormalizeCache { output, norms, clamped, input_grad } = cache;
        assert_eq!(dy.dim(), output.dim(), "L2Normalize::backward: dy {:?} for output {:?}", dy.dim(), output.dim());
        input_grad.reshape(dy.nrows(), dy.ncols());
        let rows = output.view();
        for (b, (mut dx_row, dy_row)) in input_grad.view_mut().rows_mut().into_iter().zip(dy.rows()).enumerate() {
            let y_row = rows.row(b);
            let along: f32 = if clamped[b] { 0.0 } else { y_row.dot(&dy_row) };
            let norm = norms[b];
            Zip::from(&mut dx_row).and(&dy_row).and(&y_row).for_each(|dx, &g, &y| *dx = (g - y * along) / norm);
        }
        input_grad.view()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::gradcheck::{assert_close, numeric_gradient, projection};

    #[test]
    fn rows_have_unit_norm_and_zero_rows_stay_zero() {
        let x = ndarray::array![[3.0f32, 4.0], [0.0, 0.0]];
        let mut cache = L2NormalizeCache::default();
        let y = L2Normalize.forward(x.view(), &mut cache).to_owned();
        assert_eq!(y, ndarray::array![[0.6, 0.8], [0.0, 0.0]]);
    }

    #[test]
    fn gradcheck() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x = projection((4, 3), &mut rng);
        let r = projection((4, 3), &mut rng);
        let loss = |v: &[f32]| {
            let x = Array2::from_shape_vec((4, 3), v.to_vec()).unwrap();
            let y = L2Normalize.forward(x.view(), &mut L2NormalizeCache::default()).to_owned();
            y.iter().zip(&r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()
        };
        let mut cache = L2NormalizeCache::default();
        L2Normalize.forward(x.view(), &mut cache);
        let dx = L2Normalize.backward(&mut cache, r.view()).to_owned();
        let numeric = numeric_gradient(x.as_slice().unwrap(), 1e-3, loss);
        assert_close("L2Normalize dx", dx.as_slice().unwrap(), &numeric, 1e-3, 1e-2);
    }
}
