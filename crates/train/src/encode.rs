//! Fitting the Keras-exact features on MovieLens, and encoding ratings and movies as index columns.

use features::{Buckets, Normalizer, TextVectorizer, Vocabulary};
use movielens::Dataset;
use serde::{Deserialize, Serialize};
use tensor::Bags;
use towers::Vocabularies;

/// Timestamp buckets of the tutorials: 1000 boundaries from min to max.
const N_BOUNDARIES: usize = 1000;
/// `TextVectorization(max_tokens=10_000)`.
const MAX_TOKENS: usize = 10_000;

/// The adapted preprocessing layers, frozen; saved inside model files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedFeatures {
    /// Byte-sorted unique user ids (`np.unique`), OOV at 0.
    pub users: Vocabulary,
    /// Byte-sorted unique titles, OOV at 0.
    pub titles: Vocabulary,
    /// `np.linspace(min_ts, max_ts, 1000)` boundaries.
    pub buckets: Buckets,
    /// Normalisation adapted on every timestamp in file order.
    pub normalizer: Normalizer,
    /// Title tokens adapted on the 1682 movie titles.
    pub text: TextVectorizer,
    /// The latest timestamp seen when fitting (the default "now" for recommendations).
    pub max_timestamp: i64,
}

impl FittedFeatures {
    /// Adapts every layer exactly as the tutorials do (on all ratings and all movies).
    pub fn fit(data: &Dataset) -> Self {
        let timestamps: Vec<i64> = data.ratings.iter().map(|r| r.timestamp).collect();
        let min = timestamps.iter().copied().min().unwrap_or(0);
        let max = timestamps.iter().copied().max().unwrap_or(0);
        Self {
            users: Vocabulary::from_sorted_unique(data.ratings.iter().map(|r| r.user_id.to_string())),
            titles: Vocabulary::from_sorted_unique(data.movies.iter().map(|m| m.title.clone())),
            buckets: Buckets::linspace(min as f64, max as f64, N_BOUNDARIES),
            normalizer: Normalizer::adapt(&timestamps),
            text: TextVectorizer::adapt(data.movies.iter().map(|m| m.title.as_str()), MAX_TOKENS),
            max_timestamp: max,
        }
    }

    /// Embedding table sizes for the towers.
    pub fn vocabularies(&self) -> Vocabularies {
        Vocabularies {
            n_users: self.users.len(),
            n_buckets: self.buckets.n_buckets(),
            n_titles: self.titles.len(),
            n_tokens: self.text.len(),
        }
    }

    /// Checks what deserialising cannot: bucket boundaries ordered, normalisation finite.
    ///
    /// # Errors
    /// A description naming the feature.
    pub fn check(&self) -> Result<(), String> {
        self.buckets.check().map_err(|e| format!("timestamp buckets: {e}"))?;
        let Normalizer { mean, variance } = self.normalizer;
        if !(mean.is_finite() && variance.is_finite() && variance >= 0.0) {
            return Err(format!(
                "timestamp normalisation: mean {mean}, variance {variance}; expected finite, variance ≥ 0"
            ));
        }
        Ok(())
    }

    /// Rebuilds lookup tables after deserialising.
    pub fn rebuild_indices(&mut self) {
        self.users.rebuild_index();
        self.titles.rebuild_index();
        self.text.rebuild_index();
    }
}

/// A dataset encoded by [`FittedFeatures`]: one column per feature.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Per rating: user index.
    pub user: Vec<u32>,
    /// Per rating: timestamp bucket.
    pub bucket: Vec<u32>,
    /// Per rating: normalised timestamp.
    pub normalized_timestamp: Vec<f32>,
    /// Per rating: the row of the rated movie in the catalogue (`u.item` order).
    pub movie_row: Vec<u32>,
    /// Per catalogue row: title index.
    pub movie_title: Vec<u32>,
    /// Per catalogue row: title token ids.
    pub movie_tokens: Vec<Vec<u32>>,
    /// Per catalogue row: the title, for reports.
    pub movie_name: Vec<String>,
}

impl Encoded {
    /// Encodes every rating and movie row.
    ///
    /// # Panics
    /// If a rating names a movie `data.movies` lacks (`Dataset::load` rules this out).
    pub fn new(data: &Dataset, features: &FittedFeatures) -> Self {
        let n = data.ratings.len();
        let mut encoded = Self {
            user: Vec::with_capacity(n),
            bucket: Vec::with_capacity(n),
            normalized_timestamp: Vec::with_capacity(n),
            movie_row: Vec::with_capacity(n),
            movie_title: data.movies.iter().map(|m| features.titles.lookup(&m.title)).collect(),
            movie_tokens: data.movies.iter().map(|m| features.text.encode(&m.title)).collect(),
            movie_name: data.movies.iter().map(|m| m.title.clone()).collect(),
        };
        for rating in &data.ratings {
            encoded.user.push(features.users.lookup(&rating.user_id.to_string()));
            encoded.bucket.push(features.buckets.bucketize(rating.timestamp));
            encoded.normalized_timestamp.push(features.normalizer.normalize(rating.timestamp));
            let row = data.movie_row(rating.movie_id).expect("Dataset::load checked every movie id");
            encoded.movie_row.push(row as u32);
        }
        encoded
    }

    /// Number of catalogue rows (1682 for ML-100k).
    pub fn n_movies(&self) -> usize {
        self.movie_title.len()
    }

    /// The token bags of catalogue rows `rows`, into `bags`.
    pub fn fill_bags(&self, rows: impl ExactSizeIterator<Item = u32>, bags: &mut Bags) {
        bags.clear();
        let longest = self.movie_tokens.iter().map(Vec::len).max().unwrap_or(0);
        bags.reserve(rows.len(), longest);
        for row in rows {
            bags.push(&self.movie_tokens[row as usize]);
        }
    }
}
