//! Keras' initialisers, drawn from an explicit seeded RNG.
//!
//! * `glorot_uniform`: `U(−L, L)`, `L = sqrt(6 / (fan_in + fan_out))` (Dense kernels).
//! * `uniform(0.05)`: `U(−0.05, 0.05)` (Keras' Embedding default).

use ndarray::Array2;
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;
use rand::Rng;

/// Keras' default `Embedding` initialiser range.
pub const EMBEDDING_INIT_RANGE: f32 = 0.05;

/// A `fan_in × fan_out` Glorot-uniform matrix.
pub fn glorot_uniform(fan_in: usize, fan_out: usize, rng: &mut impl Rng) -> Array2<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    uniform((fan_in, fan_out), limit, rng)
}

/// A matrix of `U(−limit, limit)` values.
///
/// # Panics
/// If `limit` is not positive and finite.
pub fn uniform(shape: (usize, usize), limit: f32, rng: &mut impl Rng) -> Array2<f32> {
    let distribution = Uniform::new(-limit, limit).expect("uniform: limit must be positive and finite");
    Array2::random_using(shape, distribution, rng)
}
