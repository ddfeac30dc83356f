//! `HnswIndex`: approximate top-k by inner product for large catalogues, on `hnsw_rs` (feature
//! `ann`).
//!
//! HNSW graphs search by a metric distance, and inner product is not one. The index uses the
//! exact reduction of maximum inner product search to nearest neighbours (Bachrach et al. 2014,
//! "Speeding up the Xbox recommender system using a Euclidean transformation"):
//!
//! ```text
//! c' = [c, sqrt(M² − ‖c‖²)]   (M = the largest candidate norm: every c' has norm M)
//! q' = [q · M/‖q‖, 0]          (scaling a query does not change its ranking)
//! ‖q' − c'‖² = 2M² − 2 (M/‖q‖) q·c   so the nearest c' is the largest q·c
//! ```
//!
//! Scaling the query onto the sphere the candidates lie on keeps it near the data the graph was
//! built on; with `q' = [q, 0]` the search starts far from the sphere and recall at one million
//! items fell below 0.4 at the same search width.
//!
//! Why `hnsw_rs`: pure Rust (no C++ toolchain, unlike `usearch`), maintained, with parallel
//! insertion; its dot distance assumes normalised vectors, which two-tower embeddings are not,
//! hence the transformation above with its L2 distance. The graph proposes candidates; every
//! returned score is the [exact score](crate::exact_score), so scores agree with the exact index,
//! only the membership of the list is approximate. The graph's construction order depends on
//! thread timing, so lists may differ between builds: measure recall, never compare lists.

use hnsw_rs::prelude::{DistL2, Hnsw};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::index::check_exclusions;
use crate::Neighbours;

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnConfig {
    /// Neighbours kept per node and layer (HNSW's `M`).
    pub max_connections: usize,
    /// Candidate list width while building (`ef_construction`).
    pub ef_construction: usize,
    /// Candidate list width while searching (`ef`); at least `k` is used.
    pub ef_search: usize,
}

impl Default for AnnConfig {
    fn default() -> Self {
        Self { max_connections: 32, ef_construction: 200, ef_search: 100 }
    }
}

/// An approximate inner-product index over a catalogue.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, DistL2>,
    candidates: Array2<f32>,
    ids: Vec<u32>,
    config: AnnConfig,
    /// `M`, the largest candidate norm.
    max_norm: f64,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex").field("rows", &self.ids.len()).field("config", &self.config).finish()
    }
}

impl HnswIndex {
    /// Builds the graph over `candidates` (row `i` named `ids[i]`), inserting in parallel.
    ///
    /// # Panics
    /// If the number of ids differs from the number of rows, or `max_connections` is above 256.
    pub fn build(candidates: Array2<f32>, ids: Vec<u32>, config: AnnConfig) -> Self {
        assert_eq!(candidates.nrows(), ids.len(), "HnswIndex: {} ids for {} rows", ids.len(), candidates.nrows());
        assert!(config.max_connections <= 256, "HnswIndex: max_connections {} above 256", config.max_connections);
        let n = candidates.nrows();
        let squared: Vec<f64> =
            candidates.rows().into_iter().map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum()).collect();
        let max_squared = squared.iter().copied().fold(0.0, f64::max);
        let augmented: Vec<Vec<f32>> = candidates
            .rows()
            .into_iter()
            .zip(&squared)
            .map(|(row, &s)| {
                let mut v = row.to_vec();
                v.push((max_squared - s).max(0.0).sqrt() as f32);
                v
            })
            .collect();
        let layers = 16.min(((n.max(2)) as f64).ln().ceil() as usize);
        let graph = Hnsw::new(config.max_connections, n.max(1), layers, config.ef_construction, DistL2 {});
        let with_ids: Vec<(&[f32], usize)> = augmented.iter().enumerate().map(|(i, v)| (v.as_slice(), i)).collect();
        graph.parallel_insert_slice(&with_ids);
        Self { graph, candidates, ids, config, max_norm: max_squared.sqrt() }
    }

    /// Number of catalogue rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Sets the search width (recall against speed), e.g. after measuring recall.
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.config.ef_search = ef_search;
    }

    /// Whether the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The catalogue embeddings.
    pub fn candidates(&self) -> ArrayView2<'_, f32> {
        self.candidates.view()
    }

    /// Approximate top-`k` of each query, best first, skipping `exclusions[i]` (ids) for query `i`:
    /// the graph is asked for `k` plus the number of exclusions, the excluded are dropped, and the
    /// rest are ranked by exact score (ties: lower row first). A search width of at least the
    /// catalogue's size scores every row, so its lists are the exact index's.
    ///
    /// # Panics
    /// If the queries' width differs from the catalogue's, or the exclusions do not match the queries.
    pub fn top_k(&self, queries: ArrayView2<'_, f32>, k: usize, exclusions: Option<&[Vec<u32>]>) -> Vec<Neighbours> {
        assert_eq!(queries.ncols(), self.candidates.ncols(), "HnswIndex::top_k: query width");
        check_exclusions("HnswIndex", exclusions, queries.nrows());
        let n = self.len();
        (0..queries.nrows())
            .into_par_iter()
            .map(|i| {
                let excluded: &[u32] = exclusions.map_or(&[], |e| e[i].as_slice());
                let want = (k + excluded.len()).min(n);
                if want == 0 {
                    return Neighbours::default();
                }
                let query = queries.row(i);
                let ef_search = self.config.ef_search.max(want);
                if ef_search >= n {
                    // A search as wide as the catalogue: every row, so the list is exact even
                    // where the graph left a node unreachable (its links depend on timing).
                    return Neighbours::rescored(query, self.candidates.view(), &self.ids, 0..n as u32, excluded, k);
                }
                let norm = query.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
                let scale = if norm > 0.0 { (self.max_norm / norm) as f32 } else { 1.0 };
                let mut augmented: Vec<f32> = query.iter().map(|&v| v * scale).collect();
                augmented.push(0.0);
                let found = self.graph.search(&augmented, want, ef_search);
                let proposed = found.iter().map(|neighbour| neighbour.d_id as u32);
                Neighbours::rescored(query, self.candidates.view(), &self.ids, proposed, excluded, k)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::BruteForceIndex;

    /// A clustered catalogue with varied norms, as trained embeddings are.
    fn catalogue(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = Array2::from_shape_fn((50, d), |_| rng.random_range(-1.0f32..1.0));
        Array2::from_shape_fn((n, d), |(i, j)| centres[[i % 50, j]] + 0.3 * rng.random_range(-1.0f32..1.0))
            * &Array2::from_shape_fn((n, 1), |(i, _)| 0.5 + (i % 7) as f32 * 0.2)
    }

    #[test]
    fn recall_against_the_exact_index_is_high_and_scores_are_exact() {
        let (n, d, k) = (5_000, 16, 10);
        let items = catalogue(n, d, 1);
        let ids: Vec<u32> = (0..n as u32).collect();
        let queries = catalogue(200, d, 2);
        let exact = BruteForceIndex::new(items.clone(), ids.clone()).top_k(queries.view(), k, None);
        // The graph's construction order follows thread timing, so recall varies from build to
        // build: a search width of 400 over 5000 items keeps it far above the bar (about 0.99).
        let config = AnnConfig { ef_search: 400, ..AnnConfig::default() };
        let ann = HnswIndex::build(items, ids, config);
        let approx = ann.top_k(queries.view(), k, None);
        let hits: usize =
            exact.iter().zip(&approx).map(|(e, a)| a.rows.iter().filter(|r| e.rows.contains(r)).count()).sum();
        let recall = hits as f64 / (k * queries.nrows()) as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
        for (e, a) in exact.iter().zip(&approx) {
            for (row, score) in a.rows.iter().zip(&a.scores) {
                if let Some(p) = e.rows.iter().position(|r| r == row) {
                    assert_eq!(*score, e.scores[p], "the same exact score for row {row}");
                }
            }
            assert!(a.scores.windows(2).all(|w| w[0] >= w[1]));
        }
    }

    #[test]
    fn exclusions_are_skipped_and_k_is_clamped() {
        let items = catalogue(500, 8, 3);
        let ids: Vec<u32> = (0..500).collect();
        let queries = catalogue(3, 8, 4);
        let ann = HnswIndex::build(items, ids, AnnConfig::default());
        let first = ann.top_k(queries.view(), 5, None);
        let excluded: Vec<Vec<u32>> = first.iter().map(|n| n.ids[..2].to_vec()).collect();
        let second = ann.top_k(queries.view(), 5, Some(&excluded));
        for (list, excluded) in second.iter().zip(&excluded) {
            assert_eq!(list.ids.len(), 5);
            assert!(list.ids.iter().all(|id| !excluded.contains(id)));
        }
        assert_eq!(ann.top_k(queries.view(), 10_000, None)[0].ids.len(), 500);
        assert!(ann.top_k(queries.view(), 0, None)[0].ids.is_empty());
    }

    #[test]
    fn a_search_as_wide_as_the_catalogue_is_the_exact_search() {
        // Two links per node leave some nodes hard to reach; the width covers every row anyway.
        let items = catalogue(40, 8, 5);
        let ids: Vec<u32> = (100..140).collect();
        let queries = catalogue(20, 8, 6);
        let excluded: Vec<Vec<u32>> = (0..20).map(|i| vec![100 + i, 139 - i]).collect();
        let exact = BruteForceIndex::new(items.clone(), ids.clone()).top_k(queries.view(), 8, Some(&excluded));
        let config = AnnConfig { max_connections: 2, ef_construction: 4, ef_search: 40 };
        let ann = HnswIndex::build(items, ids, config).top_k(queries.view(), 8, Some(&excluded));
        for (e, a) in exact.iter().zip(&ann) {
            assert_eq!(e.ids, a.ids);
            assert_eq!(e.scores, a.scores);
        }
    }
}
