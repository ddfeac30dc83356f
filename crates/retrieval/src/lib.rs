//! The in-batch softmax retrieval loss of `tfrs.tasks.Retrieval`, with its gradients.
//!
//! For queries `Q (B, d)` and candidates `C (N, d)`, `N ≥ B` (rows past `B` are extra
//! negatives for every query), in the exact order of TFRS 0.7.7:
//!
//! ```text
//! S = Q·Cᵀ                                      (B, N)
//! S = S / temperature                           if a temperature is set
//! S[i, j] −= log(clip(p_j, 1e-6, 1))            logQ correction, every column
//! S[i, j] += MIN_FLOAT  where ids_j = ids_i, j ≠ i      accidental-hit removal
//! loss = Σ_i w_i · (logsumexp_j S[i, j] − S[i, i])      SUM reduction, no division by B
//! ```
//!
//! with `MIN_FLOAT = f32::MIN / 100`. The gradient is
//! `dS[i, j] = w_i · (softmax(S[i, ·])_j − 1[i = j]) / temperature`, then
//! `dQ = dS·C` and `dC = dSᵀ·Q`. The logQ and accidental-hit terms are constants and add nothing.
//!
//! The softmax subtracts each row's maximum first, so logits of 1e4 do not overflow.
//! Metrics are not computed here (see the `eval` crate).
//!
//! ```
//! use ndarray::array;
//! use retrieval::{AccidentalHits, Batch, InBatchSoftmax, LossConfig};
//! let q = array![[1.0f32, 0.0], [0.0, 1.0]];
//! let c = array![[1.0f32, 0.0], [0.0, 1.0]];
//! let mut loss = InBatchSoftmax::default();
//! let value = loss.compute(&Batch::new(q.view(), c.view()), &LossConfig::default());
//! // Each row: log(e¹ + e⁰) − 1.
//! assert!((value - 2.0 * ((1f32.exp() + 1.0).ln() - 1.0)).abs() < 1e-6);
//! assert_eq!(loss.query_grad().dim(), (2, 2));
//! # let _ = AccidentalHits::Keep;
//! ```
#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod columns_avx512;
mod frequency;
mod fused;
mod loss;
mod softmax;

pub use frequency::StreamingFrequency;
pub use loss::{AccidentalHits, Batch, InBatchSoftmax, LossConfig, SoftmaxKernel, MIN_FLOAT};
pub use softmax::{exp_columns, exp_columns_with_max, exp_row, fast_exp, RowExp};
