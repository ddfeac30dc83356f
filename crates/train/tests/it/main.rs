//! Integration tests of the training library: seeded end-to-end quality (synthetic data always,
//! the real MovieLens 100k when `MOVIELENS_DIR` is set), determinism, model files and configs.

mod checkpoint;
mod divergence;
mod export;
mod features;
mod gradients;
mod model_file;
mod quality;

use dataset::Split;
use train::synthetic::{Synthetic, SyntheticSpec};
use train::{Encoded, Experiment, Trainer, ValidTrainConfig};

#[path = "../common/tiny.rs"]
mod tiny;
pub use tiny::{tiny_dataset, tiny_model_file, EVERY_KIND};

/// A small structured dataset: 300 users, 200 movies in 10 taste groups.
pub const SMALL: SyntheticSpec = SyntheticSpec {
    n_query_ids: 300,
    n_candidates: 200,
    n_ratings: 20_000,
    n_tokens: 50,
    n_buckets: 11,
    n_groups: 10,
    affinity: 0.9,
};

/// The small synthetic data encoded for [`small_config`], with its split.
pub fn small_synthetic() -> Synthetic {
    SMALL.prepare(7, &small_config(1, 1))
}

pub fn small_data() -> (Encoded, Split) {
    let synthetic = small_synthetic();
    (synthetic.encoded, synthetic.split)
}

/// The context-with-timestamps model, shrunk for speed.
pub fn small_config(seed: u64, epochs: usize) -> ValidTrainConfig {
    let mut config = Experiment::ContextTimestamps.config(seed);
    config.model.embedding_dim = 16;
    config.model.set_layers(&[16]);
    config.batch_size = 256;
    config.epochs = epochs;
    config.validation_freq = Some(2);
    config.validate().unwrap()
}

/// A trainer of [`small_config`] for the small synthetic data.
pub fn small_trainer(seed: u64, epochs: usize) -> Trainer {
    Trainer::new(small_config(seed, epochs), small_synthetic().model)
}
