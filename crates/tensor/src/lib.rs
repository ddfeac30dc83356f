//! Hand-written forward/backward pairs on ndarray: no autodiff.
//!
//! Every op follows one shape. `forward` takes its input and a cache, writes its output into
//! buffers the cache owns (reused from step to step, so the hot path does not allocate), and
//! returns a view of it. `backward` takes the cache (the proof that forward ran) and the
//! upstream gradient, **adds** the parameter gradients into a grads struct that mirrors the
//! parameters, and returns the input gradient.
//!
//! | op | forward | parameter gradient |
//! |---|---|---|
//! | [`Dense`] | `y = act(x·W + b)` | dense [`DenseGrads`] |
//! | [`DenseStack`] | ReLU after every layer but the last | one [`DenseGrads`] per layer |
//! | [`Embedding`] | `y[i] = E[ids[i]]` | row-sparse [`RowSparseGrad`] |
//! | [`TokenBag`] | masked mean of token rows | row-sparse [`RowSparseGrad`] |
//! | [`ColumnLayout`] | concatenation along columns | — |
//! | [`L2Normalize`] | `y = x / ‖x‖` per row | — (input gradient only) |
//! | [`matmul::scores`] | `S = Q·Cᵀ` | `dQ += dS·C`, `dC += dSᵀ·Q` |
//!
//! The GEMMs go through ndarray's `general_mat_mul`: with the `blas` feature that is the
//! system BLAS (`cblas_sgemm`), without it the pure-Rust `matrixmultiply`.
//!
//! ```
//! use ndarray::array;
//! use tensor::{Activation, Dense, DenseCache, DenseGrads};
//! let layer = Dense::from_weights(array![[1.0, -1.0], [0.5, 2.0]], array![0.0, 1.0], Activation::Relu);
//! let mut cache = DenseCache::default();
//! let y = layer.forward(array![[2.0, 1.0]].view(), &mut cache).to_owned();
//! assert_eq!(y, array![[2.5, 1.0]]);
//! let mut grads = DenseGrads::zeros_like(&layer);
//! let dx = layer.backward(&mut cache, array![[1.0, 1.0]].view(), &mut grads);
//! assert_eq!(dx, array![[0.0, 2.5]]);
//! ```
#![warn(missing_docs)]

mod buffer;
mod column_sums;
mod concat;
mod dense;
mod embedding;
pub mod fma_peak;
#[cfg(any(test, feature = "test-utils"))]
pub mod gradcheck;
pub mod init;
mod l2norm;
pub mod lanes;
pub mod matmul;
mod pooling;
pub mod prefetch;
mod sparse;
mod stack;

pub use ndarray;
pub use rand;

pub use buffer::Buffer;
pub use concat::ColumnLayout;
pub use dense::{relu_backward_in_place, relu_in_place, Activation, Dense, DenseCache, DenseGrads};
pub use embedding::{Embedding, EmbeddingCache};
pub use l2norm::{L2Normalize, L2NormalizeCache, L2_EPSILON};
pub use pooling::{Bags, TokenBag, TokenBagCache};
pub use sparse::RowSparseGrad;
pub use stack::{DenseStack, DenseStackCache, DenseStackGrads};

// Links the OpenBLAS provider when the `blas` feature routes ndarray's GEMMs to cblas.
#[cfg(feature = "blas")]
#[allow(unused_extern_crates)]
extern crate blas_src;
