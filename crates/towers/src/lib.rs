//! Two towers built from a list of inputs each: the model family of TensorFlow Recommenders.
//!
//! ```text
//! query:     [input_0 | input_1 | …] → dense head → (L2 normalise)   e.g. user id, time bucket, normalised time
//! candidate: [input_0 | input_1 | …] → dense head → (L2 normalise)   e.g. title id, masked mean of title tokens
//! score(q, c) = query(q) · candidate(c)
//! ```
//!
//! An input is an embedding lookup, a masked-mean bag of embeddings, or a numeric column
//! ([`InputKind`]); a [`ModelConfig`] lists them per tower with their table sizes. Each
//! [`Tower`] has a `forward` / `backward` pair whose [`TowerCache`] and [`TowerGrads`] hold one
//! entry per input, so nothing here knows which features a model has.
//!
//! ```
//! use rand::SeedableRng;
//! use towers::{InputKind, InputShape, ModelConfig, TowerConfig, TwoTower};
//! let id = |name: &str, rows| InputShape { name: name.into(), kind: InputKind::Lookup, rows, dim: 4 };
//! let config = ModelConfig {
//!     query: TowerConfig { inputs: vec![id("user", 10)], layer_sizes: vec![], l2_normalize: false },
//!     candidate: TowerConfig { inputs: vec![id("item", 5)], layer_sizes: vec![], l2_normalize: false },
//! };
//! let model = TwoTower::new(config.clone().validate().unwrap(), &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
//! assert_eq!(model.query.out_dim(), 4);
//! let mut bad = config;
//! bad.candidate.layer_sizes = vec![0];
//! assert!(bad.validate().is_err());
//! ```
#![warn(missing_docs)]

mod check;
mod config;
mod head;
mod input;
mod tower;

pub use check::{NamedShape, ShapeError, WEIGHT_LIMIT};
pub use config::{ConfigError, InputKind, InputShape, ModelConfig, TowerConfig, ValidModelConfig, MAX_ROWS, MAX_WIDTH};
pub use head::{Head, HeadCache, HeadGrads};
pub use input::{Input, InputColumn, InputLayer};
pub use tower::{Tower, TowerCache, TowerGrads};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Both towers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoTower {
    /// Maps queries (users and their context) to query embeddings.
    pub query: Tower,
    /// Maps candidates (items) to candidate embeddings.
    pub candidate: Tower,
}

impl TwoTower {
    /// Freshly initialised towers (Keras initialisers), the query tower's tables first, all
    /// drawn from `rng`.
    pub fn new(config: ValidModelConfig, rng: &mut impl Rng) -> Self {
        let query = Tower::new(&config.query, rng);
        let candidate = Tower::new(&config.candidate, rng);
        Self { query, candidate }
    }
}
