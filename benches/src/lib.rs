//! Shared fixtures for the benchmarks: seeded synthetic data shaped like MovieLens 100k, the
//! deep [64, 32] configuration, and the pure-Rust GEMM used as the no-BLAS comparison.

use movielens::split::Split;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use towers::Vocabularies;
use train::{Encoded, Experiment, Trainer, ValidTrainConfig};

/// MovieLens 100k's shape: users, movie rows, titles, tokens, ratings.
pub const N_USERS: usize = 943;
/// Catalogue rows.
pub const N_MOVIES: usize = 1682;
/// Ratings.
pub const N_RATINGS: usize = 100_000;
/// Title-token vocabulary (padding and `[UNK]` included).
pub const N_TOKENS: usize = 2468;
/// Timestamp buckets.
pub const N_BUCKETS: usize = 1001;

/// Seeded synthetic ratings with MovieLens 100k's sizes and a skewed (Zipf-like) popularity.
pub fn synthetic_data(seed: u64) -> Encoded {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let popular = |rng: &mut ChaCha8Rng| ((rng.random::<f64>().powi(3)) * N_MOVIES as f64) as u32;
    let movie_tokens: Vec<Vec<u32>> = (0..N_MOVIES)
        .map(|_| (0..rng.random_range(1..8)).map(|_| rng.random_range(2..N_TOKENS as u32)).collect())
        .collect();
    Encoded {
        user: (0..N_RATINGS).map(|_| rng.random_range(1..=N_USERS as u32)).collect(),
        bucket: (0..N_RATINGS).map(|_| rng.random_range(1..N_BUCKETS as u32)).collect(),
        normalized_timestamp: (0..N_RATINGS).map(|_| rng.random_range(-1.7f32..1.8)).collect(),
        movie_row: (0..N_RATINGS).map(|_| popular(&mut rng)).collect(),
        movie_title: (0..N_MOVIES as u32).map(|m| m + 1).collect(),
        movie_tokens,
        movie_name: (0..N_MOVIES).map(|m| format!("movie {m}")).collect(),
    }
}

/// Embedding table sizes matching [`synthetic_data`].
pub fn vocabularies() -> Vocabularies {
    Vocabularies { n_users: N_USERS + 1, n_buckets: N_BUCKETS, n_titles: N_MOVIES + 1, n_tokens: N_TOKENS }
}

/// The deep-retrieval tutorial's [64, 32] configuration.
pub fn deep_config(epochs: usize) -> ValidTrainConfig {
    let mut config = Experiment::Deep2.config(42);
    config.epochs = epochs;
    config.validation_freq = None;
    config.validate().expect("the tutorial configuration is valid")
}

/// A trainer for the deep [64, 32] model.
pub fn deep_trainer() -> Trainer {
    Trainer::new(deep_config(1), vocabularies())
}

/// An 80/20 split of the synthetic ratings.
pub fn split() -> Split {
    Split::seeded(N_RATINGS, 42, 0.8)
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
