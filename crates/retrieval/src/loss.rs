//! `InBatchSoftmax`: the loss of `tfrs.tasks.Retrieval` and its gradients, with reusable buffers.

use ndarray::{s, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tensor::matmul::{scores, scores_backward_row_scaled, RowScaledScratch};
use tensor::Buffer;

use crate::softmax::exp_row;

/// TFRS's `MIN_FLOAT = np.finfo(np.float32).min / 100`, added to accidental-hit logits.
pub const MIN_FLOAT: f32 = f32::MIN / 100.0;
/// Lower clip of candidate sampling probabilities before the log (TFRS).
const MIN_PROBABILITY: f32 = 1e-6;
/// Below this many logits the softmax runs on the calling thread only.
const PARALLEL_MIN_LOGITS: usize = 1 << 16;
/// Logits per block of query rows (16 MiB of f32). A whole 2048 × 2048 batch is one block:
/// smaller blocks (256 or 512 rows, cache-resident) measured slower here, as OpenBLAS loses
/// more to the smaller GEMMs than the cache saves (`cargo bench -- train_step`: 15.8 ms at
/// 256 rows, 13.3 ms at 512, 13.0 ms unblocked). Blocks only bound memory for very wide
/// catalogues.
const LOGIT_BLOCK_ELEMENTS: usize = 1 << 22;
/// The smallest block of query rows, so that very wide catalogues still get useful GEMMs.
const MIN_BLOCK_ROWS: usize = 32;

/// Constants of the loss (TFRS constructor arguments).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossConfig {
    /// Divide the logits by this before the softmax; `None` means 1.
    pub temperature: Option<f32>,
}

/// Whether in-batch candidates equal to the positive are masked out of the negatives.
/// The ids belong to the variant: removal without ids cannot be written.
#[derive(Debug, Clone, Copy, Default)]
pub enum AccidentalHits<'a> {
    /// Keep every in-batch candidate as a negative (TFRS's default).
    #[default]
    Keep,
    /// Give candidates whose id equals row `i`'s positive id (other than column `i`) the logit
    /// bonus [`MIN_FLOAT`], which removes them from the softmax.
    Remove {
        /// One id per candidate, `(N)`.
        candidate_ids: &'a [u32],
    },
}

/// The values of one batch.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Query embeddings, `(B, d)`.
    pub query: ArrayView2<'a, f32>,
    /// Candidate embeddings, `(N, d)` with `N ≥ B`; row `i < B` is query `i`'s positive.
    pub candidate: ArrayView2<'a, f32>,
    /// Per-query weights `w_i`, `(B)`; `None` means all 1.
    pub sample_weight: Option<&'a [f32]>,
    /// Candidate sampling probabilities `p_j` for the logQ correction, `(N)`.
    pub candidate_sampling_probability: Option<&'a [f32]>,
    /// Accidental-hit handling.
    pub accidental_hits: AccidentalHits<'a>,
}

impl<'a> Batch<'a> {
    /// A batch with no weights, no logQ correction and accidental hits kept.
    pub fn new(query: ArrayView2<'a, f32>, candidate: ArrayView2<'a, f32>) -> Self {
        Self {
            query,
            candidate,
            sample_weight: None,
            candidate_sampling_probability: None,
            accidental_hits: AccidentalHits::Keep,
        }
    }
}

/// The loss with its gradient buffers, reused from batch to batch.
#[derive(Debug, Clone, Default)]
pub struct InBatchSoftmax {
    /// Logits of one block of query rows, then `exp(S − rowmax)`, `(block, N)`: the only
    /// O(batch · N) memory, at most `LOGIT_BLOCK_ELEMENTS` (16 MiB) for any `N ≤ 131 072`.
    logits: Buffer,
    /// `dQ`, `(B, d)`.
    dquery: Buffer,
    /// `dC`, `(N, d)`.
    dcandidate: Buffer,
    /// Scratch of the backward GEMMs.
    scratch: RowScaledScratch,
    /// Per-row weighted losses, `(B)`.
    row_losses: Vec<f64>,
    /// Per-row gradient scale `w_i / (temperature · Σ_j exp(S_ij − max_i))`, `(B)`.
    row_scale: Vec<f32>,
}

impl InBatchSoftmax {
    /// Computes the summed loss and stores `dQ`, `dC` (read them with [`Self::query_grad`] and
    /// [`Self::candidate_grad`]).
    ///
    /// # Panics
    /// If the shapes disagree: `N < B`, different `d`, or weights/probabilities/ids of the
    /// wrong length.
    #[track_caller]
    pub fn compute(&mut self, batch: &Batch<'_>, config: &LossConfig) -> f32 {
        let (n_queries, dim) = batch.query.dim();
        let n_candidates = batch.candidate.nrows();
        assert!(
            n_candidates >= n_queries,
            "InBatchSoftmax: {n_candidates} candidates for {n_queries} queries; need N ≥ B"
        );
        assert_eq!(
            batch.candidate.ncols(),
            dim,
            "InBatchSoftmax: query dim {dim}, candidate dim {}",
            batch.candidate.ncols()
        );
        if let Some(w) = batch.sample_weight {
            assert_eq!(w.len(), n_queries, "InBatchSoftmax: {} weights for {n_queries} queries", w.len());
        }
        if let Some(p) = batch.candidate_sampling_probability {
            assert_eq!(
                p.len(),
                n_candidates,
                "InBatchSoftmax: {} probabilities for {n_candidates} candidates",
                p.len()
            );
        }
        if let AccidentalHits::Remove { candidate_ids } = batch.accidental_hits {
            assert_eq!(
                candidate_ids.len(),
                n_candidates,
                "InBatchSoftmax: {} ids for {n_candidates} candidates",
                candidate_ids.len()
            );
        }

        let inv_temperature = config.temperature.map_or(1.0, |t| 1.0 / t);
        let weight_of = |i: usize| batch.sample_weight.map_or(1.0, |w| w[i]);
        self.row_losses.resize(n_queries, 0.0);
        self.row_scale.resize(n_queries, 0.0);
        self.dquery.reshape_zeroed(n_queries, dim);
        self.dcandidate.reshape_zeroed(n_candidates, dim);
        let (mut dquery, mut dcandidate) = (self.dquery.view_mut(), self.dcandidate.view_mut());
        // Blocks of query rows: each block's logits are scored, exponentiated and consumed by the
        // backward GEMMs while they are still in cache.
        let block_rows = (LOGIT_BLOCK_ELEMENTS / n_candidates.max(1)).max(MIN_BLOCK_ROWS);
        for start in (0..n_queries).step_by(block_rows) {
            let end = (start + block_rows).min(n_queries);
            let query_block = batch.query.slice(s![start..end, ..]);
            self.logits.reshape(end - start, n_candidates);
            scores(query_block, batch.candidate, &mut self.logits.view_mut());
            let row_loss = |(offset, (row, (loss, scale))): (usize, (&mut [f32], (&mut f64, &mut f32)))| {
                let i = start + offset;
                if let Some(t) = config.temperature {
                    row.iter_mut().for_each(|v| *v /= t);
                }
                if let Some(p) = batch.candidate_sampling_probability {
                    row.iter_mut().zip(p).for_each(|(v, &p)| *v -= p.clamp(MIN_PROBABILITY, 1.0).ln());
                }
                if let AccidentalHits::Remove { candidate_ids } = batch.accidental_hits {
                    let own = candidate_ids[i];
                    for (j, (v, &id)) in row.iter_mut().zip(candidate_ids).enumerate() {
                        if id == own && j != i {
                            *v += MIN_FLOAT;
                        }
                    }
                }
                let positive_logit = row[i];
                let exp = exp_row(row);
                let weight = weight_of(i);
                *loss = f64::from(weight) * (exp.logsumexp() - f64::from(positive_logit));
                *scale = weight * inv_temperature / exp.sum;
            };
            let width = n_candidates.max(1);
            let (losses, scales) = (&mut self.row_losses[start..end], &mut self.row_scale[start..end]);
            if (end - start) * n_candidates >= PARALLEL_MIN_LOGITS {
                let per_row = losses.par_iter_mut().zip(scales.par_iter_mut());
                self.logits.as_slice_mut().par_chunks_mut(width).zip(per_row).enumerate().for_each(row_loss);
            } else {
                let per_row = losses.iter_mut().zip(scales.iter_mut());
                self.logits.as_slice_mut().chunks_mut(width).zip(per_row).enumerate().for_each(row_loss);
            }
            // dS = diag(row_scale)·E − diag(w / temperature) on the positives; the first term
            // goes through the GEMMs, the second is added row by row below.
            scores_backward_row_scaled(
                query_block,
                batch.candidate,
                self.logits.view(),
                &self.row_scale[start..end],
                &mut dquery.slice_mut(s![start..end, ..]),
                &mut dcandidate,
                &mut self.scratch,
            );
        }
        for i in 0..n_queries {
            let positive = -weight_of(i) * inv_temperature;
            dquery.row_mut(i).scaled_add(positive, &batch.candidate.row(i));
            dcandidate.row_mut(i).scaled_add(positive, &batch.query.row(i));
        }
        self.row_losses.iter().sum::<f64>() as f32
    }

    /// `∂loss/∂Q` of the last [`Self::compute`], `(B, d)`.
    pub fn query_grad(&self) -> ArrayView2<'_, f32> {
        self.dquery.view()
    }

    /// `∂loss/∂C` of the last [`Self::compute`], `(N, d)`.
    pub fn candidate_grad(&self) -> ArrayView2<'_, f32> {
        self.dcandidate.view()
    }
}
