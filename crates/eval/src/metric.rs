//! Factorized top-k accuracy: ranks of true candidates, and the running accuracy at each k.

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;
use tensor::matmul::{scores as score_block, Parallelism};

use crate::{CANDIDATE_BLOCK, QUERY_BLOCK};

/// The `ks` of the TFRS tutorials.
pub const TFRS_KS: [usize; 5] = [1, 5, 10, 50, 100];

/// For each query `i`, the number of catalogue rows `j` (not excluded for that query) with
/// `q_i·c_j > q_i·c_{true_rows[i]}`: the query is a hit at every `k` greater than this.
///
/// Scores are computed in `(512 × 4096)` blocks with the same GEMM as the catalogue, so memory
/// is bounded whatever the catalogue size.
///
/// # Shapes
/// `queries: (n_queries, d)`, `catalogue: (n_rows, d)`, `true_rows: (n_queries)`,
/// `exclusions: (n_queries, ragged)` distinct catalogue rows removed from that query's ranking.
///
/// # Panics
/// If a true row is outside the catalogue or the lengths disagree.
pub fn true_rank(
    queries: ArrayView2<'_, f32>,
    catalogue: ArrayView2<'_, f32>,
    true_rows: &[u32],
    exclusions: Option<&[Vec<u32>]>,
) -> Vec<u32> {
    let (mut ranks, excluded_above) = count_above(queries, catalogue, true_rows, exclusions);
    for (rank, excluded) in ranks.iter_mut().zip(excluded_above) {
        *rank -= excluded;
    }
    ranks
}

/// [`true_rank`] without and with `exclusions`, from one pass over the catalogue:
/// `(unfiltered, filtered)`.
pub fn true_rank_unfiltered_and_filtered(
    queries: ArrayView2<'_, f32>,
    catalogue: ArrayView2<'_, f32>,
    true_rows: &[u32],
    exclusions: &[Vec<u32>],
) -> (Vec<u32>, Vec<u32>) {
    let (ranks, excluded_above) = count_above(queries, catalogue, true_rows, Some(exclusions));
    let filtered = ranks.iter().zip(&excluded_above).map(|(r, e)| r - e).collect();
    (ranks, filtered)
}

/// Per query: rows scoring above the true row, and how many of those are excluded.
fn count_above(
    queries: ArrayView2<'_, f32>,
    catalogue: ArrayView2<'_, f32>,
    true_rows: &[u32],
    exclusions: Option<&[Vec<u32>]>,
) -> (Vec<u32>, Vec<u32>) {
    let n_queries = queries.nrows();
    assert_eq!(true_rows.len(), n_queries, "true_rank: {} true rows for {n_queries} queries", true_rows.len());
    if let Some(ex) = exclusions {
        assert_eq!(ex.len(), n_queries, "true_rank: {} exclusion lists for {n_queries} queries", ex.len());
    }
    let n_rows = catalogue.nrows();
    assert!(true_rows.iter().all(|&r| (r as usize) < n_rows), "true_rank: true row outside catalogue of {n_rows}");
    let mut ranks = vec![0u32; n_queries];
    let mut excluded_above = vec![0u32; n_queries];
    let mut positives = vec![0f32; n_queries];
    let mut block = Array2::<f32>::zeros((QUERY_BLOCK.min(n_queries.max(1)), CANDIDATE_BLOCK.min(n_rows.max(1))));
    for q_start in (0..n_queries).step_by(QUERY_BLOCK) {
        let q_end = (q_start + QUERY_BLOCK).min(n_queries);
        let q_block = queries.slice(s![q_start..q_end, ..]);
        // The positive score, from the same GEMM routine: the true row scored alone in a block
        // would round the same way, but reading it from the catalogue pass is exact by construction.
        for c_start in (0..n_rows).step_by(CANDIDATE_BLOCK) {
            let c_end = (c_start + CANDIDATE_BLOCK).min(n_rows);
            let mut scores = block.slice_mut(s![..q_end - q_start, ..c_end - c_start]);
            score_block(q_block, catalogue.slice(s![c_start..c_end, ..]), &mut scores, Parallelism::SplitInTwo);
            for (i, row) in scores.rows().into_iter().enumerate() {
                let t = true_rows[q_start + i] as usize;
                if (c_start..c_end).contains(&t) {
                    positives[q_start + i] = row[t - c_start];
                }
            }
        }
        for c_start in (0..n_rows).step_by(CANDIDATE_BLOCK) {
            let c_end = (c_start + CANDIDATE_BLOCK).min(n_rows);
            let mut scores = block.slice_mut(s![..q_end - q_start, ..c_end - c_start]);
            if n_rows > CANDIDATE_BLOCK {
                score_block(q_block, catalogue.slice(s![c_start..c_end, ..]), &mut scores, Parallelism::SplitInTwo);
            }
            let scores = scores.view();
            let counts = ranks[q_start..q_end].par_iter_mut().zip(&mut excluded_above[q_start..q_end]);
            counts.zip(&positives[q_start..q_end]).enumerate().for_each(|(i, ((rank, excluded_rank), &pos))| {
                let row = scores.row(i);
                let row = row.as_slice().expect("score blocks are row-contiguous");
                *rank += row.iter().map(|&v| u32::from(v > pos)).sum::<u32>();
                if let Some(ex) = exclusions {
                    let excluded = ex[q_start + i].iter().filter(|&&r| (c_start..c_end).contains(&(r as usize)));
                    *excluded_rank += excluded.filter(|&&r| row[r as usize - c_start] > pos).count() as u32;
                }
            });
        }
    }
    (ranks, excluded_above)
}

/// Running hit counts at each `k` over every query seen since the last reset: the
/// per-example mean, as the Keras `Mean` metric behind each `top_{k}_categorical_accuracy`.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorizedTopK {
    ks: Vec<usize>,
    hits: Vec<u64>,
    n_queries: u64,
}

impl FactorizedTopK {
    /// A metric reporting accuracy at each of `ks`.
    pub fn new(ks: &[usize]) -> Self {
        Self { ks: ks.to_vec(), hits: vec![0; ks.len()], n_queries: 0 }
    }

    /// Adds queries given their [`true_rank`]s.
    pub fn update(&mut self, ranks: &[u32]) {
        for &rank in ranks {
            for (hits, &k) in self.hits.iter_mut().zip(&self.ks) {
                *hits += u64::from((rank as usize) < k);
            }
        }
        self.n_queries += ranks.len() as u64;
    }

    /// `(k, accuracy)` for each k; accuracy 0 before any update (Keras' `div_no_nan`).
    pub fn accuracies(&self) -> Vec<(usize, f64)> {
        self.ks
            .iter()
            .zip(&self.hits)
            .map(|(&k, &h)| (k, if self.n_queries == 0 { 0.0 } else { h as f64 / self.n_queries as f64 }))
            .collect()
    }

    /// Forgets every query (Keras resets metrics at each epoch and evaluation).
    pub fn reset(&mut self) {
        self.hits.fill(0);
        self.n_queries = 0;
    }

    /// Queries seen since the last reset.
    pub fn n_queries(&self) -> u64 {
        self.n_queries
    }
}
