//! Seeded synthetic interactions with planted structure, for tests and benchmarks that must not
//! need MovieLens: users and candidates fall into `n_groups` taste groups, and each interaction
//! picks a candidate of the user's own group with probability `affinity` (else any), with a
//! skewed popularity inside each choice. A model that learns the groups ranks the true candidate
//! far above chance.
//!
//! The output is a neutral [`Dataset`] (a candidate table with a `title` and `genres`, a query
//! table with `age` and `segment`, timestamped interactions), so every spec trains on it through
//! the same fitting and encoding as real data.

use dataset::{Column, ColumnType, Dataset, Interactions, Split, Table};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use towers::ValidModelConfig;

use crate::{Encoded, FittedFeatures, TrainConfig};

/// The shape of a synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticSpec {
    /// Users.
    pub n_query_ids: usize,
    /// Catalogue rows, each with its own title.
    pub n_candidates: usize,
    /// Interactions.
    pub n_ratings: usize,
    /// Words that titles draw from besides their own name and group word.
    pub n_tokens: usize,
    /// Distinct timestamps (one hour apart).
    pub n_buckets: usize,
    /// Taste groups.
    pub n_groups: usize,
    /// Probability that an interaction is with a candidate of the user's group.
    pub affinity: f64,
}

/// A synthetic dataset fitted and encoded for one configuration.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// The raw data.
    pub dataset: Dataset,
    /// The configuration's features, fitted on all of it.
    pub features: FittedFeatures,
    /// The encoded columns.
    pub encoded: Encoded,
    /// A seeded 80/20 split.
    pub split: Split,
    /// The towers' shapes.
    pub model: ValidModelConfig,
}

impl SyntheticSpec {
    /// MovieLens 100k's sizes (943 users, 1682 movies, 100 000 ratings, about 2500 tokens).
    pub const MOVIELENS_100K: Self = Self {
        n_query_ids: 943,
        n_candidates: 1682,
        n_ratings: 100_000,
        n_tokens: 800,
        n_buckets: 5000,
        n_groups: 20,
        affinity: 0.8,
    };

    /// The dataset, deterministic in `seed`.
    pub fn dataset(&self, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let group_size = self.n_candidates.div_ceil(self.n_groups);
        let (mut title, mut genres) = (Column::empty(ColumnType::String), Column::empty(ColumnType::StringList));
        for m in 0..self.n_candidates {
            let group = m / group_size;
            let extra: Vec<String> =
                (0..rng.random_range(0..4)).map(|_| format!("w{}", rng.random_range(0..self.n_tokens))).collect();
            title.push_string(&format!("Item{m} g{group} {}", extra.join(" ")));
            genres.push_list([format!("g{group}").as_str(), if m % 2 == 0 { "even" } else { "odd" }]);
        }
        let candidates = Table::new(
            (0..self.n_candidates).map(|m| format!("item-{m}")),
            vec![("title".into(), title), ("genres".into(), genres)],
        )
        .expect("unique keys, equal lengths");
        let (mut age, mut segment) = (Vec::new(), Vec::new());
        for u in 0..self.n_query_ids {
            age.push(18 + (u * 7 % 50) as i64);
            segment.push((u % self.n_groups) as i64);
        }
        let queries = Table::new(
            (0..self.n_query_ids).map(|u| format!("user-{u}")),
            vec![("age".into(), Column::Integer(age)), ("segment".into(), Column::Integer(segment))],
        )
        .expect("unique keys, equal lengths");
        let mut interactions =
            Interactions { timestamp: Some(Vec::with_capacity(self.n_ratings)), ..Interactions::default() };
        let keys: Vec<String> = (0..self.n_query_ids).map(|u| format!("user-{u}")).collect();
        for _ in 0..self.n_ratings {
            let user = rng.random_range(0..self.n_query_ids);
            let group = user % self.n_groups;
            // Skewed popularity: the cube of a uniform favours low offsets.
            let skewed = |rng: &mut ChaCha8Rng, n: usize| ((rng.random::<f64>().powi(3)) * n as f64) as usize;
            let candidate = if rng.random::<f64>() < self.affinity {
                (group * group_size + skewed(&mut rng, group_size)).min(self.n_candidates - 1)
            } else {
                skewed(&mut rng, self.n_candidates)
            };
            interactions.query.push(interactions.query_keys.intern(&keys[user]));
            interactions.candidate.push(candidate as u32);
            let hour = rng.random_range(0..self.n_buckets as i64);
            interactions.timestamp.as_mut().expect("with timestamps").push(1_600_000_000 + 3600 * hour);
        }
        Dataset { source: format!("synthetic (seed {seed})"), interactions, candidates, queries: Some(queries) }
    }

    /// The dataset of `seed`, fitted and encoded for `config`, with a seeded 80/20 split.
    ///
    /// # Panics
    /// If `config` reads a column the synthetic data lacks (it has `title`, `genres`, `age`,
    /// `segment`, `$key` and `$timestamp`).
    pub fn prepare(&self, seed: u64, config: &TrainConfig) -> Synthetic {
        let dataset = self.dataset(seed);
        let split = Split::seeded(self.n_ratings, seed, 0.8);
        let features = FittedFeatures::fit(&dataset, &config.model, None).expect("the synthetic data has every column");
        let encoded = Encoded::new(&dataset, &config.model, &features, &split.train).expect("synthetic values encode");
        let model = features
            .model_config(&config.model)
            .and_then(|m| m.validate().map_err(|e| e.to_string()))
            .expect("a valid configuration fits");
        Synthetic { dataset, features, encoded, split, model }
    }
}
