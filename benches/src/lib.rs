//! Shared fixtures for the benchmarks: seeded synthetic data shaped like MovieLens 100k, the
//! deep [64, 32] configuration, and the pure-Rust GEMM used as the no-BLAS comparison.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use train::synthetic::{Synthetic, SyntheticSpec};
use train::{Experiment, Trainer, ValidTrainConfig};

/// Catalogue rows of MovieLens 100k.
pub const N_MOVIES: usize = 1682;

/// Seeded synthetic ratings with MovieLens 100k's sizes, encoded for the deep [64, 32] spec,
/// with a seeded 80/20 split.
pub fn synthetic_data(seed: u64) -> Synthetic {
    SyntheticSpec::MOVIELENS_100K.prepare(seed, &Experiment::Deep2.config(42))
}

/// The deep-retrieval tutorial's [64, 32] configuration.
pub fn deep_config(epochs: usize) -> ValidTrainConfig {
    let mut config = Experiment::Deep2.config(42);
    config.epochs = epochs;
    config.validation_freq = None;
    config.validate().expect("the tutorial configuration is valid")
}

/// A trainer for the deep [64, 32] model on `data`.
pub fn deep_trainer(data: &Synthetic) -> Trainer {
    Trainer::new(deep_config(1), data.model.clone())
}

/// A `U(−1, 1)` matrix.
pub fn random_matrix(shape: (usize, usize), seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

/// `C = A·B` with the pure-Rust `matrixmultiply` kernel, whatever ndarray is routed to.
///
/// # Panics
/// On mismatched shapes.
pub fn matrixmultiply_gemm(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: &mut ArrayViewMut2<'_, f32>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "matrixmultiply_gemm: inner dimensions");
    assert_eq!(c.dim(), (m, n), "matrixmultiply_gemm: output shape");
    let (ars, acs) = (a.strides()[0], a.strides()[1]);
    let (brs, bcs) = (b.strides()[0], b.strides()[1]);
    let (crs, ccs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides describe live ndarray views of exactly (m, k), (k, n) and
    // (m, n) elements, checked above; `c` is uniquely borrowed and does not alias `a` or `b`.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), ars, acs, b.as_ptr(), brs, bcs, 0.0, c.as_mut_ptr(), crs, ccs);
    }
}
