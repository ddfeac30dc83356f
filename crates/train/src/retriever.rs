//! `Retriever`: recommendations from a loaded model file — encode a raw query, embed the
//! catalogue once, exclude what the user saw in training, take the exact top-k.
//!
//! The binaries only parse flags and print; every rule about queries lives here, so a caller
//! (the `recommend` command, a test, later a server) cannot get it subtly different.

use eval::BruteForceIndex;
use ndarray::Array2;
use tensor::Bags;
use towers::{CandidateBatch, CandidateCache, QueryBatch, QueryCache};

use crate::ModelFile;

/// A model file with its catalogue embedded, ready for queries.
#[derive(Debug)]
pub struct Retriever {
    file: ModelFile,
    index: BruteForceIndex,
}

/// One recommended catalogue row.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The catalogue row.
    pub row: u32,
    /// The candidate key in the source data.
    pub key: String,
    /// What to show: its text (e.g. the title), else its key.
    pub name: String,
    /// Its exact score `q·c`.
    pub score: f32,
}

/// A query for one known user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery<'a> {
    /// The user id as in the training data.
    pub user: &'a str,
    /// Unix time of the query; `None`: the latest time in the training data.
    pub at: Option<i64>,
    /// How many items (clamped to the catalogue).
    pub k: usize,
    /// Keep the items the user interacted with in training.
    pub include_seen: bool,
}

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The user is not in the model's vocabulary.
    #[error("user {user:?}: not a user of this model's training data ({n_known} known user ids); an unknown user would only get the shared OOV embedding, so no personal recommendation exists")]
    UnknownUser {
        /// The id asked for.
        user: String,
        /// Known user ids.
        n_known: usize,
    },
    /// `k` is 0.
    #[error("k must be at least 1")]
    ZeroK,
    /// The time is too far outside the training data's span.
    #[error("time {at}: expected a Unix time between {lo} and {hi} (the training data spans {first} to {last}; further out than that span again, the time features extrapolate into values the model never saw)")]
    TimeOutOfRange {
        /// The time asked for.
        at: i64,
        /// Earliest accepted.
        lo: i64,
        /// Latest accepted.
        hi: i64,
        /// Earliest training time.
        first: i64,
        /// Latest training time.
        last: i64,
    },
}

impl Retriever {
    /// Embeds the catalogue of a (validated) model file.
    pub fn new(file: ModelFile) -> Self {
        let ids: Vec<u32> = file.catalogue.iter().map(|c| file.features.candidate_ids.lookup(&c.id)).collect();
        let mut bags = Bags::default();
        for row in &file.catalogue {
            bags.push(&row.text.as_deref().map(|t| file.features.text.encode(t)).unwrap_or_default());
        }
        let catalogue: Array2<f32> = file
            .model
            .candidate
            .forward(&CandidateBatch { ids: &ids, tokens: &bags }, &mut CandidateCache::default())
            .to_owned();
        // The index names rows by their catalogue row, so exclusions are rows too.
        let rows: Vec<u32> = (0..file.catalogue.len() as u32).collect();
        let index = BruteForceIndex::new(catalogue, rows);
        Self { file, index }
    }

    /// The model file.
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// The catalogue rows user index `user` interacted with in training.
    pub fn seen(&self, user: u32) -> &[u32] {
        self.file.seen.get(user as usize).map_or(&[], Vec::as_slice)
    }

    /// The user's index, or why there is none.
    ///
    /// # Errors
    /// [`QueryError::UnknownUser`].
    pub fn user_index(&self, user: &str) -> Result<u32, QueryError> {
        match self.file.features.query_ids.lookup(user) {
            features::OOV_INDEX => {
                Err(QueryError::UnknownUser { user: user.to_string(), n_known: self.file.features.query_ids.len() - 1 })
            }
            index => Ok(index),
        }
    }

    /// The best `k` items for a known user, best first.
    ///
    /// # Errors
    /// [`QueryError`] for an unknown user, `k = 0` or a time out of range.
    pub fn recommend(&self, query: &UserQuery<'_>) -> Result<Vec<Recommendation>, QueryError> {
        self.recommend_many(std::slice::from_ref(query)).pop().expect("one answer per query")
    }

    /// [`Self::recommend`] for many queries at once: one forward pass of the query tower and one
    /// scoring pass over the catalogue for all of them. Answers are in the order of `queries`,
    /// each the same as [`Self::recommend`] would give.
    pub fn recommend_many(&self, queries: &[UserQuery<'_>]) -> Vec<Result<Vec<Recommendation>, QueryError>> {
        let features = &self.file.features;
        let checked: Vec<Result<(u32, i64), QueryError>> = queries
            .iter()
            .map(|query| {
                let user = self.user_index(query.user)?;
                if query.k == 0 {
                    return Err(QueryError::ZeroK);
                }
                let at = match query.at {
                    Some(at) => self.check_time(at)?,
                    None => features.max_timestamp,
                };
                Ok((user, at))
            })
            .collect();
        let valid: Vec<usize> = (0..queries.len()).filter(|&i| checked[i].is_ok()).collect();
        let mut answers: Vec<Result<Vec<Recommendation>, QueryError>> =
            checked.iter().map(|c| c.as_ref().map(|_| Vec::new()).map_err(Clone::clone)).collect();
        if valid.is_empty() {
            return answers;
        }
        let pairs: Vec<(u32, i64)> = valid.iter().map(|&i| *checked[i].as_ref().expect("valid")).collect();
        let users: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let times: Vec<i64> = pairs.iter().map(|p| p.1).collect();
        let embedded = self.embed_users_at(&users, &times);
        let exclusions: Vec<Vec<u32>> = valid
            .iter()
            .zip(&users)
            .map(|(&i, &user)| if queries[i].include_seen { Vec::new() } else { self.seen(user).to_vec() })
            .collect();
        let k_max = valid.iter().map(|&i| queries[i].k).max().unwrap_or(1);
        let tops = self.index.top_k(embedded.view(), k_max, Some(&exclusions));
        for (&i, top) in valid.iter().zip(tops) {
            let items = top
                .rows
                .iter()
                .zip(&top.scores)
                .take(queries[i].k)
                .map(|(&row, &score)| {
                    let item = &self.file.catalogue[row as usize];
                    Recommendation { row, key: item.key.clone(), name: item.display().to_string(), score }
                })
                .collect();
            answers[i] = Ok(items);
        }
        answers
    }

    /// The catalogue embeddings, `(n_rows, d)`, row `i` for `file().catalogue[i]`.
    pub fn catalogue_embeddings(&self) -> ndarray::ArrayView2<'_, f32> {
        self.index.candidates()
    }

    /// Query embeddings of user indices `users` at Unix time `at`, `(users.len(), d)`.
    pub fn embed_users(&self, users: &[u32], at: i64) -> Array2<f32> {
        self.embed_users_at(users, &vec![at; users.len()])
    }

    /// Query embeddings of user indices `users`, each at its own Unix time, `(users.len(), d)`.
    fn embed_users_at(&self, users: &[u32], times: &[i64]) -> Array2<f32> {
        let features = &self.file.features;
        let buckets: Vec<u32> = times.iter().map(|&t| features.buckets.bucketize(t)).collect();
        let normalized: Vec<f32> = times.iter().map(|&t| features.normalizer.normalize(t)).collect();
        let batch = QueryBatch { ids: users, buckets: &buckets, normalized_timestamps: &normalized };
        self.file.model.query.forward(&batch, &mut QueryCache::default()).to_owned()
    }

    /// `at` must lie within the span the timestamp features were fitted on, widened by that span
    /// on each side.
    fn check_time(&self, at: i64) -> Result<i64, QueryError> {
        let features = &self.file.features;
        let last = features.max_timestamp;
        let first = features.buckets.boundaries().first().map_or(last, |&b| b as i64);
        let span = (last - first).max(1);
        let (lo, hi) = (first.saturating_sub(span), last.saturating_add(span));
        if (lo..=hi).contains(&at) {
            Ok(at)
        } else {
            Err(QueryError::TimeOutOfRange { at, lo, hi, first, last })
        }
    }
}
