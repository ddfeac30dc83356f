//! Seeded synthetic ratings with planted structure, for tests and benchmarks that must not need
//! MovieLens: users and candidates fall into `n_groups` taste groups, and each interaction picks a
//! candidate of the user's own group with probability `affinity` (else any), with a skewed popularity
//! inside each choice. A model that learns the groups ranks the true candidate far above chance.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use towers::Vocabularies;

use crate::Encoded;

/// The shape of a synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticSpec {
    /// Users (indices 1..=n_query_ids; 0 stays the OOV row).
    pub n_query_ids: usize,
    /// Catalogue rows, each its own title (indices 1..=n_candidates).
    pub n_candidates: usize,
    /// Ratings.
    pub n_ratings: usize,
    /// Title-token vocabulary, padding and `[UNK]` included.
    pub n_tokens: usize,
    /// Timestamp buckets.
    pub n_buckets: usize,
    /// Taste groups.
    pub n_groups: usize,
    /// Probability that an interaction is with a candidate of the user's group.
    pub affinity: f64,
}

impl SyntheticSpec {
    /// MovieLens 100k's sizes (943 users, 1682 movies, 100 000 ratings, 2468 tokens, 1001 buckets).
    pub const MOVIELENS_100K: Self = Self {
        n_query_ids: 943,
        n_candidates: 1682,
        n_ratings: 100_000,
        n_tokens: 2468,
        n_buckets: 1001,
        n_groups: 20,
        affinity: 0.8,
    };

    /// Table sizes for the towers.
    pub fn vocabularies(&self) -> Vocabularies {
        Vocabularies {
            n_query_ids: self.n_query_ids + 1,
            n_buckets: self.n_buckets,
            n_candidate_ids: self.n_candidates + 1,
            n_tokens: self.n_tokens,
        }
    }

    /// The dataset, deterministic in `seed`.
    pub fn generate(&self, seed: u64) -> Encoded {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let group_size = self.n_candidates.div_ceil(self.n_groups);
        let candidate_tokens: Vec<Vec<u32>> = (0..self.n_candidates)
            .map(|m| {
                // One token shared by the group, plus a few random ones.
                let group_token = 2 + (m / group_size) as u32 % (self.n_tokens as u32 - 2);
                let extra = (0..rng.random_range(0..4)).map(|_| rng.random_range(2..self.n_tokens as u32));
                std::iter::once(group_token).chain(extra).collect()
            })
            .collect();
        let mut data = Encoded {
            query: Vec::with_capacity(self.n_ratings),
            bucket: Vec::with_capacity(self.n_ratings),
            normalized_timestamp: Vec::with_capacity(self.n_ratings),
            candidate_row: Vec::with_capacity(self.n_ratings),
            candidate_id: (1..=self.n_candidates as u32).collect(),
            candidate_tokens,
            candidate_name: (0..self.n_candidates).map(|m| format!("item {m}")).collect(),
        };
        for _ in 0..self.n_ratings {
            let user = rng.random_range(1..=self.n_query_ids as u32);
            let group = user as usize % self.n_groups;
            // Skewed popularity: the cube of a uniform favours low offsets.
            let skewed = |rng: &mut ChaCha8Rng, n: usize| ((rng.random::<f64>().powi(3)) * n as f64) as usize;
            let candidate = if rng.random::<f64>() < self.affinity {
                (group * group_size + skewed(&mut rng, group_size)).min(self.n_candidates - 1)
            } else {
                skewed(&mut rng, self.n_candidates)
            };
            data.query.push(user);
            data.bucket.push(rng.random_range(1..self.n_buckets as u32));
            data.normalized_timestamp.push(rng.random_range(-1.7f32..1.8));
            data.candidate_row.push(candidate as u32);
        }
        data
    }
}
