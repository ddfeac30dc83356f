//! The index against a full sort, the metric against TFRS (`tests/golden/factorized_topk.json`)
//! and against a naive count, both against a kernel that rounds differently, and the popularity
//! baseline. References score with naive f64 loops, never with a GEMM.

use eval::{
    popularity_scores, true_rank, true_rank_unfiltered_and_filtered, true_rank_with, BruteForceIndex, FactorizedTopK,
    Gemm, ScoreKernel, MISS,
};
use ndarray::{array, Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tensor::gradcheck::matrix;

fn random(shape: (usize, usize), rng: &mut impl Rng) -> Array2<f32> {
    Array2::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

/// The naive reference score, as `exact_score` defines it (no GEMM anywhere): exact f64
/// products in four lanes by index mod 4, combined as `(l0 + l1) + (l2 + l3)`.
fn naive_scores(queries: &Array2<f32>, candidates: &Array2<f32>) -> Array2<f64> {
    Array2::from_shape_fn((queries.nrows(), candidates.nrows()), |(i, j)| {
        let mut lanes = [0f64; 4];
        for (k, (&a, &b)) in queries.row(i).iter().zip(candidates.row(j)).enumerate() {
            lanes[k % 4] += f64::from(a) * f64::from(b);
        }
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
    })
}

/// Full sort of every row, naive score descending then row ascending, skipping excluded ids.
fn full_sort(
    queries: &Array2<f32>,
    candidates: &Array2<f32>,
    ids: &[u32],
    k: usize,
    exclusions: &[Vec<u32>],
) -> Vec<Vec<u32>> {
    let scores = naive_scores(queries, candidates);
    scores
        .axis_iter(Axis(0))
        .enumerate()
        .map(|(i, row)| {
            let mut order: Vec<usize> = (0..row.len()).filter(|&j| !exclusions[i].contains(&ids[j])).collect();
            order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
            order.into_iter().take(k).map(|j| ids[j]).collect()
        })
        .collect()
}

/// A kernel that computes the GEMM and then moves every score by up to `ulps` units in the last
/// place, differently per position: what another CPU's BLAS kernel may legitimately return.
struct PerturbedGemm {
    ulps: u32,
    seed: u64,
}

impl ScoreKernel for PerturbedGemm {
    fn scores(&self, queries: ArrayView2<'_, f32>, candidates: ArrayView2<'_, f32>, out: &mut ArrayViewMut2<'_, f32>) {
        Gemm.scores(queries, candidates, out);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ (queries.nrows() * 31 + candidates.nrows()) as u64);
        out.mapv_inplace(|v| {
            let steps = rng.random_range(0..=2 * self.ulps) as i32 - self.ulps as i32;
            let mut v = v;
            for _ in 0..steps.unsigned_abs() {
                v = if (steps > 0) == (v >= 0.0) { f32::from_bits(v.to_bits() + 1) } else { shrink(v) };
            }
            v
        });
    }
}

/// One ulp toward zero (zero stays zero).
fn shrink(v: f32) -> f32 {
    if v == 0.0 {
        v
    } else {
        f32::from_bits(v.to_bits() - 1)
    }
}

/// Candidates with every 7th row a copy of the previous one (exact ties), and 4 ids excluded per query.
fn tied_catalogue(
    n_queries: usize,
    n_rows: usize,
    dim: usize,
    rng: &mut impl Rng,
) -> (Array2<f32>, Array2<f32>, Vec<u32>, Vec<Vec<u32>>) {
    let queries = random((n_queries, dim), rng);
    let mut candidates = random((n_rows, dim), rng);
    for j in (1..n_rows).step_by(7) {
        let previous = candidates.row(j - 1).to_owned();
        candidates.row_mut(j).assign(&previous);
    }
    let ids: Vec<u32> = (0..n_rows as u32).map(|j| 1000 + j).collect();
    let exclusions: Vec<Vec<u32>> =
        (0..n_queries).map(|i| (0..3).map(|e| 1000 + ((i * 13 + e * 5) % n_rows) as u32).collect()).collect();
    (queries, candidates, ids, exclusions)
}

#[test]
fn top_k_matches_a_full_sort_with_ties_and_exclusions() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for (n_queries, n_rows, dim, k) in [(7, 50, 3, 5), (600, 5000, 8, 10), (3, 4, 2, 10), (40, 9000, 32, 100)] {
        let (queries, candidates, ids, exclusions) = tied_catalogue(n_queries, n_rows, dim, &mut rng);
        let index = BruteForceIndex::new(candidates.clone(), ids.clone());
        let ours = index.top_k(queries.view(), k, Some(&exclusions));
        let reference = full_sort(&queries, &candidates, &ids, k, &exclusions);
        for (i, (got, want)) in ours.iter().zip(&reference).enumerate() {
            assert_eq!(&got.ids, want, "query {i} of {n_queries}x{n_rows}");
            assert!(got.scores.windows(2).all(|w| w[0] >= w[1]));
        }
        let plain = index.top_k(queries.view(), k, None);
        let no_exclusions = vec![Vec::new(); n_queries];
        assert_eq!(
            plain.iter().map(|n| n.ids.clone()).collect::<Vec<_>>(),
            full_sort(&queries, &candidates, &ids, k, &no_exclusions)
        );
    }
}

/// Rows whose scores rise by one ulp each lie inside one another's error band: the scan's
/// vector filter must pass them all to exact rescoring, which alone tells them apart.
#[test]
fn top_k_separates_scores_an_ulp_apart() {
    let n_rows = 5000;
    let mut candidates = Array2::<f32>::zeros((n_rows, 4));
    let mut value = 1.0f32;
    for mut row in candidates.rows_mut() {
        row[0] = value;
        value = f32::from_bits(value.to_bits() + 1);
    }
    let index = BruteForceIndex::new(candidates, (0..n_rows as u32).collect());
    let queries = array![[1.0f32, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]];
    for neighbours in index.top_k(queries.view(), 5, None) {
        let expected: Vec<u32> = (n_rows as u32 - 5..n_rows as u32).rev().collect();
        assert_eq!(neighbours.ids, expected);
    }
}

#[test]
fn top_k_and_ranks_do_not_depend_on_the_last_bits_of_the_kernel() {
    let mut rng = ChaCha8Rng::seed_from_u64(34);
    let (queries, candidates, ids, exclusions) = tied_catalogue(300, 6000, 32, &mut rng);
    let true_rows: Vec<u32> = (0..300).map(|i| ((i * 7) % 6000) as u32).collect();
    let index = BruteForceIndex::new(candidates.clone(), ids);
    let gemm = index.top_k(queries.view(), 20, Some(&exclusions));
    let gemm_ranks = true_rank(queries.view(), candidates.view(), &true_rows, None);
    for seed in 0..3 {
        let kernel = PerturbedGemm { ulps: 4, seed };
        assert_eq!(index.top_k_with(&kernel, queries.view(), 20, Some(&exclusions)), gemm, "kernel seed {seed}");
        assert_eq!(true_rank_with(&kernel, queries.view(), candidates.view(), &true_rows, None), gemm_ranks);
    }
}

#[test]
fn k_beyond_the_catalogue_returns_every_row_and_k_zero_none() {
    let catalogue = array![[1.0f32], [3.0], [2.0]];
    let index = BruteForceIndex::new(catalogue, vec![10, 11, 12]);
    let all = index.top_k(array![[1.0f32]].view(), usize::MAX, None);
    assert_eq!(all[0].ids, [11, 12, 10]);
    assert_eq!(all[0].scores, [3.0, 2.0, 1.0]);
    let excluded = index.top_k(array![[1.0f32]].view(), 1 << 40, Some(&[vec![12]]));
    assert_eq!(excluded[0].ids, [11, 10]);
    assert!(index.top_k(array![[1.0f32]].view(), 0, None)[0].ids.is_empty());
}

#[test]
fn nan_scores_rank_last_and_a_nan_truth_is_a_miss() {
    let catalogue = array![[1.0f32, 0.0], [f32::NAN, 0.0], [0.5, 0.5]];
    let index = BruteForceIndex::new(catalogue.clone(), vec![0, 1, 2]);
    assert_eq!(index.top_k(array![[1.0f32, 1.0]].view(), 3, None)[0].ids, [0, 2, 1]);
    let queries = array![[1.0f32, 1.0], [f32::NAN, 0.0]];
    let ranks = true_rank(queries.view(), catalogue.view(), &[1, 0], None);
    assert_eq!(ranks, [MISS, MISS]);
    let mut metric = FactorizedTopK::new(&[1, 100]);
    metric.update(&ranks);
    assert_eq!(metric.accuracies(), [(1, 0.0), (100, 0.0)], "a NaN score is never a hit");
    // A NaN row never outranks a finite truth.
    assert_eq!(true_rank(queries.slice(ndarray::s![..1, ..]), catalogue.view(), &[0], None), [0]);
}

#[derive(Deserialize)]
struct Golden {
    queries: Vec<Vec<f32>>,
    candidates: Vec<Vec<f32>>,
    true_index: Vec<u32>,
    ks: Vec<usize>,
    accuracy: Vec<f64>,
}

#[test]
fn golden_parity_with_tfrs() {
    let golden: Golden = serde_json::from_str(include_str!("golden/factorized_topk.json")).unwrap();
    let (queries, candidates) = (matrix(&golden.queries), matrix(&golden.candidates));
    let ranks = true_rank(queries.view(), candidates.view(), &golden.true_index, None);
    let mut metric = FactorizedTopK::new(&golden.ks);
    metric.update(&ranks);
    for ((k, ours), theirs) in metric.accuracies().into_iter().zip(&golden.accuracy) {
        eprintln!("top_{k}: ours {ours}, TFRS {theirs}");
        assert!((ours - theirs).abs() < 1e-6, "top_{k}: ours {ours}, TFRS {theirs}");
    }
}

/// Seeded random queries and candidates with a random true row per query, and the generator
/// (for whatever a test draws next).
fn ranking_problem(
    seed: u64,
    n_queries: usize,
    n_rows: usize,
    dim: usize,
) -> (ChaCha8Rng, Array2<f32>, Array2<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let queries = random((n_queries, dim), &mut rng);
    let candidates = random((n_rows, dim), &mut rng);
    let true_rows = (0..n_queries).map(|_| rng.random_range(0..n_rows as u32)).collect();
    (rng, queries, candidates, true_rows)
}

/// The rank of `true_row` for query `query` by a plain count: rows not in `excluded` whose
/// naive score is strictly above its score.
fn naive_rank(scores: &Array2<f64>, query: usize, true_row: u32, excluded: &[u32]) -> u32 {
    let threshold = scores[[query, true_row as usize]];
    (0..scores.ncols() as u32).filter(|j| !excluded.contains(j) && scores[[query, *j as usize]] > threshold).count()
        as u32
}

#[test]
fn ranks_match_a_naive_count_including_exclusions_and_big_catalogues() {
    let (n_queries, n_rows) = (700, 9000);
    let (mut rng, queries, candidates, true_rows) = ranking_problem(32, n_queries, n_rows, 4);
    let exclusions: Vec<Vec<u32>> = (0..n_queries)
        .map(|_| {
            (0..20)
                .map(|_| rng.random_range(0..n_rows as u32))
                .filter(|r| r % 3 != 0)
                .collect::<std::collections::BTreeSet<u32>>()
                .into_iter()
                .rev() // unsorted input: the ranking walks its own sorted copy
                .collect()
        })
        .collect();
    let scores = naive_scores(&queries, &candidates);
    let (unfiltered, filtered) =
        true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &exclusions);
    assert_eq!(unfiltered, true_rank(queries.view(), candidates.view(), &true_rows, None));
    assert_eq!(filtered, true_rank(queries.view(), candidates.view(), &true_rows, Some(&exclusions)));
    // Borrowed lists, in order (as evaluation passes each user's seen rows, which the ranking
    // then reads in place) or not, rank alike.
    let ascending: Vec<Vec<u32>> = exclusions.iter().map(|rows| rows.iter().rev().copied().collect()).collect();
    assert_eq!(
        true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &ascending),
        (unfiltered.clone(), filtered.clone())
    );
    // Lists in order but for their last two rows rank alike too.
    let late: Vec<Vec<u32>> = ascending
        .iter()
        .map(|rows| {
            let mut rows = rows.clone();
            if rows.len() >= 2 {
                let n = rows.len();
                rows.swap(n - 2, n - 1);
            }
            rows
        })
        .collect();
    assert_eq!(
        true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &late),
        (unfiltered.clone(), filtered.clone())
    );
    let borrowed: Vec<&[u32]> = exclusions.iter().map(Vec::as_slice).collect();
    assert_eq!(
        true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &borrowed),
        (unfiltered.clone(), filtered.clone())
    );
    for i in 0..n_queries {
        assert_eq!(unfiltered[i], naive_rank(&scores, i, true_rows[i], &[]), "query {i}");
        assert_eq!(filtered[i], naive_rank(&scores, i, true_rows[i], &exclusions[i]), "query {i}");
    }
}

#[test]
fn queries_sharing_long_exclusion_lists_rank_as_a_naive_count() {
    // Users with runs of 1–150 consecutive queries (across the ranking's blocks of 60 and tasks
    // of 480), each run borrowing one list of up to a third of the catalogue, in order or not,
    // holding the run's true rows half of the time: as evaluation passes a user's seen rows.
    let (n_queries, n_rows) = (1500, 5000);
    let (mut rng, queries, candidates, true_rows) = ranking_problem(34, n_queries, n_rows, 8);
    let mut lists: Vec<Vec<u32>> = Vec::new();
    let mut list_of = Vec::new();
    while list_of.len() < n_queries {
        let run = rng.random_range(1..=150).min(n_queries - list_of.len());
        let first = list_of.len();
        let mut rows: std::collections::BTreeSet<u32> =
            (0..rng.random_range(0..n_rows / 3)).map(|_| rng.random_range(0..n_rows as u32)).collect();
        if rng.random_bool(0.5) {
            rows.extend(&true_rows[first..first + run]);
        }
        let mut rows: Vec<u32> = rows.into_iter().collect();
        if rng.random_bool(0.3) {
            rows.reverse();
        }
        list_of.extend(std::iter::repeat_n(lists.len(), run));
        lists.push(rows);
    }
    let shared: Vec<&[u32]> = list_of.iter().map(|&l| lists[l].as_slice()).collect();
    let (unfiltered, filtered) =
        true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &shared);
    let scores = naive_scores(&queries, &candidates);
    for i in 0..n_queries {
        assert_eq!(unfiltered[i], naive_rank(&scores, i, true_rows[i], &[]), "query {i}");
        assert_eq!(filtered[i], naive_rank(&scores, i, true_rows[i], shared[i]), "query {i}");
    }
    // The same lists as separate copies (nothing shared) rank alike.
    let copies: Vec<Vec<u32>> = shared.iter().map(|rows| rows.to_vec()).collect();
    assert_eq!(
        true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &copies),
        (unfiltered, filtered)
    );
}

#[test]
fn own_row_and_duplicate_rows_never_outrank_the_truth() {
    let mut rng = ChaCha8Rng::seed_from_u64(33);
    let queries = random((300, 32), &mut rng);
    let mut candidates = random((50, 32), &mut rng);
    let copy = candidates.row(7).to_owned();
    candidates.row_mut(8).assign(&copy);
    let ranks_7 = true_rank(queries.view(), candidates.view(), &[7; 300], None);
    let ranks_8 = true_rank(queries.view(), candidates.view(), &[8; 300], None);
    assert_eq!(ranks_7, ranks_8, "a duplicate row ties with the truth, from either side");
    let scores = naive_scores(&queries, &candidates);
    for (i, &rank) in ranks_7.iter().enumerate() {
        let strictly_better = (0..50).filter(|&j| scores[[i, j]] > scores[[i, 7]]).count() as u32;
        assert_eq!(rank, strictly_better, "query {i}");
    }
}

/// Evaluation leaves a query's true row in its exclusion list (only other rows of the same
/// identity are taken out): that must change no rank, since the truth is never above itself.
#[test]
fn excluding_the_true_row_itself_changes_no_rank() {
    let mut rng = ChaCha8Rng::seed_from_u64(34);
    let (n_queries, n_rows) = (200, 3000);
    let queries = random((n_queries, 32), &mut rng);
    let mut candidates = random((n_rows, 32), &mut rng);
    let copy = candidates.row(11).to_owned();
    candidates.row_mut(12).assign(&copy);
    let true_rows: Vec<u32> =
        (0..n_queries).map(|i| if i % 4 == 0 { 11 } else { rng.random_range(0..n_rows as u32) }).collect();
    let others: Vec<Vec<u32>> = (0..n_queries)
        .map(|i| {
            let mut rows: Vec<u32> = (0..30).map(|_| rng.random_range(0..n_rows as u32)).collect();
            rows.retain(|&r| r != true_rows[i]);
            rows.sort_unstable();
            rows.dedup();
            rows
        })
        .collect();
    let with_truth: Vec<Vec<u32>> = others
        .iter()
        .zip(&true_rows)
        .map(|(rows, &truth)| {
            let mut rows = rows.clone();
            rows.push(truth);
            rows.sort_unstable();
            rows
        })
        .collect();
    let without = true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &others);
    let with = true_rank_unfiltered_and_filtered(queries.view(), candidates.view(), &true_rows, &with_truth);
    assert_eq!(with, without);
    // The exclusions did remove rows above the truth somewhere, so the comparison has teeth.
    assert!(without.0.iter().zip(&without.1).any(|(all, filtered)| filtered < all));
}

#[test]
fn metric_is_an_example_weighted_mean_and_resets() {
    let mut metric = FactorizedTopK::new(&[1, 5]);
    assert_eq!(metric.accuracies(), [(1, 0.0), (5, 0.0)]);
    metric.update(&[0, 4, 5]);
    metric.update(&[0]);
    assert_eq!(metric.accuracies(), [(1, 0.5), (5, 0.75)]);
    metric.reset();
    assert_eq!(metric.n_queries(), 0);
}

#[test]
fn popularity_counts_by_key() {
    // Rows 1 and 2 are the same candidate (a duplicated title).
    let scores = popularity_scores(&[0, 1, 1, 2], [0, 1, 2, 2, 3]);
    assert_eq!(scores.to_vec(), [1.0, 3.0, 3.0, 1.0]);
}
