//! `IvfIndex`: approximate top-k by inner product with an inverted file (IVF-Flat): k-means
//! lists over the catalogue, and each query scans only the lists nearest to it.
//!
//! Inner product is reduced to nearest neighbours on the unit sphere (Bachrach et al. 2014, as
//! in `HnswIndex`):
//!
//! ```text
//! c' = [c, sqrt(M² − ‖c‖²)] / M     (M = the largest candidate norm: every c' has norm 1)
//! q' = [q / ‖q‖, 0]
//! ‖q' − c'‖² = 2 − 2 q·c / (M ‖q‖)   so the nearest c' is the largest q·c
//! ```
//!
//! Build: Lloyd's k-means on a seeded sample of the `c'` (centroids scored against the sample
//! with one GEMM per pass), then every row joins its nearest list; the rows are stored list by
//! list, so a probe reads contiguous memory. Search: the `n_probe` lists whose centroids are
//! nearest to `q'`, every row of them scored in f32, the best `k` (plus the query's exclusions)
//! rescored with the [exact score](crate::exact_score). Scores therefore agree with the exact
//! index; only the membership of the list is approximate.
//!
//! Unlike the HNSW graph, the index is deterministic: the same catalogue and seed give the same
//! lists on any thread count (the k-means assignment ties go to the lower list).
//!
//! Written by hand: no maintained pure-Rust crate offers an inner-product IVF, and this one is
//! k-means plus a scan.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::index::check_exclusions;
use crate::Neighbours;

/// Build and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfConfig {
    /// Lists (k-means centroids); `None`: `4·√n`, at least 1.
    pub n_lists: Option<usize>,
    /// Lists each query scans (recall against speed); at least 1.
    pub n_probe: usize,
    /// Rows k-means is trained on (a seeded sample; all rows when fewer).
    pub train_rows: usize,
    /// Lloyd iterations.
    pub iterations: usize,
    /// Seed of the sample and of the initial centroids.
    pub seed: u64,
}

impl Default for IvfConfig {
    fn default() -> Self {
        Self { n_lists: None, n_probe: 32, train_rows: 100_000, iterations: 10, seed: 0 }
    }
}

/// An approximate inner-product index over a catalogue, as k-means lists.
#[derive(Debug, Clone)]
pub struct IvfIndex {
    /// The catalogue in its own row order, `(n, d)`.
    candidates: Array2<f32>,
    ids: Vec<u32>,
    /// Centroids of the transformed rows, `(lists, d + 1)`, and their squared norms.
    centroids: Array2<f32>,
    centroid_norms: Vec<f32>,
    /// Rows of each list: `rows[offsets[l]..offsets[l + 1]]`, and their vectors in that order.
    offsets: Vec<usize>,
    rows: Vec<u32>,
    vectors: Array2<f32>,
    n_probe: usize,
}

impl IvfIndex {
    /// Trains the lists on `candidates` (row `i` named `ids[i]`) and files every row.
    ///
    /// # Panics
    /// If the number of ids differs from the number of rows.
    pub fn build(candidates: Array2<f32>, ids: Vec<u32>, config: IvfConfig) -> Self {
        assert_eq!(candidates.nrows(), ids.len(), "IvfIndex: {} ids for {} rows", ids.len(), candidates.nrows());
        let n = candidates.nrows();
        let n_lists = config.n_lists.unwrap_or(4 * (n as f64).sqrt().ceil() as usize).clamp(1, n.max(1));
        let sphere = unit_sphere(candidates.view());
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let training: Vec<usize> = if n > config.train_rows {
            let mut picked = sample(&mut rng, n, config.train_rows).into_vec();
            picked.sort_unstable();
            picked
        } else {
            (0..n).collect()
        };
        let train = sphere.select(Axis(0), &training);
        let mut centroids = if n == 0 {
            Array2::zeros((0, sphere.ncols()))
        } else {
            let seeds = sample(&mut rng, train.nrows(), n_lists.min(train.nrows())).into_vec();
            train.select(Axis(0), &seeds)
        };
        for _ in 0..config.iterations {
            let assignment = nearest(train.view(), centroids.view());
            centroids = means(train.view(), &assignment, centroids.view());
        }
        let assignment = nearest(sphere.view(), centroids.view());
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&r| (assignment[r as usize], r));
        let mut offsets = vec![0usize; centroids.nrows() + 1];
        for &list in &assignment {
            offsets[list as usize + 1] += 1;
        }
        for l in 0..centroids.nrows() {
            offsets[l + 1] += offsets[l];
        }
        let rows_usize: Vec<usize> = order.iter().map(|&r| r as usize).collect();
        let vectors = candidates.select(Axis(0), &rows_usize);
        let centroid_norms = centroids.rows().into_iter().map(|c| c.dot(&c)).collect();
        Self {
            candidates,
            ids,
            centroids,
            centroid_norms,
            offsets,
            rows: order,
            vectors,
            n_probe: config.n_probe.max(1),
        }
    }

    /// Number of catalogue rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of lists.
    pub fn n_lists(&self) -> usize {
        self.centroids.nrows()
    }

    /// Sets how many lists each query scans.
    pub fn set_n_probe(&mut self, n_probe: usize) {
        self.n_probe = n_probe.max(1);
    }

    /// The catalogue embeddings.
    pub fn candidates(&self) -> ArrayView2<'_, f32> {
        self.candidates.view()
    }

    /// Approximate top-`k` of each query, best first, skipping `exclusions[i]` (ids) for query
    /// `i`: the nearest `n_probe` lists are scanned, the best `k` plus the number of exclusions
    /// kept by f32 score, the excluded dropped, and the rest ranked by exact score (ties: lower
    /// row first).
    ///
    /// # Panics
    /// If the queries' width differs from the catalogue's, or the exclusions do not match the
    /// queries.
    pub fn top_k(&self, queries: ArrayView2<'_, f32>, k: usize, exclusions: Option<&[Vec<u32>]>) -> Vec<Neighbours> {
        assert_eq!(queries.ncols(), self.candidates.ncols(), "IvfIndex::top_k: query width");
        check_exclusions("IvfIndex", exclusions, queries.nrows());
        // Every query's dot product with every centroid, one GEMM per chunk of queries.
        const CHUNK: usize = 256;
        let dim = queries.ncols();
        let centroids = self.centroids.slice(s![.., ..dim]);
        let mut out = Vec::with_capacity(queries.nrows());
        let mut centroid_dots = Array2::<f32>::zeros((CHUNK.min(queries.nrows()), self.n_lists()));
        for start in (0..queries.nrows()).step_by(CHUNK) {
            let chunk = queries.slice(s![start..(start + CHUNK).min(queries.nrows()), ..]);
            let mut dots = centroid_dots.slice_mut(s![..chunk.nrows(), ..]);
            general_mat_mul(1.0, &chunk, &centroids.t(), 0.0, &mut dots);
            let dots = dots.view();
            out.par_extend((0..chunk.nrows()).into_par_iter().map(|i| {
                let excluded: &[u32] = exclusions.map_or(&[], |e| e[start + i].as_slice());
                self.query(chunk.row(i), dots.row(i), k, excluded)
            }));
        }
        out
    }

    /// One query, given its dot products with the centroids' first `d` coordinates.
    fn query(
        &self,
        query: ArrayView1<'_, f32>,
        centroid_dots: ArrayView1<'_, f32>,
        k: usize,
        excluded: &[u32],
    ) -> Neighbours {
        let want = (k + excluded.len()).min(self.len());
        if want == 0 {
            return Neighbours::default();
        }
        let norm = query.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        let scale = if norm > 0.0 { (1.0 / norm) as f32 } else { 1.0 };
        // ‖q' − c‖² = 1 + ‖c‖² − 2 q'·c: nearest lists first, ties by lower list.
        let mut lists: Vec<(f32, u32)> = centroid_dots
            .iter()
            .zip(&self.centroid_norms)
            .enumerate()
            .map(|(l, (&dot, &norm2))| (norm2 - 2.0 * scale * dot, l as u32))
            .collect();
        let probe = self.n_probe.min(lists.len());
        let order = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if probe < lists.len() {
            lists.select_nth_unstable_by(probe - 1, order);
        }
        let mut best: Vec<(f32, u32)> = Vec::new();
        let dim = query.len();
        let vectors = self.vectors.as_slice().expect("list vectors are contiguous");
        let values = query.as_slice().map_or_else(|| query.to_vec().into(), std::borrow::Cow::Borrowed);
        for &(_, list) in &lists[..probe] {
            let (start, end) = (self.offsets[list as usize], self.offsets[list as usize + 1]);
            let block = &vectors[start * dim..end * dim];
            best.extend(
                block.chunks_exact(dim.max(1)).zip(&self.rows[start..end]).map(|(v, &row)| (dot(v, &values), row)),
            );
            // Keep the candidate list short: the best `want` by f32 score (with slack for the
            // exact rescoring to reorder near-ties).
            let keep = 2 * want + 32;
            if best.len() > 4 * keep {
                best.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                best.truncate(keep);
            }
        }
        let proposed = best.into_iter().map(|(_, row)| row);
        Neighbours::rescored(query, self.candidates.view(), &self.ids, proposed, excluded, k)
    }
}

/// `a·b` in eight interleaved f32 lanes (vectorised; the candidate list is rescored exactly).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `[c, sqrt(M² − ‖c‖²)] / M` of every row: points on the unit sphere, `(n, d + 1)`.
fn unit_sphere(candidates: ArrayView2<'_, f32>) -> Array2<f32> {
    let squared: Vec<f64> =
        candidates.rows().into_iter().map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum()).collect();
    let max_squared = squared.iter().copied().fold(0.0, f64::max);
    let inv = if max_squared > 0.0 { 1.0 / max_squared.sqrt() } else { 1.0 };
    let (n, d) = candidates.dim();
    let mut out = Array2::zeros((n, d + 1));
    for ((mut row, c), &s) in out.rows_mut().into_iter().zip(candidates.rows()).zip(&squared) {
        row.slice_mut(s![..d]).assign(&c.mapv(|v| (f64::from(v) * inv) as f32));
        row[d] = ((max_squared - s).max(0.0).sqrt() * inv) as f32;
    }
    out
}

/// The nearest centroid of every row (`argmin ‖x − c‖² = argmax x·c − ‖c‖²/2`, ties to the lower
/// centroid), scored in chunks of rows with one GEMM each.
fn nearest(rows: ArrayView2<'_, f32>, centroids: ArrayView2<'_, f32>) -> Vec<u32> {
    const CHUNK: usize = 1024;
    let half_norms: Array1<f32> = centroids.rows().into_iter().map(|c| 0.5 * c.dot(&c)).collect();
    let chunks: Vec<usize> = (0..rows.nrows()).step_by(CHUNK).collect();
    chunks
        .into_par_iter()
        .flat_map_iter(|start| {
            let block = rows.slice(s![start..(start + CHUNK).min(rows.nrows()), ..]);
            let mut scores = Array2::<f32>::zeros((block.nrows(), centroids.nrows()));
            general_mat_mul(1.0, &block, &centroids.t(), 0.0, &mut scores);
            scores
                .rows()
                .into_iter()
                .map(|row| {
                    let mut best = (f32::NEG_INFINITY, 0u32);
                    for (l, (&s, &h)) in row.iter().zip(&half_norms).enumerate() {
                        let v = s - h;
                        if v > best.0 {
                            best = (v, l as u32);
                        }
                    }
                    best.1
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The mean of each centroid's rows; a centroid left without rows keeps its place.
fn means(rows: ArrayView2<'_, f32>, assignment: &[u32], previous: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut sums = Array2::<f64>::zeros(previous.dim());
    let mut counts = vec![0u64; previous.nrows()];
    for (row, &list) in rows.rows().into_iter().zip(assignment) {
        counts[list as usize] += 1;
        sums.row_mut(list as usize).zip_mut_with(&row, |s, &v| *s += f64::from(v));
    }
    let mut out = previous.to_owned();
    for (l, &count) in counts.iter().enumerate() {
        if count > 0 {
            let sum = sums.row(l);
            out.row_mut(l).iter_mut().zip(sum).for_each(|(o, &s)| *o = (s / count as f64) as f32);
        }
    }
    out
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

    fn recall(exact: &[Neighbours], approx: &[Neighbours], k: usize) -> f64 {
        let hits: usize =
            exact.iter().zip(approx).map(|(e, a)| a.rows.iter().filter(|r| e.rows.contains(r)).count()).sum();
        hits as f64 / (k * exact.len()) as f64
    }

    #[test]
    fn recall_is_high_scores_are_exact_and_probing_everything_is_exact() {
        let (n, d, k) = (5_000, 16, 10);
        let items = catalogue(n, d, 1);
        let ids: Vec<u32> = (0..n as u32).collect();
        let queries = catalogue(200, d, 2);
        let exact = BruteForceIndex::new(items.clone(), ids.clone()).top_k(queries.view(), k, None);
        let mut ivf = IvfIndex::build(items, ids, IvfConfig { n_probe: 16, ..IvfConfig::default() });
        assert_eq!(ivf.n_lists(), 4 * 71);
        let approx = ivf.top_k(queries.view(), k, None);
        let r = recall(&exact, &approx, k);
        assert!(r >= 0.95, "recall@10 {r} at 16 of {} lists", ivf.n_lists());
        for (e, a) in exact.iter().zip(&approx) {
            for (row, score) in a.rows.iter().zip(&a.scores) {
                if let Some(p) = e.rows.iter().position(|r| r == row) {
                    assert_eq!(*score, e.scores[p], "the same exact score for row {row}");
                }
            }
            assert!(a.scores.windows(2).all(|w| w[0] >= w[1]));
        }
        ivf.set_n_probe(usize::MAX);
        assert_eq!(ivf.top_k(queries.view(), k, None), exact, "probing every list is the exact search");
    }

    #[test]
    fn the_same_seed_gives_the_same_lists_on_any_thread_count() {
        let items = catalogue(3_000, 8, 5);
        let ids: Vec<u32> = (0..3_000).collect();
        let queries = catalogue(50, 8, 6);
        let config = IvfConfig { n_probe: 4, train_rows: 1_000, ..IvfConfig::default() };
        let build = || IvfIndex::build(items.clone(), ids.clone(), config).top_k(queries.view(), 10, None);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(build);
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(build);
        assert_eq!(one, two);
    }

    #[test]
    fn exclusions_are_skipped_k_is_clamped_and_tiny_catalogues_work() {
        let items = catalogue(500, 8, 3);
        let ids: Vec<u32> = (0..500).collect();
        let queries = catalogue(3, 8, 4);
        let ivf = IvfIndex::build(items, ids, IvfConfig { n_probe: 1000, ..IvfConfig::default() });
        let first = ivf.top_k(queries.view(), 5, None);
        let excluded: Vec<Vec<u32>> = first.iter().map(|n| n.ids[..2].to_vec()).collect();
        let second = ivf.top_k(queries.view(), 5, Some(&excluded));
        for ((list, excluded), before) in second.iter().zip(&excluded).zip(&first) {
            assert_eq!(list.ids.len(), 5);
            assert!(list.ids.iter().all(|id| !excluded.contains(id)));
            assert_eq!(list.ids[..3], before.ids[2..], "the next best move up");
        }
        assert_eq!(ivf.top_k(queries.view(), 10_000, None)[0].ids.len(), 500);
        assert!(ivf.top_k(queries.view(), 0, None)[0].ids.is_empty());
        let one = IvfIndex::build(Array2::ones((1, 4)), vec![7], IvfConfig::default());
        assert_eq!(one.top_k(Array2::ones((1, 4)).view(), 3, None)[0].ids, [7]);
        let empty = IvfIndex::build(Array2::zeros((0, 4)), vec![], IvfConfig::default());
        assert!(empty.is_empty() && empty.top_k(Array2::ones((2, 4)).view(), 3, None)[1].ids.is_empty());
    }
}
