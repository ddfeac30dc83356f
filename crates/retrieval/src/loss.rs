//! `InBatchSoftmax`: the loss of `tfrs.tasks.Retrieval` and its gradients, with reusable buffers.

use ndarray::{s, ArrayView2, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};
use tensor::lanes::LANES;
use tensor::matmul::{scores, scores_backward_row_scaled, Parallelism, RowScaledLogits, RowScaledScratch};
use tensor::Buffer;

use crate::fused::{FusedHalf, FusedShared};
use crate::softmax::exp_row;

/// TFRS's `MIN_FLOAT = np.finfo(np.float32).min / 100`, added to accidental-hit logits.
pub const MIN_FLOAT: f32 = f32::MIN / 100.0;
/// Lower clip of candidate sampling probabilities before the log (TFRS).
const MIN_PROBABILITY: f32 = 1e-6;
/// Below this many logits the batch is not split into two concurrent halves.
const PARALLEL_MIN_LOGITS: usize = 1 << 16;
/// Logits per block of a half's query rows (16 MiB of f32): each half of a 2048 × 2048 batch
/// is one block. Smaller, cache-resident blocks measured slower (`cargo bench -- train_step`,
/// before the split into halves: 15.8 ms at 256 rows, 13.3 ms at 512, 13.0 ms unblocked), as
/// the GEMMs lose more than the cache saves. Blocks only bound memory for very wide catalogues.
const LOGIT_BLOCK_ELEMENTS: usize = 1 << 22;
/// The smallest block of query rows, so that very wide catalogues still get useful GEMMs.
const MIN_BLOCK_ROWS: usize = 32;

/// Constants of the loss (TFRS constructor arguments).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossConfig {
    /// Divide the logits by this before the softmax; `None` means 1.
    pub temperature: Option<f32>,
    /// TFRS `num_hard_negatives = h`: each row's softmax keeps its positive and only the `h`
    /// largest other logits (after temperature, logQ and accidental hits; ties by lower column,
    /// as `top_k`). `None` keeps every candidate.
    #[serde(default)]
    pub num_hard_negatives: Option<usize>,
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

/// How [`InBatchSoftmax`] computes the score products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SoftmaxKernel {
    /// Scores, softmax and both backward products per block of 48 queries, with the logits
    /// kept in cache (`tensor::lanes`). Falls back to [`SoftmaxKernel::Gemm`] when hard
    /// negatives are selected, which need whole rows.
    #[default]
    Fused,
    /// Three `general_mat_mul` products (BLAS `sgemm` with the `blas` feature) over each
    /// half's `(B/2, N)` logits.
    Gemm,
}

/// The loss with its gradient buffers, reused from batch to batch.
#[derive(Debug, Clone, Default)]
pub struct InBatchSoftmax {
    /// How the score products run.
    kernel: SoftmaxKernel,
    /// Buffers of the two halves of the query rows on the GEMM path, which run concurrently.
    halves: [HalfBuffers; 2],
    /// Buffers of the two halves on the fused path.
    fused_halves: [FusedHalf; 2],
    /// `C` padded to whole lanes for the fused path, `(N, d_pad)`, when `d` is not a multiple
    /// of 16.
    padded_candidates: Buffer,
    /// `−ln clip(p_j)` for the fused path, `(N)`.
    log_q: Vec<f32>,
    /// `dQ`, `(B, d)`.
    dquery: Buffer,
    /// `dC`, `(N, d)`: the halves' contributions summed in a fixed order.
    dcandidate: Buffer,
    /// Per-row weighted losses, `(B)`.
    row_losses: Vec<f64>,
    /// Per-row gradient scale `w_i / (temperature · Σ_j exp(S_ij − max_i))`, `(B)`.
    row_scale: Vec<f32>,
}

/// What one half of the query rows needs.
#[derive(Debug, Clone, Default)]
struct HalfBuffers {
    /// Logits of a block of this half's rows, then `exp(S − rowmax)`, `(block, N)`: with the
    /// other half's, the only O(batch · N) memory.
    logits: Buffer,
    /// Scratch of the backward GEMMs.
    scratch: RowScaledScratch,
    /// Scratch of the hard-negative selection: `(logit, column)` of one row's negatives.
    negatives: Vec<(f32, u32)>,
    /// This half's contribution to `dC`, `(N, d)`.
    dcandidate: Buffer,
}

/// The values a half needs to read, shared by both halves.
struct Shared<'a, 'b> {
    batch: &'a Batch<'b>,
    temperature: Option<f32>,
    num_hard_negatives: Option<usize>,
}

impl InBatchSoftmax {
    /// A loss whose score products run on `kernel`.
    pub fn with_kernel(kernel: SoftmaxKernel) -> Self {
        Self { kernel, ..Self::default() }
    }

    /// The kernel the score products run on.
    pub fn kernel(&self) -> SoftmaxKernel {
        self.kernel
    }

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

        self.row_losses.resize(n_queries, 0.0);
        self.row_scale.resize(n_queries, 0.0);
        self.dquery.reshape_zeroed(n_queries, dim);
        let shared = Shared { batch, temperature: config.temperature, num_hard_negatives: config.num_hard_negatives };
        // Two halves of the query rows, each scored, exponentiated and pushed through the
        // backward GEMMs on its own thread; small batches stay in one piece. The split depends
        // only on the sizes, so the numbers do not depend on the thread count.
        let split =
            if n_queries >= 2 && n_queries * n_candidates >= PARALLEL_MIN_LOGITS { n_queries / 2 } else { n_queries };
        let (losses_top, losses_bottom) = self.row_losses.split_at_mut(split);
        let (scales_top, scales_bottom) = self.row_scale.split_at_mut(split);
        let (dquery_top, dquery_bottom) = self.dquery.view_mut().split_at(ndarray::Axis(0), split);
        let inv_temperature = config.temperature.map_or(1.0, |t| 1.0 / t);
        let half_dcandidates = if self.kernel == SoftmaxKernel::Fused && config.num_hard_negatives.is_none() {
            let padded_dim = dim.div_ceil(LANES) * LANES;
            let candidates = if padded_dim == dim && batch.candidate.is_standard_layout() {
                batch.candidate
            } else {
                self.padded_candidates.reshape_zeroed(n_candidates, padded_dim);
                self.padded_candidates.view_mut().slice_mut(s![.., ..dim]).assign(&batch.candidate);
                self.padded_candidates.view()
            };
            let log_q = batch.candidate_sampling_probability.map(|p| {
                self.log_q.clear();
                self.log_q.extend(p.iter().map(|&p| -p.clamp(MIN_PROBABILITY, 1.0).ln()));
                self.log_q.as_slice()
            });
            let shared = FusedShared { batch, candidates, log_q, inv_temperature };
            let [top, bottom] = &mut self.fused_halves;
            rayon::join(
                || top.run(&shared, 0..split, losses_top, scales_top, dquery_top),
                || bottom.run(&shared, split..n_queries, losses_bottom, scales_bottom, dquery_bottom),
            );
            self.fused_halves.each_ref().map(|half| &half.dcandidate)
        } else {
            let [top, bottom] = &mut self.halves;
            rayon::join(
                || top.run(&shared, 0..split, losses_top, scales_top, dquery_top),
                || bottom.run(&shared, split..n_queries, losses_bottom, scales_bottom, dquery_bottom),
            );
            self.halves.each_ref().map(|half| &half.dcandidate)
        };
        self.dcandidate.reshape(n_candidates, dim);
        let halves = [half_dcandidates[0].view(), half_dcandidates[1].view()];
        let gradients = Gradients { dquery: self.dquery.view_mut(), dcandidate: self.dcandidate.view_mut() };
        finish_gradients(batch, &halves[..if split < n_queries { 2 } else { 1 }], inv_temperature, gradients);
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

/// The two gradients of a batch, `dQ (B, d)` and `dC (N, d)`.
struct Gradients<'a> {
    dquery: ArrayViewMut2<'a, f32>,
    dcandidate: ArrayViewMut2<'a, f32>,
}

/// Completes both gradients after the halves ran: `dC = Σ halves` (their first `d` columns),
/// then the positive terms, `dQ_i += p_i·c_i` and `dC_i += p_i·q_i` with `p_i = −w_i/T`.
///
/// Row by row, as one pass; a batch wide enough to have two halves does its first and second
/// halves of the candidate rows on two threads (a serial tail took 47 µs of a 2.8 ms step at
/// batch 2048 while the other core waited). Every element takes the same operations in the
/// same order either way (`h₀ + h₁`, then `+ p·q`, each rounded), as ndarray's `+=` and
/// `scaled_add` formed them, so the bits depend neither on the threads nor on the split.
fn finish_gradients(batch: &Batch<'_>, halves: &[ArrayView2<'_, f32>], inv_temperature: f32, out: Gradients<'_>) {
    let n_candidates = out.dcandidate.nrows();
    if halves.len() < 2 || n_candidates < 2 {
        finish_rows(batch, halves, inv_temperature, 0, out);
        return;
    }
    let middle = n_candidates / 2;
    let Gradients { dquery, dcandidate } = out;
    let query_middle = middle.min(dquery.nrows());
    let (dquery_top, dquery_bottom) = dquery.split_at(Axis(0), query_middle);
    let (dcandidate_top, dcandidate_bottom) = dcandidate.split_at(Axis(0), middle);
    rayon::join(
        || finish_rows(batch, halves, inv_temperature, 0, Gradients { dquery: dquery_top, dcandidate: dcandidate_top }),
        || {
            let bottom = Gradients { dquery: dquery_bottom, dcandidate: dcandidate_bottom };
            finish_rows(batch, halves, inv_temperature, middle, bottom)
        },
    );
}

/// [`finish_gradients`] for the candidate rows `first..first + out.dcandidate.nrows()` (and
/// the query rows among them).
fn finish_rows(
    batch: &Batch<'_>,
    halves: &[ArrayView2<'_, f32>],
    inv_temperature: f32,
    first: usize,
    out: Gradients<'_>,
) {
    let Gradients { mut dquery, mut dcandidate } = out;
    let (rows, dim) = dcandidate.dim();
    if dim == 0 {
        return;
    }
    let dcandidate = dcandidate.as_slice_mut().expect("the candidate gradient is row-major");
    for (k, half) in halves.iter().enumerate() {
        let stride = half.ncols();
        let half = half.slice(s![first..first + rows, ..]);
        let half = half.to_slice().expect("row-major halves");
        for (gradient, half) in dcandidate.chunks_exact_mut(dim).zip(half.chunks_exact(stride)) {
            if k == 0 {
                gradient.copy_from_slice(&half[..dim]);
            } else {
                gradient.iter_mut().zip(&half[..dim]).for_each(|(g, &h)| *g += h);
            }
        }
    }
    let dquery = dquery.as_slice_mut().expect("the query gradient is row-major");
    for (offset, (dquery_row, dcandidate_row)) in
        dquery.chunks_exact_mut(dim).zip(dcandidate.chunks_exact_mut(dim)).enumerate()
    {
        let j = first + offset;
        let positive = -batch.sample_weight.map_or(1.0, |w| w[j]) * inv_temperature;
        add_scaled(dquery_row, positive, batch.candidate.row(j));
        add_scaled(dcandidate_row, positive, batch.query.row(j));
    }
}

/// `out += alpha·x`, each term rounded before the sum (ndarray's `scaled_add`).
fn add_scaled(out: &mut [f32], alpha: f32, x: ndarray::ArrayView1<'_, f32>) {
    match x.as_slice() {
        Some(x) => out.iter_mut().zip(x).for_each(|(o, &v)| *o += alpha * v),
        None => out.iter_mut().zip(x.iter()).for_each(|(o, &v)| *o += alpha * v),
    }
}

impl HalfBuffers {
    /// Loss terms, row scales and `dQ` rows of query rows `rows`, and their `dC` contribution
    /// in `self.dcandidate`, one block of rows at a time, on the calling thread.
    fn run(
        &mut self,
        shared: &Shared<'_, '_>,
        rows: std::ops::Range<usize>,
        losses: &mut [f64],
        scales: &mut [f32],
        mut dquery: ndarray::ArrayViewMut2<'_, f32>,
    ) {
        let batch = shared.batch;
        let n_candidates = batch.candidate.nrows();
        self.dcandidate.reshape_zeroed(n_candidates, batch.query.ncols());
        if rows.is_empty() {
            return;
        }
        let inv_temperature = shared.temperature.map_or(1.0, |t| 1.0 / t);
        let block_rows = (LOGIT_BLOCK_ELEMENTS / n_candidates.max(1)).max(MIN_BLOCK_ROWS);
        for start in (rows.start..rows.end).step_by(block_rows) {
            let end = (start + block_rows).min(rows.end);
            let local = start - rows.start..end - rows.start;
            let query_block = batch.query.slice(s![start..end, ..]);
            self.logits.reshape(end - start, n_candidates);
            scores(query_block, batch.candidate, &mut self.logits.view_mut(), Parallelism::Serial);
            let width = n_candidates.max(1);
            let per_row = losses[local.clone()].iter_mut().zip(&mut scales[local.clone()]);
            for (offset, (row, (loss, scale))) in self.logits.as_slice_mut().chunks_mut(width).zip(per_row).enumerate()
            {
                let i = start + offset;
                if let Some(t) = shared.temperature {
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
                if let Some(h) = shared.num_hard_negatives {
                    keep_hardest(row, i, h, &mut self.negatives);
                }
                let positive_logit = row[i];
                let exp = exp_row(row);
                let weight = batch.sample_weight.map_or(1.0, |w| w[i]);
                *loss = f64::from(weight) * (exp.logsumexp() - f64::from(positive_logit));
                *scale = weight * inv_temperature / exp.sum;
            }
            let logits = RowScaledLogits {
                q: query_block,
                c: batch.candidate,
                e: self.logits.view(),
                row_scale: &scales[local.clone()],
            };
            scores_backward_row_scaled(
                &logits,
                &mut dquery.slice_mut(s![local, ..]),
                &mut self.dcandidate.view_mut(),
                &mut self.scratch,
                Parallelism::Serial,
            );
        }
    }
}

/// Keeps column `positive` and the `h` largest other logits of `row` (ties: lower column first,
/// as TF's `top_k`), and sets every other logit to −∞, so that it gets zero weight in the
/// softmax and zero gradient.
fn keep_hardest(row: &mut [f32], positive: usize, h: usize, negatives: &mut Vec<(f32, u32)>) {
    if h + 1 >= row.len() {
        return;
    }
    negatives.clear();
    negatives.extend(row.iter().enumerate().filter(|&(j, _)| j != positive).map(|(j, &v)| (v, j as u32)));
    // Larger logit first; equal logits, lower column first.
    let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if h == 0 {
        negatives.iter().for_each(|&(_, j)| row[j as usize] = f32::NEG_INFINITY);
        return;
    }
    negatives.select_nth_unstable_by(h - 1, order);
    for &(_, j) in &negatives[h..] {
        row[j as usize] = f32::NEG_INFINITY;
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tensor::init::uniform;

    use super::*;

    /// The gradients' tail as it was written before, with ndarray's `+=` and `scaled_add`.
    fn tail_reference(batch: &Batch<'_>, halves: &[ArrayView2<'_, f32>], inv_temperature: f32) -> [Array2<f32>; 2] {
        let dim = batch.query.ncols();
        let mut dquery = Array2::<f32>::ones(batch.query.raw_dim()) * 0.25;
        let mut dcandidate = halves[0].slice(s![.., ..dim]).to_owned();
        for half in &halves[1..] {
            dcandidate += &half.slice(s![.., ..dim]);
        }
        for i in 0..batch.query.nrows() {
            let positive = -batch.sample_weight.map_or(1.0, |w| w[i]) * inv_temperature;
            dquery.row_mut(i).scaled_add(positive, &batch.candidate.row(i));
            dcandidate.row_mut(i).scaled_add(positive, &batch.query.row(i));
        }
        [dquery, dcandidate]
    }

    #[test]
    fn the_gradients_tail_has_the_bits_of_the_serial_ndarray_form() {
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        // Padded halves (the fused path's), one or two of them, queries fewer than candidates
        // (mixed negatives), odd sizes, a query view that is not row-major, and weights.
        for (n_queries, n_candidates, halves_used) in [(6, 6, 2), (5, 9, 2), (7, 7, 1), (1, 3, 1), (4, 1000, 2)] {
            let dim = 5;
            // Transposed (not row-major) queries in the odd cases.
            let query_t = uniform((dim, n_queries), 1.0, &mut rng);
            let query_owned = query_t.t().as_standard_layout().into_owned();
            let query = if n_queries % 2 == 1 { query_t.t() } else { query_owned.view() };
            let candidate = uniform((n_candidates, dim), 1.0, &mut rng);
            let weights: Vec<f32> = (0..n_queries).map(|i| 0.5 + i as f32).collect();
            let halves = [uniform((n_candidates, 16), 1.0, &mut rng), uniform((n_candidates, 16), 1.0, &mut rng)];
            let halves = [halves[0].view(), halves[1].view()];
            let batch = Batch { sample_weight: Some(&weights), ..Batch::new(query, candidate.view()) };
            let [expected_dquery, expected_dcandidate] = tail_reference(&batch, &halves[..halves_used], 1.0 / 0.07);
            let mut dquery = Array2::<f32>::ones((n_queries, dim)) * 0.25;
            let mut dcandidate = Array2::<f32>::from_elem((n_candidates, dim), f32::NAN);
            let out = Gradients { dquery: dquery.view_mut(), dcandidate: dcandidate.view_mut() };
            finish_gradients(&batch, &halves[..halves_used], 1.0 / 0.07, out);
            let case = format!("{n_queries} queries, {n_candidates} candidates, {halves_used} halves");
            assert_eq!(bits(&dquery), bits(&expected_dquery), "{case}: dQ");
            assert_eq!(bits(&dcandidate), bits(&expected_dcandidate), "{case}: dC");
        }
    }
}
