//! `BruteForceIndex`: exact top-k by dot product over a catalogue, like `tfrs.layers.factorized_top_k.BruteForce`.
//!
//! Results are sorted by [exact score](crate::exact_score) descending; equal scores put the lower
//! catalogue row first (TF's `top_k`); NaN scores come last. GEMM scores only skip candidates
//! that certainly cannot enter the list (see `exact.rs`), so the list is the same on every CPU
//! and BLAS kernel, and identical rows always tie. Excluded ids are skipped outright. TFRS's
//! `query_with_exclusions` instead retrieves `k + E` candidates and penalises excluded ones by
//! 1e5, which gives the same list whenever no remaining score is 1e5 below an excluded one;
//! skipping is exact in every case.

use ndarray::{s, Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

use crate::band_scan::for_each_not_below;
use crate::exact::{exact_score, row_norms, Band};
use crate::kernel::{Gemm, ScoreKernel};
use crate::{CANDIDATE_BLOCK, QUERY_BLOCK};

/// A catalogue of candidate embeddings with one id per row.
#[derive(Debug, Clone)]
pub struct BruteForceIndex {
    /// `(n_rows, d)`.
    candidates: Array2<f32>,
    /// `(n_rows)`.
    ids: Vec<u32>,
    /// `(n_rows)`: each row's Euclidean norm, for the GEMM error band.
    norms: Vec<f64>,
}

/// The top-k of one query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Neighbours {
    /// Candidate ids, best first.
    pub ids: Vec<u32>,
    /// Their exact scores, rounded to f32.
    pub scores: Vec<f32>,
    /// Their catalogue rows.
    pub rows: Vec<u32>,
}

impl Neighbours {
    /// The best `k` of the catalogue rows `proposed` (by an approximate index) for `query`, best
    /// first: rows whose id is in `excluded` dropped, the rest ranked by [exact score](crate::exact_score)
    /// (ties: lower row first). The approximate indexes share this, so their scores equal the
    /// exact index's and only which rows were proposed differs.
    pub(crate) fn rescored(
        query: ArrayView1<'_, f32>,
        candidates: ArrayView2<'_, f32>,
        ids: &[u32],
        proposed: impl Iterator<Item = u32>,
        excluded: &[u32],
        k: usize,
    ) -> Self {
        let mut scored: Vec<(f64, u32)> = proposed
            .filter(|&row| !excluded.contains(&ids[row as usize]))
            .map(|row| (exact_score(query, candidates.row(row as usize)), row))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(k);
        Self {
            ids: scored.iter().map(|&(_, row)| ids[row as usize]).collect(),
            scores: scored.iter().map(|&(s, _)| s as f32).collect(),
            rows: scored.iter().map(|&(_, row)| row).collect(),
        }
    }
}

/// Checks that `exclusions`, when given, has one list per query (`index` names the caller).
#[track_caller]
pub(crate) fn check_exclusions(index: &str, exclusions: Option<&[Vec<u32>]>, n_queries: usize) {
    if let Some(e) = exclusions {
        assert_eq!(e.len(), n_queries, "{index}::top_k: {} exclusion lists for {n_queries} queries", e.len());
    }
}

impl BruteForceIndex {
    /// An index over `candidates` with `ids[i]` naming row `i`.
    ///
    /// # Panics
    /// If the number of ids differs from the number of rows.
    pub fn new(candidates: Array2<f32>, ids: Vec<u32>) -> Self {
        assert_eq!(candidates.nrows(), ids.len(), "BruteForceIndex: {} ids for {} rows", ids.len(), candidates.nrows());
        let norms = row_norms(candidates.view());
        Self { candidates, ids, norms }
    }

    /// The catalogue embeddings.
    pub fn candidates(&self) -> ArrayView2<'_, f32> {
        self.candidates.view()
    }

    /// Number of catalogue rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `k` best candidates of each query, skipping the ids in `exclusions[i]` (if given).
    /// `k` larger than the catalogue returns every row that is not excluded.
    ///
    /// # Shapes
    /// `queries: (n_queries, d)`; `exclusions: (n_queries, ragged)`.
    pub fn top_k(&self, queries: ArrayView2<'_, f32>, k: usize, exclusions: Option<&[Vec<u32>]>) -> Vec<Neighbours> {
        self.top_k_with(&Gemm, queries, k, exclusions)
    }

    /// [`Self::top_k`] with block scores from `kernel`.
    pub fn top_k_with(
        &self,
        kernel: &dyn ScoreKernel,
        queries: ArrayView2<'_, f32>,
        k: usize,
        exclusions: Option<&[Vec<u32>]>,
    ) -> Vec<Neighbours> {
        let n_queries = queries.nrows();
        let (n_rows, dim) = self.candidates.dim();
        if let Some(ex) = exclusions {
            assert_eq!(ex.len(), n_queries, "top_k: {} exclusion lists for {n_queries} queries", ex.len());
        }
        let k = k.min(n_rows);
        let query_norms = row_norms(queries);
        // Per query, the kept `(exact score, row)` pairs, best first.
        let mut best: Vec<Vec<(f64, u32)>> = vec![Vec::with_capacity(k + 1); n_queries];
        if k == 0 {
            return best.into_iter().map(|_| Neighbours::default()).collect();
        }
        let mut block = Array2::<f32>::zeros((QUERY_BLOCK.min(n_queries.max(1)), CANDIDATE_BLOCK.min(n_rows)));
        for q_start in (0..n_queries).step_by(QUERY_BLOCK) {
            let q_end = (q_start + QUERY_BLOCK).min(n_queries);
            for c_start in (0..n_rows).step_by(CANDIDATE_BLOCK) {
                let c_end = (c_start + CANDIDATE_BLOCK).min(n_rows);
                let mut scores = block.slice_mut(s![..q_end - q_start, ..c_end - c_start]);
                kernel.scores(
                    queries.slice(s![q_start..q_end, ..]),
                    self.candidates.slice(s![c_start..c_end, ..]),
                    &mut scores,
                );
                let scores = scores.view();
                let max_norm = self.norms[c_start..c_end].iter().copied().fold(0.0, f64::max);
                best[q_start..q_end].par_iter_mut().enumerate().for_each(|(i, kept)| {
                    let query = queries.row(q_start + i);
                    let band = Band::new(dim, query_norms[q_start + i]);
                    let excluded = exclusions.map_or(&[][..], |ex| &ex[q_start + i][..]);
                    // Scores below the band of the block's largest norm around the k-th kept
                    // exact score cannot enter: a vector pass skips them, and the rows it
                    // passes go through the row's own band and exact rescoring as before.
                    let floor = |kept: &Vec<(f64, u32)>| match kept.len() == k {
                        true => band.around(kept[k - 1].0, max_norm).0,
                        false => f32::NEG_INFINITY,
                    };
                    let row_scores = scores.row(i);
                    let row_scores = row_scores.as_slice().expect("score blocks are row-contiguous");
                    for_each_not_below(row_scores, floor(kept), |j| {
                        let (score, row) = (row_scores[j], (c_start + j) as u32);
                        let below = kept.len() == k
                            && band.above(score, self.norms[row as usize], kept[k - 1].0) == Some(false);
                        if !below && !excluded.contains(&self.ids[row as usize]) {
                            let candidate = (exact_score(query, self.candidates.row(row as usize)), row);
                            if kept.len() < k || better(candidate, kept[k - 1]) {
                                let at = kept.partition_point(|&other| better(other, candidate));
                                kept.insert(at, candidate);
                                kept.truncate(k);
                            }
                        }
                        floor(kept)
                    });
                });
            }
        }
        best.into_iter()
            .map(|kept| Neighbours {
                ids: kept.iter().map(|&(_, row)| self.ids[row as usize]).collect(),
                scores: kept.iter().map(|&(score, _)| score as f32).collect(),
                rows: kept.iter().map(|&(_, row)| row).collect(),
            })
            .collect()
    }
}

/// Higher score first; equal scores, lower row first. NaN ranks last.
fn better(a: (f64, u32), b: (f64, u32)) -> bool {
    match a.0.partial_cmp(&b.0) {
        Some(std::cmp::Ordering::Greater) => true,
        Some(std::cmp::Ordering::Equal) => a.1 < b.1,
        Some(std::cmp::Ordering::Less) => false,
        None => match (a.0.is_nan(), b.0.is_nan()) {
            (false, true) => true,
            (true, true) => a.1 < b.1,
            _ => false,
        },
    }
}
