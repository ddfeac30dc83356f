//! Evaluation of a model (and of the popularity baseline) on a set of ratings: factorized top-k
//! over the whole catalogue, unfiltered and with each user's training items removed.

use std::borrow::Cow;

use eval::{popularity_scores, true_rank_unfiltered_and_filtered, FactorizedTopK, TFRS_KS};
use ndarray::{s, Array2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use towers::{TowerCache, TwoTower};

use crate::batch::{gather_inputs, with_views, BatchColumns};
use crate::Encoded;

/// Queries embedded per chunk.
const QUERY_CHUNK: usize = 8192;

/// Accuracy at each k, serialised as `{"top_1": …, "top_5": …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics(pub Vec<(usize, f64)>);

impl Metrics {
    /// Accuracy at `k`, if measured.
    pub fn at(&self, k: usize) -> Option<f64> {
        self.0.iter().find(|(kk, _)| *kk == k).map(|(_, a)| *a)
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, accuracy) in &self.0 {
            map.serialize_entry(&format!("top_{k}"), accuracy)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Metrics {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, f64>::deserialize(deserializer)?;
        let mut metrics = Vec::with_capacity(map.len());
        for (key, accuracy) in map {
            let k = key
                .strip_prefix("top_")
                .and_then(|k| k.parse().ok())
                .ok_or_else(|| serde::de::Error::custom(format!("metric {key:?}: expected top_K")))?;
            metrics.push((k, accuracy));
        }
        metrics.sort_by_key(|&(k, _)| k);
        Ok(Self(metrics))
    }
}

/// The metrics of one split.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SplitReport {
    /// Ranked against every catalogue row (the TFRS number).
    pub all: Metrics,
    /// Ranked with the user's training items removed (always labelled as such).
    pub seen_filtered: Metrics,
}

/// For each user, the catalogue rows to remove from its ranking: every row whose candidate
/// identity the user interacted with in training (rows sharing an identity, such as duplicated
/// titles in the TFRS tutorials, go together).
#[derive(Debug, Clone)]
pub struct SeenRows {
    per_user: Vec<Vec<u32>>,
    /// The catalogue rows of each candidate identity.
    rows_of_identity: Vec<Vec<u32>>,
}

impl SeenRows {
    /// Collects the rows from the training ratings.
    pub fn new(data: &Encoded, train_rows: &[usize]) -> Self {
        let n_identities = data.candidate_identity.iter().copied().max().map_or(0, |m| m as usize + 1);
        let mut rows_of_id: Vec<Vec<u32>> = vec![Vec::new(); n_identities];
        for (row, &id) in data.candidate_identity.iter().enumerate() {
            rows_of_id[id as usize].push(row as u32);
        }
        let mut per_user: Vec<Vec<u32>> = vec![Vec::new(); data.n_users()];
        for &r in train_rows {
            let id = data.candidate_identity[data.candidate_row[r] as usize];
            per_user[data.user[r] as usize].extend(&rows_of_id[id as usize]);
        }
        for rows in &mut per_user {
            rows.sort_unstable();
            rows.dedup();
        }
        Self { per_user, rows_of_identity: rows_of_id }
    }

    /// Whether `user` saw a row of candidate identity `identity` other than `row` (a binary
    /// search of its rows for each row of the identity): only then do its exclusions need a
    /// copy without them. `row` itself may stay excluded: a true row is never ranked above
    /// itself, so excluding it changes no rank.
    pub fn saw_another_row_of(&self, user: u32, identity: u32, row: u32) -> bool {
        let seen = self.of(user);
        let rows = self.rows_of_identity.get(identity as usize).map_or(&[][..], Vec::as_slice);
        rows.iter().any(|&other| other != row && seen.binary_search(&other).is_ok())
    }

    /// The rows seen by `user` (a dataset query id; empty for unknown users).
    pub fn of(&self, user: u32) -> &[u32] {
        self.per_user.get(user as usize).map_or(&[], Vec::as_slice)
    }
}

/// Candidate embeddings of every catalogue row, `(n_candidates, d)`.
pub fn embed_catalogue(model: &TwoTower, data: &Encoded, cache: &mut TowerCache) -> Array2<f32> {
    let mut buffers = Vec::new();
    gather_inputs(&data.candidate, 0..data.n_candidates(), &mut buffers);
    with_views(&buffers, |batch| model.candidate.forward(batch, cache).to_owned())
}

/// Query embeddings of interactions `rows`, `(rows.len(), d)`.
///
/// The two halves (split at a chunk boundary, whatever the thread count) run on two threads,
/// the second with buffers of its own; every row's embedding is computed alike either way.
pub fn embed_queries(model: &TwoTower, data: &Encoded, rows: &[usize], cache: &mut TowerCache) -> Array2<f32> {
    let mut out = Array2::zeros((rows.len(), model.query.out_dim()));
    let half = (rows.len().div_ceil(2).div_ceil(QUERY_CHUNK) * QUERY_CHUNK).min(rows.len());
    let (first, second) = out.view_mut().split_at(Axis(0), half);
    rayon::join(
        || embed_queries_into(model, data, &rows[..half], cache, first),
        || embed_queries_into(model, data, &rows[half..], &mut TowerCache::default(), second),
    );
    out
}

/// [`embed_queries`] of `rows` into `out`, chunk by chunk on the calling thread.
fn embed_queries_into(
    model: &TwoTower,
    data: &Encoded,
    rows: &[usize],
    cache: &mut TowerCache,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let mut columns = BatchColumns::default();
    for (chunk_idx, chunk) in rows.chunks(QUERY_CHUNK).enumerate() {
        columns.fill_queries(data, chunk);
        let start = chunk_idx * QUERY_CHUNK;
        with_views(&columns.query, |batch| {
            out.slice_mut(s![start..start + chunk.len(), ..]).assign(&model.query.forward(batch, cache));
        });
    }
}

/// Factorized top-k of `model` on interactions `rows`, over all catalogue rows.
///
/// Memory stays bounded whatever the number of rows: queries are embedded and ranked in chunks
/// of [`EVAL_CHUNK`] rows (their embeddings and exclusion lists exist for one chunk at a time).
pub fn evaluate_split(model: &TwoTower, data: &Encoded, rows: &[usize], seen: &SeenRows) -> SplitReport {
    evaluate_split_with_progress(model, data, rows, seen, &mut |_, _| {})
}

/// [`evaluate_split`], calling `progress(ranked, total)` after each chunk of [`EVAL_CHUNK`]
/// interactions (for progress bars over long evaluations).
pub fn evaluate_split_with_progress(
    model: &TwoTower,
    data: &Encoded,
    rows: &[usize],
    seen: &SeenRows,
    progress: &mut dyn FnMut(usize, usize),
) -> SplitReport {
    let catalogue = embed_catalogue(model, data, &mut TowerCache::default());
    let mut cache = TowerCache::default();
    let mut ranks = Ranks::default();
    let mut done = 0;
    for chunk in grouped_by_user(data, rows).chunks(EVAL_CHUNK) {
        let queries = embed_queries(model, data, chunk, &mut cache);
        ranks.add(queries.view(), catalogue.view(), data, chunk, seen);
        done += chunk.len();
        progress(done, rows.len());
    }
    ranks.report()
}

/// `rows` ordered by user (a stable sort): a user's queries are ranked side by side and share
/// one bitmap of its seen rows per catalogue tile instead of a lookup per query and seen row.
/// The metrics are sums over queries, so the order changes none of them.
fn grouped_by_user(data: &Encoded, rows: &[usize]) -> Vec<usize> {
    let mut grouped = rows.to_vec();
    grouped.par_sort_by_key(|&r| data.user[r]);
    grouped
}

/// Interactions embedded and ranked at once by [`evaluate_split`].
pub const EVAL_CHUNK: usize = 65_536;

/// Ranks collected chunk by chunk.
#[derive(Default)]
struct Ranks {
    all: Vec<u32>,
    seen_filtered: Vec<u32>,
}

impl Ranks {
    fn add(
        &mut self,
        queries: ndarray::ArrayView2<'_, f32>,
        catalogue: ndarray::ArrayView2<'_, f32>,
        data: &Encoded,
        rows: &[usize],
        seen: &SeenRows,
    ) {
        let (all, seen_filtered) = ranks(queries, catalogue, data, rows, seen);
        self.all.extend(all);
        self.seen_filtered.extend(seen_filtered);
    }

    fn report(&self) -> SplitReport {
        let metrics = |ranks: &[u32]| {
            let mut metric = FactorizedTopK::new(&TFRS_KS);
            metric.update(ranks);
            Metrics(metric.accuracies())
        };
        SplitReport { all: metrics(&self.all), seen_filtered: metrics(&self.seen_filtered) }
    }
}

/// The popularity baseline on interactions `rows`: every query scores each candidate by its
/// number of training interactions (by candidate identity).
pub fn popularity_split(data: &Encoded, train_rows: &[usize], rows: &[usize], seen: &SeenRows) -> SplitReport {
    let counts = popularity_scores(&data.candidate_identity, train_rows.iter().map(|&r| data.candidate_row[r]));
    let catalogue = counts.into_shape_with_order((data.n_candidates(), 1)).expect("one column");
    let mut ranks = Ranks::default();
    for chunk in grouped_by_user(data, rows).chunks(EVAL_CHUNK) {
        ranks.add(Array2::ones((chunk.len(), 1)).view(), catalogue.view(), data, chunk, seen);
    }
    ranks.report()
}

/// The EASE baseline (Steck 2019) on interactions `rows`: item-item weights fitted in closed form
/// on each user's training items (catalogue rows) with ridge `lambda`; a query scores every row
/// by the weights of its user's training items.
///
/// # Errors
/// [`eval::EaseError`] for catalogues beyond [`eval::EASE_MAX_ITEMS`] or a bad `lambda`.
pub fn ease_split(
    data: &Encoded,
    train_rows: &[usize],
    rows: &[usize],
    seen: &SeenRows,
    lambda: f64,
) -> Result<SplitReport, eval::EaseError> {
    let n = data.n_candidates();
    let mut items: Vec<Vec<u32>> = vec![Vec::new(); data.n_users()];
    for &r in train_rows {
        items[data.user[r] as usize].push(data.candidate_row[r]);
    }
    let ease = eval::Ease::fit(&items, n, lambda)?;
    // score(u, j) = Σ_i X_ui B_ij: queries are the users' binary item rows, the catalogue is Bᵀ.
    let catalogue = ease.weights.t().as_standard_layout().into_owned();
    let mut ranks = Ranks::default();
    for chunk in grouped_by_user(data, rows).chunks(EVAL_CHUNK / 16) {
        let mut queries = Array2::<f32>::zeros((chunk.len(), n));
        for (mut query, &r) in queries.rows_mut().into_iter().zip(chunk) {
            for &item in &items[data.user[r] as usize] {
                query[item as usize] = 1.0;
            }
        }
        ranks.add(queries.view(), catalogue.view(), data, chunk, seen);
    }
    Ok(ranks.report())
}

/// Each row's rank over the catalogue, unfiltered and with its user's training rows removed.
fn ranks(
    queries: ndarray::ArrayView2<'_, f32>,
    catalogue: ndarray::ArrayView2<'_, f32>,
    data: &Encoded,
    rows: &[usize],
    seen: &SeenRows,
) -> (Vec<u32>, Vec<u32>) {
    let true_rows: Vec<u32> = rows.iter().map(|&r| data.candidate_row[r]).collect();
    // Each query excludes its user's seen rows, borrowed: the most active users are also the
    // most queried, and copying their lists into every query's took 1.4 GB for 65 536 queries
    // of the 25M-shaped data. Only a list holding another row of the true candidate's identity
    // is copied, to keep that row in the ranking; the true row itself may stay excluded.
    let exclusions: Vec<Cow<'_, [u32]>> = rows
        .par_iter()
        .map(|&r| {
            let (user, true_row) = (data.user[r], data.candidate_row[r]);
            let id = data.candidate_identity[true_row as usize];
            let rows = seen.of(user);
            // A binary search per row of the identity, not a pass over the user's rows: the
            // most active users are the most queried, so passes cost Σ queries × seen rows
            // (and at 25M many users rated their test item in training as well).
            if seen.saw_another_row_of(user, id, true_row) {
                Cow::Owned(rows.iter().copied().filter(|&row| data.candidate_identity[row as usize] != id).collect())
            } else {
                Cow::Borrowed(rows)
            }
        })
        .collect();
    true_rank_unfiltered_and_filtered(queries, catalogue, &true_rows, &exclusions)
}

#[cfg(test)]
mod tests {
    use super::SeenRows;

    #[test]
    fn an_identity_is_seen_through_its_other_rows() {
        // Identity 1 has rows 1 and 5 (a duplicated title); user 0 saw rows 4 and 5.
        let seen = SeenRows {
            per_user: vec![vec![4, 5], vec![]],
            rows_of_identity: vec![vec![0], vec![1, 5], vec![4], vec![2]],
        };
        let saw = |user, identity, row| seen.saw_another_row_of(user, identity, row);
        // Row 5 of identity 1 was seen: from its other row 1, not from itself.
        assert!(saw(0, 1, 1) && !saw(0, 1, 5));
        // Identity 2 has only row 4: seen through no other row.
        assert!(!saw(0, 2, 4) && saw(0, 2, 0));
        assert!(!saw(0, 0, 0) && !saw(0, 3, 2) && !saw(1, 1, 1));
        // Unknown users and identities see nothing.
        assert!(!saw(7, 1, 1) && !saw(0, 9, 0));
    }
}
