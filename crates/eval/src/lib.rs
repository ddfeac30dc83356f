//! Evaluation of retrieval models over the whole catalogue.
//!
//! * [`BruteForceIndex`]: exact top-k by dot product, with optional per-query exclusions,
//!   scored in blocks so that memory does not grow with the catalogue.
//! * [`true_rank`] + [`FactorizedTopK`]: `tfrs.metrics.FactorizedTopK`. A query is a hit at `k`
//!   when fewer than `k` catalogue rows score **strictly** higher than its true candidate (ties
//!   count as hits, as TF's `in_top_k`); a NaN true score is a miss.
//! * [`exact_score`]: what "score" means in every ranking here. GEMM scores only filter, with
//!   a proven error band, so ranks and top-k lists are the same on every CPU and BLAS kernel,
//!   and a duplicate of the true row ties with it exactly ([`ScoreKernel`] lets tests swap in a
//!   perturbed kernel to check that).
//! * [`popularity_scores`]: the baseline that ranks every candidate by its training count.
//! * `HnswIndex` (feature `ann`): approximate top-k by inner product on an HNSW graph, for
//!   catalogues where exact search is too slow; scores are exact, membership approximate.
//! * [`IvfIndex`]: approximate top-k by inner product with k-means lists (IVF-Flat), built in
//!   seconds and deterministic; scores exact, membership approximate.
//! * [`Ease`]: the closed-form item-item baseline of Steck (2019), for catalogues up to 20 000.
//!
//! Everything here sees arrays and row indices only: no model, no MovieLens.
//!
//! ```
//! use ndarray::array;
//! use eval::{true_rank, FactorizedTopK};
//! let catalogue = array![[1.0f32, 0.0], [0.0, 1.0], [0.7, 0.7]];
//! let queries = array![[1.0f32, 0.1], [0.0, 1.0]];
//! let ranks = true_rank(queries.view(), catalogue.view(), &[2, 1], None);
//! assert_eq!(ranks, [1, 0]);
//! let mut metric = FactorizedTopK::new(&[1, 5]);
//! metric.update(&ranks);
//! assert_eq!(metric.accuracies(), [(1, 0.5), (5, 1.0)]);
//! ```
#![warn(missing_docs)]

#[cfg(feature = "ann")]
mod ann;
mod band_scan;
mod ease;
mod exact;
mod exclusions;
mod index;
mod ivf;
mod kernel;
mod metric;
mod popularity;

#[cfg(feature = "ann")]
pub use ann::{AnnConfig, HnswIndex};
pub use ease::{Ease, EaseError, MAX_ITEMS as EASE_MAX_ITEMS};
pub use exact::exact_score;
pub use index::{BruteForceIndex, Neighbours};
pub use ivf::{IvfConfig, IvfIndex};
pub use kernel::{Gemm, Lanes, ScoreKernel};
pub use metric::{true_rank, true_rank_unfiltered_and_filtered, true_rank_with, FactorizedTopK, MISS, TFRS_KS};
pub use popularity::popularity_scores;

/// Query rows scored per block (a block of scores is `QUERY_BLOCK × CANDIDATE_BLOCK` floats).
pub(crate) const QUERY_BLOCK: usize = 512;
/// Catalogue rows scored per block.
pub(crate) const CANDIDATE_BLOCK: usize = 4096;
