//! Batching: a seeded shuffle of the training rows, and the feature columns of one batch.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tensor::Bags;
use towers::{CandidateBatch, QueryBatch};

use crate::{Encoded, Shuffle};

/// Yields the order of training rows for each epoch.
#[derive(Debug, Clone)]
pub struct Shuffler {
    order: Vec<usize>,
    mode: Shuffle,
    rng: ChaCha8Rng,
    shuffled_once: bool,
}

impl Shuffler {
    /// A shuffler over `rows`, seeded (its own ChaCha8 stream, independent of initialisation).
    pub fn new(rows: &[usize], mode: Shuffle, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Self { order: rows.to_vec(), mode, rng, shuffled_once: false }
    }

    /// The order for the next epoch: reshuffled each time, or once and then replayed.
    pub fn next_epoch(&mut self) -> &[usize] {
        if self.mode == Shuffle::EachEpoch || !self.shuffled_once {
            self.order.shuffle(&mut self.rng);
            self.shuffled_once = true;
        }
        &self.order
    }
}

/// The feature columns of one batch, in reusable buffers.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchColumns {
    pub query_ids: Vec<u32>,
    pub buckets: Vec<u32>,
    pub normalized_timestamps: Vec<f32>,
    pub candidate_rows: Vec<u32>,
    pub candidate_ids: Vec<u32>,
    pub tokens: Bags,
    pub probabilities: Vec<f32>,
}

impl BatchColumns {
    /// Gathers the columns of ratings `rows`; `candidate_probability` feeds the logQ correction.
    pub fn fill(&mut self, data: &Encoded, rows: &[usize], candidate_probability: Option<&[f32]>) {
        self.query_ids.clear();
        self.buckets.clear();
        self.normalized_timestamps.clear();
        self.candidate_rows.clear();
        for &r in rows {
            self.query_ids.push(data.query[r]);
            self.buckets.push(data.bucket[r]);
            self.normalized_timestamps.push(data.normalized_timestamp[r]);
            self.candidate_rows.push(data.candidate_row[r]);
        }
        self.candidate_ids.clear();
        self.candidate_ids.extend(self.candidate_rows.iter().map(|&m| data.candidate_id[m as usize]));
        data.fill_bags(self.candidate_rows.iter().copied(), &mut self.tokens);
        self.probabilities.clear();
        if let Some(p) = candidate_probability {
            self.probabilities.extend(self.candidate_ids.iter().map(|&t| p[t as usize]));
        }
    }

    pub fn query(&self) -> QueryBatch<'_> {
        QueryBatch { ids: &self.query_ids, buckets: &self.buckets, normalized_timestamps: &self.normalized_timestamps }
    }

    pub fn candidate(&self) -> CandidateBatch<'_> {
        CandidateBatch { ids: &self.candidate_ids, tokens: &self.tokens }
    }
}
