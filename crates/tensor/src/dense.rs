//! `Dense`: `y = act(x·W + b)`, Keras' `Dense(units, activation)` with Glorot-uniform kernel
//! and zero bias, and the ReLU it fuses.
//!
//! Backward, with `z = x·W + b` and `dz = dy ⊙ act'(z)`:
//!
//! ```text
//! dW += xᵀ·dz      db += Σ_rows dz      dx = dz·Wᵀ
//! ```
//!
//! ReLU's derivative is taken as 1 where the output is positive and 0 elsewhere (TF's choice
//! at 0).

use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::column_sums::{add_column_sums, relu_grad_with_sums};
use crate::init::glorot_uniform;
use crate::lanes::{product, product_column_bias, LANES};
use crate::prefetch::prefetch;
use crate::Buffer;

/// The activation after the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// No activation (Keras' `activation=None`).
    Linear,
    /// `max(z, 0)`.
    Relu,
}

/// A fully connected layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Kernel, `(in_dim, out_dim)`.
    pub w: Array2<f32>,
    /// Bias, `(out_dim)`.
    pub b: Array1<f32>,
    /// Applied after `x·W + b`.
    pub activation: Activation,
}

/// What `Dense::backward` needs from the forward pass, in reusable buffers.
#[derive(Debug, Clone, Default)]
pub struct DenseCache {
    /// The input, `(batch, in_dim)`, after [`Dense::forward`]; `(0, in_dim)` after
    /// [`Dense::forward_borrowed`], whose caller keeps it.
    input: Buffer,
    /// The output after activation, `(batch, out_dim)`.
    output: Buffer,
    /// Scratch for `dz`, `(batch, out_dim)`.
    dz: Buffer,
    /// The input gradient, `(batch, in_pad)` with `in_pad` the input width rounded up to 16
    /// (the padding columns are zero and never shown).
    dx: Buffer,
    /// `Wᵀ` with zero columns up to `in_pad`, `(out_dim, in_pad)`: the row-major right operand
    /// of `dx = dz·Wᵀ` on the lane kernel.
    w_t: Buffer,
    /// Column sums of `dz`, `(out_dim)`.
    dz_sums: Vec<f32>,
    /// Input columns the last backward pass computed `dx` for.
    dx_columns: usize,
}

/// Gradients of a [`Dense`], shaped like its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseGrads {
    /// `(in_dim, out_dim)`.
    pub dw: Array2<f32>,
    /// `(out_dim)`.
    pub db: Array1<f32>,
}

impl Dense {
    /// Glorot-uniform kernel, zero bias.
    pub fn new(in_dim: usize, out_dim: usize, activation: Activation, rng: &mut impl Rng) -> Self {
        Self { w: glorot_uniform(in_dim, out_dim, rng), b: Array1::zeros(out_dim), activation }
    }

    /// A layer with the given weights.
    ///
    /// # Panics
    /// If `b.len() != w.ncols()`.
    pub fn from_weights(w: Array2<f32>, b: Array1<f32>, activation: Activation) -> Self {
        assert_eq!(b.len(), w.ncols(), "Dense: bias length {} != kernel columns {}", b.len(), w.ncols());
        Self { w, b, activation }
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.w.nrows()
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.w.ncols()
    }

    /// `y = act(x·W + b)`, keeping a copy of `x` in `cache` for [`Self::backward`].
    ///
    /// # Shapes
    /// `x: (batch, in_dim)` → `(batch, out_dim)`, a view into `cache`.
    ///
    /// # Panics
    /// If `x` does not have `in_dim` columns.
    #[track_caller]
    pub fn forward<'c>(&self, x: ArrayView2<'_, f32>, cache: &'c mut DenseCache) -> ArrayView2<'c, f32> {
        self.check_input(x);
        cache.input.reshape(x.nrows(), self.in_dim());
        cache.input.view_mut().assign(&x);
        let input = std::mem::take(&mut cache.input);
        self.affine(input.view(), cache);
        cache.input = input;
        cache.output.view()
    }

    /// [`Self::forward`] without the copy of `x`: the caller keeps `x` unchanged and passes it
    /// again to [`Self::backward_borrowed`] (a stack hands each layer the previous layer's
    /// output, a tower its concatenated features). [`Self::backward`] on this cache panics.
    ///
    /// # Shapes
    /// As [`Self::forward`].
    ///
    /// # Panics
    /// If `x` does not have `in_dim` columns.
    #[track_caller]
    pub fn forward_borrowed<'c>(&self, x: ArrayView2<'_, f32>, cache: &'c mut DenseCache) -> ArrayView2<'c, f32> {
        self.check_input(x);
        cache.input.reshape(0, self.in_dim());
        self.affine(x, cache);
        cache.output.view()
    }

    #[track_caller]
    fn check_input(&self, x: ArrayView2<'_, f32>) {
        assert_eq!(x.ncols(), self.in_dim(), "Dense::forward: input {:?}, kernel {:?}", x.dim(), self.w.dim());
    }

    /// `cache.output = act(x·W + b)`, the bias and activation applied as the product's tiles are
    /// stored: `(x·W) + b` rounds as `b + x·W`.
    fn affine(&self, x: ArrayView2<'_, f32>, cache: &mut DenseCache) {
        cache.output.reshape(x.nrows(), self.out_dim());
        let bias = self.b.as_slice().expect("a bias vector is contiguous");
        let relu = self.activation == Activation::Relu;
        product_column_bias(x, self.w.view(), bias, relu, &mut cache.output.view_mut());
    }

    /// Adds `dW`, `db` into `grads` and returns `dx`.
    ///
    /// # Shapes
    /// `dy: (batch, out_dim)` → `dx: (batch, in_dim)`, a view into `cache`.
    ///
    /// # Panics
    /// If `dy`'s shape differs from the forward output's, or the forward pass was
    /// [`Self::forward_borrowed`].
    #[track_caller]
    pub fn backward<'c>(
        &self,
        cache: &'c mut DenseCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseGrads,
    ) -> ArrayView2<'c, f32> {
        self.backward_partial(cache, dy, grads, self.in_dim())
    }

    /// [`Self::backward`] with `dx` for the first `dx_columns` input columns only: a tower
    /// whose last inputs have no parameters (a numeric feature) needs no gradient for them, and
    /// `dx_columns = 0` skips the product. `dW` and `db` are the full ones.
    ///
    /// # Shapes
    /// `dy: (batch, out_dim)` → `dx: (batch, dx_columns)`, a view into `cache`.
    ///
    /// # Panics
    /// If `dy`'s shape differs from the forward output's, `dx_columns > in_dim`, or the forward
    /// pass was [`Self::forward_borrowed`].
    #[track_caller]
    pub fn backward_partial<'c>(
        &self,
        cache: &'c mut DenseCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseGrads,
        dx_columns: usize,
    ) -> ArrayView2<'c, f32> {
        let input = std::mem::take(&mut cache.input);
        self.gradients(input.view(), cache, dy, grads, dx_columns);
        cache.input = input;
        cache.input_grad()
    }

    /// [`Self::backward_partial`] after [`Self::forward_borrowed`], given the same `x`.
    ///
    /// # Shapes
    /// `x: (batch, in_dim)`, `dy: (batch, out_dim)` → `dx: (batch, dx_columns)`, a view into
    /// `cache`.
    ///
    /// # Panics
    /// If `x` or `dy` does not match the forward pass's shapes, or `dx_columns > in_dim`.
    #[track_caller]
    pub fn backward_borrowed<'c>(
        &self,
        x: ArrayView2<'_, f32>,
        cache: &'c mut DenseCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseGrads,
        dx_columns: usize,
    ) -> ArrayView2<'c, f32> {
        self.gradients(x, cache, dy, grads, dx_columns);
        cache.input_grad()
    }

    /// `dW += xᵀ·dz`, `db += Σ_rows dz` and `cache.dx = dz·Wᵀ` for the first `dx_columns`.
    #[track_caller]
    fn gradients(
        &self,
        x: ArrayView2<'_, f32>,
        cache: &mut DenseCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseGrads,
        dx_columns: usize,
    ) {
        assert_eq!(
            dy.dim(),
            cache.output.dim(),
            "Dense::backward: dy {:?} vs output {:?}",
            dy.dim(),
            cache.output.dim()
        );
        let (batch, out_dim) = dy.dim();
        assert_eq!(
            x.dim(),
            (batch, self.in_dim()),
            "Dense::backward: input {:?} for a batch of {batch} (after forward_borrowed, use backward_borrowed)",
            x.dim()
        );
        assert!(dx_columns <= self.in_dim(), "Dense::backward: dx for {dx_columns} of {} columns", self.in_dim());
        // `dz = dy ⊙ act'(z)` and its column sums in one pass (for a linear layer `dz` is `dy`
        // itself). The sums are taken first and added once, so that accumulating twice gives
        // exactly twice the gradient.
        cache.dz_sums.clear();
        cache.dz_sums.resize(out_dim, 0.0);
        let dz = match (self.activation, dy.as_slice()) {
            (Activation::Linear, Some(dy_rows)) => {
                add_column_sums(dy_rows, out_dim, &mut cache.dz_sums);
                dy
            }
            (Activation::Relu, Some(dy_rows)) => {
                cache.dz.reshape(batch, out_dim);
                let (y, dz) = (cache.output.as_slice(), cache.dz.as_slice_mut());
                relu_grad_with_sums(dy_rows, y, dz, out_dim, &mut cache.dz_sums);
                cache.dz.view()
            }
            (activation, None) => {
                // A strided `dy`: copied first, then as above.
                cache.dz.reshape(batch, out_dim);
                cache.dz.view_mut().assign(&dy);
                let y_rows = cache.output.as_slice().chunks_exact(out_dim);
                for (dz_row, y_row) in cache.dz.as_slice_mut().chunks_exact_mut(out_dim).zip(y_rows) {
                    if activation == Activation::Relu {
                        dz_row.iter_mut().zip(y_row).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 });
                    }
                    add_to(&mut cache.dz_sums, dz_row);
                }
                cache.dz.view()
            }
        };
        // The input was stored by the forward pass, and the loss between the two passes pushed
        // it out of L2. `xᵀ·dz` reads it a few values per row, one row after another, which
        // waits on every line; asking for it in order first brings it back at streaming speed
        // (query tower of the deep [64, 32] model on Zen 5, layer 65 → 64, timed inside training:
        // `dW` 260–320 µs cold, 145–220 µs after the hint; RESULTS.md, issue 12, fifth round).
        if let Some(x) = x.as_slice() {
            prefetch(x);
        }
        product(x.t(), dz, 1.0, &mut grads.dw.view_mut());
        for (db, &sum) in grads.db.iter_mut().zip(&cache.dz_sums) {
            *db += sum;
        }
        // `dx = dz·Wᵀ` for the leading columns: the first `dx_columns` rows of `W`, transposed
        // and padded with zero columns to whole lanes.
        let padded = dx_columns.div_ceil(LANES) * LANES;
        cache.dx_columns = dx_columns;
        cache.dx.reshape(batch, padded);
        if dx_columns > 0 {
            cache.w_t.reshape_zeroed(self.out_dim(), padded);
            cache.w_t.view_mut().slice_mut(s![.., ..dx_columns]).assign(&self.w.slice(s![..dx_columns, ..]).t());
            product(dz, cache.w_t.view(), 0.0, &mut cache.dx.view_mut());
        }
    }
}

impl DenseCache {
    /// The output of the last forward pass, `(batch, out_dim)`.
    pub fn output(&self) -> ArrayView2<'_, f32> {
        self.output.view()
    }

    /// The input gradient of the last backward pass, `(batch, dx_columns)` (`in_dim` columns
    /// after [`Dense::backward`]).
    pub fn input_grad(&self) -> ArrayView2<'_, f32> {
        self.dx.view().slice_move(s![.., ..self.dx_columns])
    }
}

impl DenseGrads {
    /// Zero gradients shaped like `layer`.
    pub fn zeros_like(layer: &Dense) -> Self {
        Self { dw: Array2::zeros(layer.w.raw_dim()), db: Array1::zeros(layer.b.raw_dim()) }
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        self.dw.fill(0.0);
        self.db.fill(0.0);
    }
}

/// `sums[j] += row[j]`.
fn add_to(sums: &mut [f32], row: &[f32]) {
    sums.iter_mut().zip(row).for_each(|(sum, &v)| *sum += v);
}

/// `y = max(y, 0)` element-wise.
pub fn relu_in_place(mut y: ArrayViewMut2<'_, f32>) {
    y.mapv_inplace(|v| v.max(0.0));
}

/// `dy ⊙ 1[y > 0]`, where `y` is the ReLU output.
pub fn relu_backward_in_place(y: ArrayView2<'_, f32>, mut dy: ArrayViewMut2<'_, f32>) {
    dy.zip_mut_with(&y, |d, &out| {
        if out <= 0.0 {
            *d = 0.0;
        }
    });
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::gradcheck::{assert_close, numeric_gradient, projection};
    use crate::init::uniform;

    fn loss(layer: &Dense, x: ArrayView2<'_, f32>, r: &Array2<f32>) -> f64 {
        let mut cache = DenseCache::default();
        let y = layer.forward(x, &mut cache);
        y.iter().zip(r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
    }

    fn gradcheck(activation: Activation) {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let layer =
            Dense { b: uniform((1, 4), 0.5, &mut rng).row(0).to_owned(), ..Dense::new(3, 4, activation, &mut rng) };
        // Inputs away from the ReLU kink: |z| is at least a few h for this seed.
        let x = uniform((5, 3), 1.0, &mut rng);
        let r = projection((5, 4), &mut rng);
        let mut cache = DenseCache::default();
        layer.forward(x.view(), &mut cache);
        let mut grads = DenseGrads::zeros_like(&layer);
        let dx = layer.backward(&mut cache, r.view(), &mut grads).to_owned();

        let h = 1e-3;
        let num_dx = numeric_gradient(x.as_slice().unwrap(), h, |v| {
            loss(&layer, ArrayView2::from_shape((5, 3), v).unwrap(), &r)
        });
        assert_close("Dense dx", dx.as_slice().unwrap(), &num_dx, 1e-3, 1e-2);
        let num_dw = numeric_gradient(layer.w.as_slice().unwrap(), h, |v| {
            let l = Dense { w: Array2::from_shape_vec((3, 4), v.to_vec()).unwrap(), ..layer.clone() };
            loss(&l, x.view(), &r)
        });
        assert_close("Dense dw", grads.dw.as_slice().unwrap(), &num_dw, 1e-3, 1e-2);
        let num_db = numeric_gradient(layer.b.as_slice().unwrap(), h, |v| {
            let l = Dense { b: Array1::from(v.to_vec()), ..layer.clone() };
            loss(&l, x.view(), &r)
        });
        assert_close("Dense db", grads.db.as_slice().unwrap(), &num_db, 1e-3, 1e-2);
    }

    #[test]
    fn linear_gradcheck() {
        gradcheck(Activation::Linear);
    }

    #[test]
    fn relu_gradcheck() {
        gradcheck(Activation::Relu);
    }

    #[test]
    fn backward_accumulates() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let layer = Dense::new(3, 2, Activation::Relu, &mut rng);
        let x = uniform((4, 3), 1.0, &mut rng);
        let dy = projection((4, 2), &mut rng);
        let mut cache = DenseCache::default();
        layer.forward(x.view(), &mut cache);
        let mut once = DenseGrads::zeros_like(&layer);
        layer.backward(&mut cache, dy.view(), &mut once);
        let mut twice = DenseGrads::zeros_like(&layer);
        layer.backward(&mut cache, dy.view(), &mut twice);
        layer.backward(&mut cache, dy.view(), &mut twice);
        // Two GEMM calls need not round alike (kernels differ by CPU): equal within float tolerance.
        let doubled = (&once.dw * 2.0, &once.db * 2.0);
        crate::gradcheck::assert_close(
            "dw twice",
            twice.dw.as_slice().unwrap(),
            doubled.0.as_slice().unwrap(),
            1e-6,
            1e-6,
        );
        crate::gradcheck::assert_close(
            "db twice",
            twice.db.as_slice().unwrap(),
            doubled.1.as_slice().unwrap(),
            1e-6,
            1e-6,
        );
    }

    #[test]
    fn partial_input_gradient_is_the_leading_columns_of_the_full_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let layer = Dense::new(37, 16, Activation::Relu, &mut rng);
        let x = uniform((9, 37), 1.0, &mut rng);
        let dy = projection((9, 16), &mut rng);
        let mut cache = DenseCache::default();
        layer.forward(x.view(), &mut cache);
        let mut full_grads = DenseGrads::zeros_like(&layer);
        let full = layer.backward(&mut cache, dy.view(), &mut full_grads).to_owned();
        // Bit for bit: `dx` runs on `lane_gemm` (the layouts always fit), whose every element sums
        // in the same fixed order whatever the width or tile (tested in `lanes`), not on BLAS.
        for columns in [0, 1, 16, 20, 37] {
            let mut grads = DenseGrads::zeros_like(&layer);
            let dx = layer.backward_partial(&mut cache, dy.view(), &mut grads, columns).to_owned();
            assert_eq!(dx.dim(), (9, columns));
            let bits = |v: ndarray::ArrayView2<'_, f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(dx.view()), bits(full.slice(s![.., ..columns])), "{columns} columns");
            assert_eq!(grads, full_grads, "dW and db do not depend on the columns of dx");
        }
        let mut grads = DenseGrads::zeros_like(&layer);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            layer.backward_partial(&mut cache, dy.view(), &mut grads, 38);
        }));
        assert!(caught.is_err(), "more columns than the input has");
    }

    #[test]
    fn borrowed_input_and_strided_upstream_give_the_stored_path_bits() {
        let bits = |v: ndarray::ArrayView2<'_, f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for activation in [Activation::Relu, Activation::Linear] {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let layer = Dense {
                b: uniform((1, 32), 0.5, &mut rng).row(0).to_owned(),
                ..Dense::new(40, 32, activation, &mut rng)
            };
            let x = uniform((70, 40), 1.0, &mut rng);
            let dy = projection((70, 32), &mut rng);
            let mut stored = DenseCache::default();
            let y = layer.forward(x.view(), &mut stored).to_owned();
            let mut stored_grads = DenseGrads::zeros_like(&layer);
            let dx = layer.backward_partial(&mut stored, dy.view(), &mut stored_grads, 20).to_owned();

            let mut borrowed = DenseCache::default();
            assert_eq!(bits(layer.forward_borrowed(x.view(), &mut borrowed)), bits(y.view()), "{activation:?} y");
            let mut grads = DenseGrads::zeros_like(&layer);
            let borrowed_dx = layer.backward_borrowed(x.view(), &mut borrowed, dy.view(), &mut grads, 20);
            assert_eq!(bits(borrowed_dx), bits(dx.view()), "{activation:?} dx");
            assert_eq!(grads, stored_grads, "{activation:?} dW, db");

            // `dy` as a transposed copy: the same values with other strides take the copying path.
            let dy_t = dy.t().to_owned();
            let mut strided_grads = DenseGrads::zeros_like(&layer);
            let strided_dx = layer.backward_partial(&mut stored, dy_t.t(), &mut strided_grads, 20);
            assert_eq!(bits(strided_dx), bits(dx.view()), "{activation:?} dx, strided dy");
            assert_eq!(strided_grads, stored_grads, "{activation:?} dW, db, strided dy");

            // The borrowed cache holds no input: the stored backward refuses it.
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                layer.backward(&mut borrowed, dy.view(), &mut DenseGrads::zeros_like(&layer));
            }));
            assert!(caught.is_err(), "backward after forward_borrowed");
        }
    }

    #[test]
    fn glorot_limit_is_keras() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let layer = Dense::new(65, 32, Activation::Linear, &mut rng);
        let limit = (6.0f32 / 97.0).sqrt();
        let max = layer.w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max <= limit && max > 0.9 * limit, "max |w| = {max}, limit {limit}");
        assert!(layer.b.iter().all(|&v| v == 0.0));
    }
}
