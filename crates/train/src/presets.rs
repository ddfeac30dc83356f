//! Shipped specs by name: the six TFRS tutorials and the MovieLens 100k preset that
//! `cargo xtask train` runs when given nothing.

use crate::{Experiment, TrainConfig};

/// The name of the default preset.
pub const DEFAULT_NAME: &str = "movielens-100k";

/// The text of `configs/movielens-100k/best.toml`.
pub const BEST_MOVIELENS_100K: &str = include_str!("../configs/movielens-100k/best.toml");

/// The spec named `name`: a tutorial (`basic`, …, `deep-3`) or [`DEFAULT_NAME`].
pub fn named(name: &str) -> Option<TrainConfig> {
    if name == DEFAULT_NAME {
        let config = TrainConfig::from_toml(BEST_MOVIELENS_100K)
            .unwrap_or_else(|e| panic!("the shipped configs/movielens-100k/best.toml does not parse: {e}"));
        return Some(config);
    }
    Experiment::from_name(name).map(|e| e.config(42))
}
