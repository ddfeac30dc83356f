//! The two towers of the TFRS tutorials, built from a typed [`ModelConfig`].
//!
//! ```text
//! query:     [query-id emb (32) | time-bucket emb (32) | normalised time (1)] → head
//! candidate: [candidate-id emb (32) | masked mean of text-token embs (32)]               → head
//! ```
//!
//! The bracketed parts after the ids are optional ([`QueryFeatures`], [`CandidateFeatures`]);
//! the head is a [`tensor::DenseStack`] (`layer_sizes`, ReLU between layers), or nothing for the
//! basic tutorial's bare embeddings. Each tower has a `forward` / `backward` pair with its own
//! `*Cache` and `*Grads` that hold the sub-layers' caches and grads field for field.
//!
//! ```
//! use rand::SeedableRng;
//! use towers::{CandidateFeatures, ModelConfig, QueryFeatures, TwoTower, Vocabularies};
//! let config = ModelConfig { query_features: QueryFeatures::Id, candidate_features: CandidateFeatures::Id, embedding_dim: 4, layer_sizes: vec![] };
//! let sizes = Vocabularies { n_query_ids: 10, n_buckets: 3, n_candidate_ids: 5, n_tokens: 6 };
//! let model = TwoTower::new(config.clone().validate().unwrap(), sizes, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
//! assert_eq!(model.query.out_dim(), 4);
//! assert!(ModelConfig { layer_sizes: vec![0], ..config }.validate().is_err());
//! ```
#![warn(missing_docs)]

mod candidate;
mod check;
mod config;
mod head;
mod query;

pub use candidate::{CandidateBatch, CandidateCache, CandidateGrads, CandidateTower};
pub use check::{NamedShape, ShapeError, WEIGHT_LIMIT};
pub use config::{
    CandidateFeatures, ConfigError, ModelConfig, QueryFeatures, ValidModelConfig, Vocabularies, MAX_WIDTH,
};
pub use head::{Head, HeadCache, HeadGrads};
pub use query::{QueryBatch, QueryCache, QueryGrads, QueryTower};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Both towers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoTower {
    /// Maps queries (users and their context) to query embeddings.
    pub query: QueryTower,
    /// Maps candidates (items) to candidate embeddings.
    pub candidate: CandidateTower,
}

impl TwoTower {
    /// Freshly initialised towers (Keras initialisers, drawn from `rng`).
    pub fn new(config: ValidModelConfig, sizes: Vocabularies, rng: &mut impl Rng) -> Self {
        let query = QueryTower::new(&config, &sizes, rng);
        let candidate = CandidateTower::new(&config, &sizes, rng);
        Self { query, candidate }
    }
}
