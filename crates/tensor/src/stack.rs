//! `DenseStack`: the deep-retrieval tutorial's tower head, `Dense(n, relu)` for every entry of
//! `layer_sizes` but the last, then a linear `Dense(layer_sizes[-1])`.

use ndarray::ArrayView2;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Activation, Dense, DenseCache, DenseGrads};

/// A stack of at least one dense layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseStack {
    /// The layers, input first.
    pub layers: Vec<Dense>,
}

/// One [`DenseCache`] per layer.
#[derive(Debug, Clone, Default)]
pub struct DenseStackCache {
    layers: Vec<DenseCache>,
}

/// One [`DenseGrads`] per layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseStackGrads {
    /// Per layer, input first.
    pub layers: Vec<DenseGrads>,
}

impl DenseStack {
    /// Layers `in_dim → sizes[0] → … → sizes[n-1]`, ReLU after all but the last.
    ///
    /// # Panics
    /// If `sizes` is empty or contains 0 (configs validate this before building).
    pub fn new(in_dim: usize, sizes: &[usize], rng: &mut impl Rng) -> Self {
        assert!(!sizes.is_empty() && !sizes.contains(&0), "DenseStack::new: invalid layer sizes {sizes:?}");
        let mut layers = Vec::with_capacity(sizes.len());
        let mut fan_in = in_dim;
        for (i, &size) in sizes.iter().enumerate() {
            let activation = if i + 1 < sizes.len() { Activation::Relu } else { Activation::Linear };
            layers.push(Dense::new(fan_in, size, activation, rng));
            fan_in = size;
        }
        Self { layers }
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.layers.last().map_or(0, Dense::out_dim)
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.layers.first().map_or(0, Dense::in_dim)
    }

    /// Runs every layer in order, keeping a copy of `x` (each later layer reads the previous
    /// layer's output where that layer keeps it, without a copy).
    ///
    /// # Shapes
    /// `x: (batch, in_dim)` → `(batch, out_dim)`, a view into `cache`.
    pub fn forward<'c>(&self, x: ArrayView2<'_, f32>, cache: &'c mut DenseStackCache) -> ArrayView2<'c, f32> {
        cache.layers.resize_with(self.layers.len(), DenseCache::default);
        self.layers[0].forward(x, &mut cache.layers[0]);
        self.forward_rest(cache)
    }

    /// [`Self::forward`] without the copy of `x`: the caller keeps `x` unchanged and passes it
    /// again to [`Self::backward_borrowed`] (a tower's concatenated features).
    ///
    /// # Shapes
    /// As [`Self::forward`].
    pub fn forward_borrowed<'c>(&self, x: ArrayView2<'_, f32>, cache: &'c mut DenseStackCache) -> ArrayView2<'c, f32> {
        cache.layers.resize_with(self.layers.len(), DenseCache::default);
        self.layers[0].forward_borrowed(x, &mut cache.layers[0]);
        self.forward_rest(cache)
    }

    /// Layers 1 on, each over the previous one's output.
    fn forward_rest<'c>(&self, cache: &'c mut DenseStackCache) -> ArrayView2<'c, f32> {
        for i in 1..self.layers.len() {
            let (done, todo) = cache.layers.split_at_mut(i);
            self.layers[i].forward_borrowed(done[i - 1].output(), &mut todo[0]);
        }
        cache.layers[self.layers.len() - 1].output()
    }

    /// Runs every layer's backward in reverse order, adding into `grads`; returns `dx`.
    ///
    /// # Shapes
    /// `dy: (batch, out_dim)` → `(batch, in_dim)`, a view into `cache`.
    pub fn backward<'c>(
        &self,
        cache: &'c mut DenseStackCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseStackGrads,
    ) -> ArrayView2<'c, f32> {
        self.backward_partial(cache, dy, grads, self.in_dim())
    }

    /// [`Self::backward`] with the input gradient for the first `dx_columns` input columns only
    /// (see [`Dense::backward_partial`]).
    ///
    /// # Shapes
    /// `dy: (batch, out_dim)` → `(batch, dx_columns)`, a view into `cache`.
    ///
    /// # Panics
    /// As [`Dense::backward_partial`], and after [`Self::forward_borrowed`].
    pub fn backward_partial<'c>(
        &self,
        cache: &'c mut DenseStackCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseStackGrads,
        dx_columns: usize,
    ) -> ArrayView2<'c, f32> {
        self.backward_layers(None, cache, dy, grads, dx_columns)
    }

    /// [`Self::backward_partial`] after [`Self::forward_borrowed`], given the same `x`.
    ///
    /// # Shapes
    /// `x: (batch, in_dim)`, `dy: (batch, out_dim)` → `(batch, dx_columns)`, a view into `cache`.
    ///
    /// # Panics
    /// As [`Dense::backward_borrowed`].
    pub fn backward_borrowed<'c>(
        &self,
        x: ArrayView2<'_, f32>,
        cache: &'c mut DenseStackCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseStackGrads,
        dx_columns: usize,
    ) -> ArrayView2<'c, f32> {
        self.backward_layers(Some(x), cache, dy, grads, dx_columns)
    }

    /// The layers' backward passes, last first; the first layer's input is `x` when given, else
    /// its own copy.
    fn backward_layers<'c>(
        &self,
        x: Option<ArrayView2<'_, f32>>,
        cache: &'c mut DenseStackCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut DenseStackGrads,
        dx_columns: usize,
    ) -> ArrayView2<'c, f32> {
        let n = self.layers.len();
        for i in (0..n).rev() {
            // Layer i reads the output of layer i − 1 (its input) and the input gradient of
            // layer i + 1 (the last one reads `dy`); only the first layer's own input gradient
            // may be partial.
            let (before, rest) = cache.layers.split_at_mut(i);
            let (own, after) = rest.split_first_mut().expect("a layer's cache per layer");
            let upstream = after.first().map_or(dy, DenseCache::input_grad);
            let (layer, layer_grads) = (&self.layers[i], &mut grads.layers[i]);
            match (before.last(), x) {
                (Some(previous), _) => {
                    layer.backward_borrowed(previous.output(), own, upstream, layer_grads, layer.in_dim())
                }
                (None, Some(x)) => layer.backward_borrowed(x, own, upstream, layer_grads, dx_columns),
                (None, None) => layer.backward_partial(own, upstream, layer_grads, dx_columns),
            };
        }
        cache.layers[0].input_grad()
    }
}

impl DenseStackGrads {
    /// Zero gradients shaped like `stack`.
    pub fn zeros_like(stack: &DenseStack) -> Self {
        Self { layers: stack.layers.iter().map(DenseGrads::zeros_like).collect() }
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        self.layers.iter_mut().for_each(DenseGrads::zero);
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::gradcheck::{assert_close, numeric_gradient, projection};
    use crate::init::uniform;

    fn loss(stack: &DenseStack, x: ArrayView2<'_, f32>, r: &Array2<f32>) -> f64 {
        let mut cache = DenseStackCache::default();
        let y = stack.forward(x, &mut cache);
        y.iter().zip(r).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
    }

    #[test]
    fn three_layer_gradcheck_and_accumulation() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut stack = DenseStack::new(4, &[5, 3, 2], &mut rng);
        for layer in &mut stack.layers {
            layer.b = uniform((1, layer.out_dim()), 0.3, &mut rng).row(0).to_owned();
        }
        assert_eq!(
            stack.layers.iter().map(|l| l.activation).collect::<Vec<_>>(),
            [Activation::Relu, Activation::Relu, Activation::Linear]
        );
        let x = uniform((5, 4), 1.0, &mut rng);
        let r = projection((5, 2), &mut rng);
        let mut cache = DenseStackCache::default();
        stack.forward(x.view(), &mut cache);
        let mut grads = DenseStackGrads::zeros_like(&stack);
        let dx = stack.backward(&mut cache, r.view(), &mut grads).to_owned();

        let num_dx = numeric_gradient(x.as_slice().unwrap(), 1e-3, |v| {
            loss(&stack, ArrayView2::from_shape((5, 4), v).unwrap(), &r)
        });
        assert_close("DenseStack dx", dx.as_slice().unwrap(), &num_dx, 1e-3, 1e-2);
        for i in 0..stack.layers.len() {
            let shape = stack.layers[i].w.dim();
            let num_dw = numeric_gradient(stack.layers[i].w.as_slice().unwrap(), 1e-3, |v| {
                let mut s = stack.clone();
                s.layers[i].w = Array2::from_shape_vec(shape, v.to_vec()).unwrap();
                loss(&s, x.view(), &r)
            });
            assert_close(
                &format!("DenseStack layer {i} dw"),
                grads.layers[i].dw.as_slice().unwrap(),
                &num_dw,
                1e-3,
                1e-2,
            );
            let num_db = numeric_gradient(stack.layers[i].b.as_slice().unwrap(), 1e-3, |v| {
                let mut s = stack.clone();
                s.layers[i].b = ndarray::Array1::from(v.to_vec());
                loss(&s, x.view(), &r)
            });
            assert_close(
                &format!("DenseStack layer {i} db"),
                grads.layers[i].db.as_slice().unwrap(),
                &num_db,
                1e-3,
                1e-2,
            );
        }

        let mut twice = DenseStackGrads::zeros_like(&stack);
        stack.backward(&mut cache, r.view(), &mut twice);
        stack.backward(&mut cache, r.view(), &mut twice);
        for (t, o) in twice.layers.iter().zip(&grads.layers) {
            // Two GEMM calls need not round alike (kernels differ by CPU): equal within float tolerance.
            let doubled = (&o.dw * 2.0, &o.db * 2.0);
            assert_close("dw twice", t.dw.as_slice().unwrap(), doubled.0.as_slice().unwrap(), 1e-6, 1e-6);
            assert_close("db twice", t.db.as_slice().unwrap(), doubled.1.as_slice().unwrap(), 1e-6, 1e-6);
        }
    }

    #[test]
    fn borrowed_input_gives_the_stored_path_bits() {
        let bits = |v: ndarray::ArrayView2<'_, f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let stack = DenseStack::new(37, &[32, 16], &mut rng);
        let x = uniform((50, 37), 1.0, &mut rng);
        let dy = projection((50, 16), &mut rng);
        let mut stored = DenseStackCache::default();
        let y = stack.forward(x.view(), &mut stored).to_owned();
        let mut stored_grads = DenseStackGrads::zeros_like(&stack);
        let dx = stack.backward_partial(&mut stored, dy.view(), &mut stored_grads, 30).to_owned();
        let mut borrowed = DenseStackCache::default();
        assert_eq!(bits(stack.forward_borrowed(x.view(), &mut borrowed)), bits(y.view()));
        let mut grads = DenseStackGrads::zeros_like(&stack);
        assert_eq!(bits(stack.backward_borrowed(x.view(), &mut borrowed, dy.view(), &mut grads, 30)), bits(dx.view()));
        assert_eq!(grads, stored_grads);
    }
}
