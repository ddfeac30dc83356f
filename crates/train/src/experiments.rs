//! The TFRS tutorials' experiments, each with its own settings.

use serde::{Deserialize, Serialize};
use towers::{CandidateFeatures, ModelConfig, QueryFeatures};

use crate::{Shuffle, TrainConfig};

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

    /// The tutorial's settings, seeded.
    pub fn config(self, seed: u64) -> TrainConfig {
        let rich = |query_features, layer_sizes: Vec<usize>| ModelConfig {
            query_features,
            candidate_features: CandidateFeatures::IdAndText,
            embedding_dim: 32,
            layer_sizes,
        };
        let base = TrainConfig {
            name: self.name().to_string(),
            model: rich(QueryFeatures::IdAndTime, vec![32]),
            batch_size: 2048,
            epochs: 3,
            learning_rate: 0.1,
            seed,
            validation_freq: None,
            temperature: None,
            logq: false,
            remove_accidental_hits: false,
            num_hard_negatives: None,
            logq_streaming_alpha: None,
            batch_metrics: false,
            shuffle: Shuffle::EachEpoch,
        };
        let deep = |layer_sizes| TrainConfig {
            model: rich(QueryFeatures::IdAndTime, layer_sizes),
            epochs: 300,
            validation_freq: Some(5),
            ..base.clone()
        };
        match self {
            Self::Basic => TrainConfig {
                model: ModelConfig {
                    query_features: QueryFeatures::Id,
                    candidate_features: CandidateFeatures::Id,
                    embedding_dim: 32,
                    layer_sizes: vec![],
                },
                batch_size: 8192,
                batch_metrics: true,
                shuffle: Shuffle::Once,
                ..base
            },
            Self::Context => TrainConfig { model: rich(QueryFeatures::Id, vec![32]), ..base },
            Self::ContextTimestamps => base,
            Self::Deep1 => deep(vec![32]),
            Self::Deep2 => deep(vec![64, 32]),
            Self::Deep3 => deep(vec![128, 64, 32]),
        }
    }
}
