//! The TFRS tutorials' experiments: spec files shipped under `configs/tutorials/`, compiled in
//! so that the binaries run from anywhere.

use serde::{Deserialize, Serialize};

use crate::TrainConfig;

/// A named experiment from the tutorials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Experiment {
    /// `basic_retrieval`: id embeddings only, batch 8192, 3 epochs, metrics on every batch.
    Basic,
    /// `context_features` with `use_timestamps=False`: Dense(32) projections, batch 2048, 3 epochs.
    Context,
    /// `context_features` with `use_timestamps=True`.
    ContextTimestamps,
    /// `deep_recommenders`, layers `[32]`, 300 epochs, validation every 5.
    Deep1,
    /// `deep_recommenders`, layers `[64, 32]`.
    Deep2,
    /// `deep_recommenders`, layers `[128, 64, 32]`.
    Deep3,
}

impl Experiment {
    /// Every experiment, in the order `all` runs them.
    pub const ALL: [Experiment; 6] =
        [Self::Basic, Self::Context, Self::ContextTimestamps, Self::Deep1, Self::Deep2, Self::Deep3];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Context => "context",
            Self::ContextTimestamps => "context-timestamps",
            Self::Deep1 => "deep-1",
            Self::Deep2 => "deep-2",
            Self::Deep3 => "deep-3",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The shipped spec file (`configs/tutorials/<name>.toml`), as text.
    pub fn spec_text(self) -> &'static str {
        match self {
            Self::Basic => include_str!("../configs/tutorials/basic.toml"),
            Self::Context => include_str!("../configs/tutorials/context.toml"),
            Self::ContextTimestamps => include_str!("../configs/tutorials/context-timestamps.toml"),
            Self::Deep1 => include_str!("../configs/tutorials/deep-1.toml"),
            Self::Deep2 => include_str!("../configs/tutorials/deep-2.toml"),
            Self::Deep3 => include_str!("../configs/tutorials/deep-3.toml"),
        }
    }

    /// The tutorial's settings, seeded.
    pub fn config(self, seed: u64) -> TrainConfig {
        let config = TrainConfig::from_toml(self.spec_text())
            .unwrap_or_else(|e| panic!("the shipped spec of {} does not parse: {e}", self.name()));
        TrainConfig { seed, ..config }
    }
}
