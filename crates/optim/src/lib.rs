//! Adagrad with the Keras defaults (tf-keras 2.x "new" optimizer):
//!
//! ```text
//! acc ← acc + g²
//! θ   ← θ − (lr · g) / sqrt(acc + ε)
//! ```
//!
//! with every accumulator starting at `initial_accumulator_value = 0.1` and `ε = 1e-7`. No
//! momentum, no decay, no bias correction.
//!
//! Two entry points: [`Adagrad::step_dense`] for dense parameters and [`Adagrad::step_rows`] for
//! embedding tables with a [`RowSparseGrad`], which reads and writes only the touched rows
//! (duplicates were already summed), so untouched rows keep their value and accumulator bit for bit.
//!
//! ```
//! use ndarray::array;
//! use optim::{Adagrad, AdagradConfig, AdagradState};
//! let adagrad = Adagrad::new(AdagradConfig { learning_rate: 0.1, ..AdagradConfig::default() });
//! let mut w = array![1.0f32, 2.0];
//! let mut state = AdagradState::new(&w, &adagrad);
//! adagrad.step_dense(&mut w, &array![1.0, 0.0], &mut state);
//! assert_eq!(w[1], 2.0);
//! assert!((w[0] - (1.0 - 0.1 / 1.1f32.sqrt())).abs() < 1e-7);
//! ```
#![warn(missing_docs)]

use ndarray::{Array, Array2, Dimension, Zip};
use serde::{Deserialize, Serialize};
use tensor::prefetch::{prefetch, ROWS_AHEAD};
use tensor::RowSparseGrad;

/// Adagrad's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdagradConfig {
    /// Step size. Keras' default is 0.001; the TFRS tutorials use 0.1.
    pub learning_rate: f32,
    /// Starting value of every accumulator (Keras: 0.1).
    pub initial_accumulator_value: f32,
    /// Added inside the square root (Keras: 1e-7).
    pub epsilon: f32,
}

impl Default for AdagradConfig {
    /// The Keras defaults: `learning_rate = 0.001`, `initial_accumulator_value = 0.1`, `epsilon = 1e-7`.
    fn default() -> Self {
        Self { learning_rate: 0.001, initial_accumulator_value: 0.1, epsilon: 1e-7 }
    }
}

/// The optimizer (stateless; per-parameter state lives in [`AdagradState`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Adagrad {
    /// Hyperparameters.
    pub config: AdagradConfig,
}

/// Per-parameter accumulators, shaped like the parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdagradState<D: Dimension> {
    /// `Σ g²` plus the initial value, element-wise.
    pub accumulator: Array<f32, D>,
}

impl<D: Dimension> AdagradState<D> {
    /// Fresh accumulators for `param`.
    pub fn new(param: &Array<f32, D>, adagrad: &Adagrad) -> Self {
        Self { accumulator: Array::from_elem(param.raw_dim(), adagrad.config.initial_accumulator_value) }
    }
}

impl Adagrad {
    /// An optimizer with these hyperparameters.
    pub fn new(config: AdagradConfig) -> Self {
        Self { config }
    }

    /// One step on every element of `param`.
    ///
    /// # Panics
    /// If `grad` or the state differ in shape from `param`.
    #[track_caller]
    pub fn step_dense<D: Dimension>(
        &self,
        param: &mut Array<f32, D>,
        grad: &Array<f32, D>,
        state: &mut AdagradState<D>,
    ) {
        assert_eq!(param.shape(), grad.shape(), "Adagrad::step_dense: gradient shape");
        assert_eq!(param.shape(), state.accumulator.shape(), "Adagrad::step_dense: state shape");
        let AdagradConfig { learning_rate, epsilon, .. } = self.config;
        Zip::from(param).and(grad).and(&mut state.accumulator).for_each(|w, &g, acc| {
            *acc += g * g;
            *w -= learning_rate * g / (*acc + epsilon).sqrt();
        });
    }

    /// One step on the rows of `table` present in `grad`; other rows are not touched.
    ///
    /// # Panics
    /// If `grad` or the state do not match the table's shape.
    #[track_caller]
    pub fn step_rows(&self, table: &mut Array2<f32>, grad: &RowSparseGrad, state: &mut AdagradState<ndarray::Ix2>) {
        assert_eq!((grad.n_rows(), grad.dim()), table.dim(), "Adagrad::step_rows: gradient for a different table");
        assert_eq!(table.dim(), state.accumulator.dim(), "Adagrad::step_rows: state shape");
        let dim = table.ncols();
        let (Some(weights), Some(accumulators)) = (table.as_slice_mut(), state.accumulator.as_slice_mut()) else {
            panic!("Adagrad::step_rows: the table and its accumulator must be in standard layout");
        };
        let rows = SparseRows { grad, dim, config: self.config };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            #[allow(unsafe_code)]
            unsafe {
                rows.apply_avx2(weights, accumulators)
            };
            return;
        }
        rows.apply(weights, accumulators);
    }
}

/// The touched rows of one table's step, applied through flat slices so that each row's update
/// compiles to vector code. Square root and division are correctly rounded in every width, so
/// the AVX2 build gives the same bits as the portable one.
struct SparseRows<'a> {
    grad: &'a RowSparseGrad,
    dim: usize,
    config: AdagradConfig,
}

impl SparseRows<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn apply_avx2(&self, weights: &mut [f32], accumulators: &mut [f32]) {
        self.apply(weights, accumulators);
    }

    #[inline(always)]
    fn apply(&self, weights: &mut [f32], accumulators: &mut [f32]) {
        let AdagradConfig { learning_rate, epsilon, .. } = self.config;
        let dim = self.dim;
        let rows = self.grad.rows();
        for (i, &row) in rows.iter().enumerate() {
            // The touched rows are scattered over tables that outgrow the caches at scale.
            if let Some(&ahead) = rows.get(i + ROWS_AHEAD) {
                let ahead = ahead as usize * dim..(ahead as usize + 1) * dim;
                prefetch(&weights[ahead.clone()]);
                prefetch(&accumulators[ahead]);
            }
            let span = row as usize * dim..(row as usize + 1) * dim;
            let (w_row, acc_row) = (&mut weights[span.clone()], &mut accumulators[span]);
            for ((w, acc), &g) in w_row.iter_mut().zip(acc_row.iter_mut()).zip(self.grad.row_grad(i)) {
                *acc += g * g;
                *w -= learning_rate * g / (*acc + epsilon).sqrt();
            }
        }
    }
}
