//! Factorized top-k accuracy: ranks of true candidates, and the running accuracy at each k.
//!
//! A rank counts the catalogue rows whose [exact score](crate::exact_score) is strictly above
//! the true row's. GEMM scores only decide rows that are certainly above or below (see
//! `exact.rs`), so ranks are the same on every CPU and BLAS kernel: a duplicate of the true row
//! ties with it exactly and never outranks it.

use ndarray::{s, Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

use crate::band_scan::{bit, count_band, for_each_in_band};
use crate::exact::{exact_score, row_norms, Band};
use crate::exclusions::TaskExclusions;
use crate::kernel::{Lanes, ScoreKernel};

/// Queries one task ranks together: their score tile against [`TILE_CANDIDATES`] catalogue rows
/// (480 KiB) stays in L2 between the product and the counting. Five of `lane_gemm`'s 12-row
/// AVX-512 tiles: 64 rows left a 4-row tile that ran the product 13% slower.
const TILE_QUERIES: usize = 60;
/// Query blocks of [`TILE_QUERIES`] one parallel task ranks against each catalogue tile while
/// the tile (256 KiB at d = 32) is in L2.
const TILES_PER_TASK: usize = 8;
/// Catalogue rows per tile, a multiple of 16.
const TILE_CANDIDATES: usize = 2048;
/// Unused columns at the end of every row of the transposed catalogue tiles and the score
/// tiles: rows 2048 floats apart (8 KiB) fall in the same L1 sets, so the `k` rows of a
/// product's tile evicted one another; 2064 apart they do not (5M evaluation, four
/// alternating runs: 6.45–7.11 → 6.26–6.55 s).
const ROW_PAD: usize = 16;

/// The `ks` of the TFRS tutorials.
pub const TFRS_KS: [usize; 5] = [1, 5, 10, 50, 100];

/// The rank of a query whose true score is NaN: a miss at every `k`.
pub const MISS: u32 = u32::MAX;

/// For each query `i`, the number of catalogue rows `j` (not excluded for that query) whose
/// exact score `q_i·c_j` is strictly above `q_i·c_{true_rows[i]}`: the query is a hit at every
/// `k` greater than this. A NaN true score gives [`MISS`]; a NaN row never counts as above.
///
/// Chunks of 64 queries run in parallel, each scoring the catalogue in `(64 × 2048)` tiles that
/// stay in cache while they are counted ([`Lanes`]: the register-tiled kernel on a transposed
/// copy of the catalogue), so memory is bounded whatever the catalogue size.
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
    true_rank_with(&Lanes, queries, catalogue, true_rows, exclusions)
}

/// [`true_rank`] with block scores from `kernel`.
pub fn true_rank_with(
    kernel: &dyn ScoreKernel,
    queries: ArrayView2<'_, f32>,
    catalogue: ArrayView2<'_, f32>,
    true_rows: &[u32],
    exclusions: Option<&[Vec<u32>]>,
) -> Vec<u32> {
    let counts = count_above(kernel, queries, catalogue, true_rows, exclusions);
    counts.iter().map(|c| c.filtered()).collect()
}

/// [`true_rank`] without and with `exclusions`, from one pass over the catalogue:
/// `(unfiltered, filtered)`.
///
/// The exclusion lists can be borrowed (`&[u32]`, `Cow<[u32]>`): callers whose queries share
/// long lists (every query of a user excludes that user's items) need not copy them per query.
pub fn true_rank_unfiltered_and_filtered<E: AsRef<[u32]> + Sync>(
    queries: ArrayView2<'_, f32>,
    catalogue: ArrayView2<'_, f32>,
    true_rows: &[u32],
    exclusions: &[E],
) -> (Vec<u32>, Vec<u32>) {
    let counts = count_above(&Lanes, queries, catalogue, true_rows, Some(exclusions));
    (counts.iter().map(|c| c.all()).collect(), counts.iter().map(|c| c.filtered()).collect())
}

/// One query's counts.
#[derive(Debug, Clone, Copy, Default)]
struct Above {
    /// Rows exactly above the truth.
    rows: u32,
    /// Of those, rows excluded for this query.
    excluded: u32,
    /// The true score is NaN.
    miss: bool,
}

impl Above {
    fn all(self) -> u32 {
        if self.miss {
            MISS
        } else {
            self.rows
        }
    }

    fn filtered(self) -> u32 {
        if self.miss {
            MISS
        } else {
            self.rows - self.excluded
        }
    }
}

/// Per query: rows exactly above the true row, and how many of those are excluded.
fn count_above<E: AsRef<[u32]> + Sync>(
    kernel: &dyn ScoreKernel,
    queries: ArrayView2<'_, f32>,
    catalogue: ArrayView2<'_, f32>,
    true_rows: &[u32],
    exclusions: Option<&[E]>,
) -> Vec<Above> {
    let n_queries = queries.nrows();
    assert_eq!(true_rows.len(), n_queries, "true_rank: {} true rows for {n_queries} queries", true_rows.len());
    if let Some(ex) = exclusions {
        assert_eq!(ex.len(), n_queries, "true_rank: {} exclusion lists for {n_queries} queries", ex.len());
    }
    let (n_rows, dim) = catalogue.dim();
    assert!(true_rows.iter().all(|&r| (r as usize) < n_rows), "true_rank: true row outside catalogue of {n_rows}");
    // The exact true score, its query's norm, and each catalogue block's largest norm.
    let positives: Vec<f64> = (0..n_queries)
        .into_par_iter()
        .map(|i| exact_score(queries.row(i), catalogue.row(true_rows[i] as usize)))
        .collect();
    let query_norms = row_norms(queries);
    let catalogue_norms = row_norms(catalogue);
    // The catalogue transposed tile by tile: each tile of candidates is its own row-major
    // `(d, width)` block, `width` padded with zero columns to a multiple of 16 (and
    // [`ROW_PAD`] more, never read), so that its product streams the operand in order
    // (transposing the whole catalogue at once left `d` rows a catalogue apart, which the
    // prefetchers do not follow: 0.5 of the speed).
    let catalogue_tiles: Vec<Array2<f32>> = (0..n_rows)
        .step_by(TILE_CANDIDATES)
        .map(|c_start| {
            let c_end = (c_start + TILE_CANDIDATES).min(n_rows);
            let mut tile_t = Array2::<f32>::zeros((dim, (c_end - c_start).div_ceil(16) * 16 + ROW_PAD));
            tile_t.slice_mut(s![.., ..c_end - c_start]).assign(&catalogue.slice(s![c_start..c_end, ..]).t());
            tile_t
        })
        .collect();
    let mut counts: Vec<Above> = positives.iter().map(|p| Above { miss: p.is_nan(), ..Above::default() }).collect();
    // One score tile and one set of exclusion bitmaps per run of tasks rayon hands a worker,
    // not per task: a fresh 480 KiB tile per task was mapped and zeroed by the kernel each time
    // (7% of a 5M evaluation in `clear_page_erms`).
    let new_scratch =
        || (Array2::<f32>::zeros((TILE_QUERIES, catalogue_tiles.first().map_or(0, Array2::ncols))), Vec::new());
    counts.par_chunks_mut(TILE_QUERIES * TILES_PER_TASK).enumerate().for_each_init(
        new_scratch,
        |(tile, bits), (task, counts)| {
            let task_start = task * TILE_QUERIES * TILES_PER_TASK;
            let mut excluded = match exclusions {
                Some(ex) => TaskExclusions::new(&ex[task_start..task_start + counts.len()], TILE_CANDIDATES),
                None => TaskExclusions::default(),
            };
            // Catalogue tiles outside, the task's query blocks inside: each tile is read from memory
            // once per task and then from L2 for every block.
            for (c_start, tile_t) in (0..n_rows).step_by(TILE_CANDIDATES).zip(&catalogue_tiles) {
                let c_end = (c_start + TILE_CANDIDATES).min(n_rows);
                let c_block = catalogue.slice(s![c_start..c_end, ..]);
                let max_norm = catalogue_norms[c_start..c_end].iter().copied().fold(0.0, f64::max);
                excluded.fill_tile(c_start, c_end, bits);
                for (block, counts) in counts.chunks_mut(TILE_QUERIES).enumerate() {
                    let local_start = block * TILE_QUERIES;
                    let q_start = task_start + local_start;
                    let q_block = queries.slice(s![q_start..q_start + counts.len(), ..]);
                    let width = tile_t.ncols() - ROW_PAD;
                    let mut scores = tile.slice_mut(s![..counts.len(), ..width]);
                    kernel.scores(q_block, tile_t.slice(s![.., ..width]).t(), &mut scores);
                    let tile = CatalogueTile {
                        start: c_start,
                        rows: c_block,
                        norms: &catalogue_norms[c_start..c_end],
                        max_norm,
                    };
                    for (i, count) in counts.iter_mut().enumerate() {
                        let query = q_start + i;
                        if !count.miss {
                            let row = scores.row(i);
                            let row = &row.as_slice().expect("score tiles are row-contiguous")[..c_end - c_start];
                            let truth = Truth {
                                query: queries.row(query),
                                norm: query_norms[query],
                                score: positives[query],
                                row: true_rows[query] as usize,
                            };
                            count_tile(count, &truth, &tile, row, excluded.in_tile(local_start + i, bits));
                        }
                    }
                }
            }
        },
    );
    counts
}

/// A query and its true candidate's exact score.
struct Truth<'a> {
    query: ArrayView1<'a, f32>,
    /// `‖q‖`, for the band.
    norm: f64,
    /// The exact score of the true row.
    score: f64,
    /// The true row (in the whole catalogue).
    row: usize,
}

/// Catalogue rows `start..start + rows.nrows()` and their norms.
struct CatalogueTile<'a> {
    start: usize,
    rows: ArrayView2<'a, f32>,
    norms: &'a [f64],
    /// The largest of `norms`: one band for the whole tile's first pass.
    max_norm: f64,
}

/// Adds to `count` the rows of `tile` exactly above the truth, and how many of those are
/// excluded (bit `j` of `excluded` for row `tile.start + j`), given the tile's block scores
/// `scores` for the query.
///
/// Certainly above, and at least possibly above, come from one vectorised pass with the band
/// of the tile's largest norm; only the rows in between (if any besides the true row, which is
/// always in the band and never above: its exact score is the threshold) are decided by their
/// own band and then exactly.
fn count_tile(
    count: &mut Above,
    truth: &Truth<'_>,
    tile: &CatalogueTile<'_>,
    scores: &[f32],
    excluded: Option<&[u64]>,
) {
    let band = Band::new(truth.query.len(), truth.norm);
    let (lo, hi) = band.around(truth.score, tile.max_norm);
    let counts = count_band(scores, lo, hi, excluded);
    count.rows += counts.above;
    count.excluded += counts.excluded_above;
    let own = truth.row.wrapping_sub(tile.start);
    let own_in_band = own < scores.len() && (lo..=hi).contains(&scores[own]);
    if counts.at_least_lo > counts.above + u32::from(own_in_band) {
        for_each_in_band(scores, lo, hi, |j| {
            let above = j != own
                && band
                    .above(scores[j], tile.norms[j], truth.score)
                    .unwrap_or_else(|| exact_score(truth.query, tile.rows.row(j)) > truth.score);
            count.rows += u32::from(above);
            count.excluded += u32::from(above && excluded.is_some_and(|bits| bit(bits, j)));
        });
    }
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

    /// Adds queries given their [`true_rank`]s ([`MISS`] is a miss at every k).
    pub fn update(&mut self, ranks: &[u32]) {
        for &rank in ranks {
            for (hits, &k) in self.hits.iter_mut().zip(&self.ks) {
                *hits += u64::from(rank != MISS && (rank as usize) < k);
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
