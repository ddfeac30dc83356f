//! The fused in-batch softmax: scores, softmax and both backward products over blocks of up to
//! [`BLOCK_ROWS`] queries whose logits never leave the L2 cache.
//!
//! For a block of queries `Q_b (r, d)` against all candidates `C (N, d)`, held candidate-major
//! so that one query's logits form one column:
//!
//! ```text
//! Eᵀ  = C · (Q_b / T)ᵀ + bias_j (logQ)        (N, r)   lane_gemm_column_max (max per column)
//! Eᵀ += MIN_FLOAT (accidental hits)                    then exp_columns finds the max instead
//! Eᵀ  = exp(Eᵀ − max per column), sums s_i   (N, r)   exp_columns_with_max
//! loss_i = w_i · (max_i + ln s_i − S_ii)
//! a_i = w_i / (T · s_i)
//! dQ_b += diag(a) · (Eᵀ)ᵀ · C                (r, d)   lane_gemm
//! dC   += Eᵀ · (diag(a) · Q_b)               (N, d)   lane_gemm, into this half's own dC
//! ```
//!
//! With `N = 2048` and `r = 48` the block is 384 KiB: the three products read it from L2 instead
//! of writing and re-reading a `(B, N)` matrix through memory, and no operand is repacked per
//! block (`C` is padded once per batch, only when `d` is not a multiple of 16). The `−w_i/T`
//! positive terms are added by the caller, as on the GEMM path.

use ndarray::{s, ArrayView2, ArrayViewMut2};
use tensor::lanes::{lane_gemm, lane_gemm_column_max, lane_gemm_row_bias, LANES};
use tensor::Buffer;

use crate::loss::{AccidentalHits, Batch, MIN_FLOAT};
use crate::softmax::{exp_columns, exp_columns_with_max};

/// Queries per block at most: a multiple of 16 whose candidate-major block of a
/// 2048-candidate batch (384 KiB), with `C` and this half's `dC` (256 KiB each at d = 32),
/// fits a 1 MiB L2.
pub(crate) const BLOCK_ROWS: usize = 48;
/// Bytes of logits a block may hold: wider batches (mixed negatives, batch 8192) get fewer
/// queries per block, down to one lane group of 16.
const BLOCK_BYTES: usize = 48 * 2048 * 4;

/// Queries per block for `n_candidates` candidates: [`BLOCK_ROWS`], fewer (a multiple of 16,
/// at least 16) when the block would pass [`BLOCK_BYTES`].
pub(crate) fn block_rows(n_candidates: usize) -> usize {
    let fitting = BLOCK_BYTES / (4 * n_candidates.max(1)) / LANES * LANES;
    fitting.clamp(LANES, BLOCK_ROWS)
}

/// What both halves read: the candidates padded to whole lanes and the per-candidate bias.
pub(crate) struct FusedShared<'a, 'b> {
    pub(crate) batch: &'a Batch<'b>,
    /// `C` with `d` padded to a multiple of [`LANES`], `(N, d_pad)`.
    pub(crate) candidates: ArrayView2<'a, f32>,
    /// `−ln clip(p_j)`, `(N)`, when the logQ correction is on.
    pub(crate) log_q: Option<&'a [f32]>,
    pub(crate) inv_temperature: f32,
}

/// The buffers of one half of the query rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct FusedHalf {
    /// The block's queries transposed and divided by the temperature, `(d_pad, r_pad)`.
    queries_t: Buffer,
    /// Candidate-major logits of the block, then their exponentials, `(N, r_pad)`.
    logits_t: Buffer,
    /// Per-query column maxima and sums of the block, `(r_pad)`.
    max: Vec<f32>,
    sum: Vec<f32>,
    /// The block's positive logits `S_ii`, `(r)`.
    positive: Vec<f32>,
    /// `diag(a)·Q_b`, `(r_pad, d_pad)`, zero in padded rows and columns.
    scaled_queries: Buffer,
    /// `(Eᵀ)ᵀ·C` of the block, `(r_pad, d_pad)`.
    dquery_block: Buffer,
    /// This half's contribution to `dC`, `(N, d_pad)`.
    pub(crate) dcandidate: Buffer,
}

impl FusedHalf {
    /// Loss terms, row scales and `dQ` rows of query rows `rows`, and their `dC` contribution in
    /// `self.dcandidate`, block by block on the calling thread.
    pub(crate) fn run(
        &mut self,
        shared: &FusedShared<'_, '_>,
        rows: std::ops::Range<usize>,
        losses: &mut [f64],
        scales: &mut [f32],
        mut dquery: ArrayViewMut2<'_, f32>,
    ) {
        let (n_candidates, padded_dim) = shared.candidates.dim();
        self.dcandidate.reshape_zeroed(n_candidates, padded_dim);
        let block_rows = block_rows(n_candidates);
        for start in (rows.start..rows.end).step_by(block_rows) {
            let end = (start + block_rows).min(rows.end);
            let local = start - rows.start..end - rows.start;
            self.block(shared, start..end, &mut losses[local.clone()], &mut scales[local.clone()]);
            // dQ_i += a_i·(the block's row), each term rounded before the sum (as `scaled_add`).
            let dim = dquery.ncols();
            // (`max(1)`: with embeddings of width 0 every slice here is empty.)
            let padded_dim = self.dquery_block.view().ncols().max(1);
            let block_rows = self.dquery_block.as_slice().chunks_exact(padded_dim);
            let mut rows_out = dquery.slice_mut(s![local.clone(), ..]);
            let rows_out = rows_out.as_slice_mut().expect("the query gradient is row-major");
            for ((out, block_row), &scale) in rows_out.chunks_exact_mut(dim.max(1)).zip(block_rows).zip(&scales[local])
            {
                out.iter_mut().zip(&block_row[..dim]).for_each(|(o, &v)| *o += scale * v);
            }
        }
    }

    /// One block of queries `block`: its losses and scales, `dquery_block`, and `dC`.
    fn block(
        &mut self,
        shared: &FusedShared<'_, '_>,
        block: std::ops::Range<usize>,
        losses: &mut [f64],
        scales: &mut [f32],
    ) {
        let batch = shared.batch;
        let (n_candidates, padded_dim) = shared.candidates.dim();
        let dim = batch.query.ncols();
        let rows = block.len();
        let padded_rows = rows.div_ceil(LANES) * LANES;

        self.queries_t.reshape_zeroed(padded_dim, padded_rows);
        let queries_t = self.queries_t.as_slice_mut();
        for (i, query) in batch.query.slice(s![block.clone(), ..]).rows().into_iter().enumerate() {
            for (k, &v) in query.iter().enumerate() {
                queries_t[k * padded_rows + i] = v * shared.inv_temperature;
            }
        }
        self.logits_t.reshape(n_candidates, padded_rows);
        self.max.resize(padded_rows, 0.0);
        self.sum.resize(padded_rows, 0.0);
        // The logQ bias of candidate j is added to row j as the product's tiles are stored, and
        // each column's max is found there too unless accidental hits will change the logits.
        let maxima_known = match batch.accidental_hits {
            AccidentalHits::Keep => {
                let (candidates, queries_t) = (shared.candidates, self.queries_t.view());
                lane_gemm_column_max(candidates, queries_t, shared.log_q, &mut self.max, &mut self.logits_t.view_mut());
                true
            }
            AccidentalHits::Remove { .. } => {
                match shared.log_q {
                    Some(log_q) => lane_gemm_row_bias(
                        shared.candidates,
                        self.queries_t.view(),
                        log_q,
                        &mut self.logits_t.view_mut(),
                    ),
                    None => lane_gemm(shared.candidates, self.queries_t.view(), 0.0, &mut self.logits_t.view_mut()),
                }
                false
            }
        };

        let logits = self.logits_t.as_slice_mut();
        if let AccidentalHits::Remove { candidate_ids } = batch.accidental_hits {
            let own = &candidate_ids[block.clone()];
            for (j, (row, &id)) in logits.chunks_exact_mut(padded_rows).zip(candidate_ids).enumerate() {
                for (i, (v, &own_id)) in row.iter_mut().zip(own).enumerate() {
                    if own_id == id && j != block.start + i {
                        *v += MIN_FLOAT;
                    }
                }
            }
        }
        self.positive.clear();
        self.positive.extend((0..rows).map(|i| logits[(block.start + i) * padded_rows + i]));
        if maxima_known {
            exp_columns_with_max(logits, padded_rows, &self.max, &mut self.sum);
        } else {
            exp_columns(logits, padded_rows, &mut self.max, &mut self.sum);
        }
        for (i, (loss, scale)) in losses.iter_mut().zip(scales.iter_mut()).enumerate() {
            let weight = batch.sample_weight.map_or(1.0, |w| w[block.start + i]);
            let logsumexp = f64::from(self.max[i]) + f64::from(self.sum[i]).ln();
            *loss = f64::from(weight) * (logsumexp - f64::from(self.positive[i]));
            *scale = weight * shared.inv_temperature / self.sum[i];
        }

        self.scaled_queries.reshape_zeroed(padded_rows, padded_dim);
        let scaled = self.scaled_queries.as_slice_mut().chunks_exact_mut(padded_dim.max(1));
        for ((scaled, query), &scale) in scaled.zip(batch.query.slice(s![block, ..]).rows()).zip(&*scales) {
            // 0 + a_i·q_i, as `scaled_add` into the zeroed row formed it.
            scaled[..dim].iter_mut().zip(query).for_each(|(o, &v)| *o += scale * v);
        }
        self.dquery_block.reshape(padded_rows, padded_dim);
        let logits_t = self.logits_t.view();
        lane_gemm(logits_t.t(), shared.candidates, 0.0, &mut self.dquery_block.view_mut());
        lane_gemm(logits_t, self.scaled_queries.view(), 1.0, &mut self.dcandidate.view_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_shrink_for_wide_batches_but_keep_one_lane_group() {
        assert_eq!(block_rows(2048), 48);
        assert_eq!(block_rows(10), 48);
        assert_eq!(block_rows(2560), 32);
        assert_eq!(block_rows(8704), 16);
        assert_eq!(block_rows(1_000_000), 16);
    }
}
