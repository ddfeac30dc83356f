//! The model's typed configuration, validated once before anything is built.

use serde::{Deserialize, Serialize};

/// Which features feed the query tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryFeatures {
    /// The query-id embedding alone (the user id in the basic and context-without-timestamps tutorials).
    Id,
    /// Query id, time-bucket embedding and normalised time (the tutorials' `UserModel`, 2·dim + 1 wide).
    IdAndTime,
}

/// Which features feed the candidate tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CandidateFeatures {
    /// The candidate-id embedding alone (the title in the basic tutorial).
    Id,
    /// Candidate id and the masked mean of text-token embeddings (the tutorials' `MovieModel`, 2·dim wide).
    IdAndText,
}

/// The widest embedding or dense layer accepted (the tutorials use 32 to 128).
pub const MAX_WIDTH: usize = 4096;

/// The model's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Query-side features.
    pub query_features: QueryFeatures,
    /// Candidate-side features.
    pub candidate_features: CandidateFeatures,
    /// Width of every embedding table (32 in the tutorials).
    pub embedding_dim: usize,
    /// Dense head of both towers: ReLU after every layer but the last. Empty: no head.
    pub layer_sizes: Vec<usize>,
}

/// Numbers of rows of the embedding tables, from the fitted features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocabularies {
    /// Query ids, OOV included.
    pub n_query_ids: usize,
    /// Timestamp buckets.
    pub n_buckets: usize,
    /// Candidate ids, OOV included.
    pub n_candidate_ids: usize,
    /// Text tokens, padding and `[UNK]` included.
    pub n_tokens: usize,
}

/// A [`ModelConfig`] that passed [`ModelConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidModelConfig(ModelConfig);

/// Why a [`ModelConfig`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `embedding_dim` is 0.
    #[error("embedding_dim must be at least 1")]
    ZeroEmbeddingDim,
    /// A layer size is 0.
    #[error("layer_sizes {layer_sizes:?}: every layer needs at least 1 unit (layer {index} has 0)")]
    ZeroLayerSize {
        /// The sizes given.
        layer_sizes: Vec<usize>,
        /// The offending position.
        index: usize,
    },
    /// A width above [`MAX_WIDTH`].
    #[error("{what} {value}: at most {MAX_WIDTH} (every batch and evaluation chunk holds rows this wide; the tutorials use 32 to 128)")]
    TooWide {
        /// Which width (`embedding_dim` or `layer_sizes[i]`).
        what: String,
        /// The value given.
        value: usize,
    },
    /// Without a head, the two towers' feature widths must agree for the dot product.
    #[error("query width {query} != candidate width {candidate}: without layer_sizes both towers output their concatenated features, which must have equal widths (add layer_sizes, or match the feature sets)")]
    MismatchedWidths {
        /// Query tower output width.
        query: usize,
        /// Candidate tower output width.
        candidate: usize,
    },
}

impl ModelConfig {
    /// Checks every rule, so that building the towers cannot fail later.
    pub fn validate(self) -> Result<ValidModelConfig, ConfigError> {
        if self.embedding_dim == 0 {
            return Err(ConfigError::ZeroEmbeddingDim);
        }
        if self.embedding_dim > MAX_WIDTH {
            return Err(ConfigError::TooWide { what: "embedding_dim".to_string(), value: self.embedding_dim });
        }
        if let Some(index) = self.layer_sizes.iter().position(|&s| s > MAX_WIDTH) {
            return Err(ConfigError::TooWide { what: format!("layer_sizes[{index}]"), value: self.layer_sizes[index] });
        }
        if let Some(index) = self.layer_sizes.iter().position(|&s| s == 0) {
            return Err(ConfigError::ZeroLayerSize { layer_sizes: self.layer_sizes, index });
        }
        if self.layer_sizes.is_empty() && self.query_width() != self.candidate_width() {
            return Err(ConfigError::MismatchedWidths { query: self.query_width(), candidate: self.candidate_width() });
        }
        Ok(ValidModelConfig(self))
    }

    /// Width of the query tower's concatenated features.
    pub fn query_width(&self) -> usize {
        match self.query_features {
            QueryFeatures::Id => self.embedding_dim,
            QueryFeatures::IdAndTime => 2 * self.embedding_dim + 1,
        }
    }

    /// Width of the candidate tower's concatenated features.
    pub fn candidate_width(&self) -> usize {
        match self.candidate_features {
            CandidateFeatures::Id => self.embedding_dim,
            CandidateFeatures::IdAndText => 2 * self.embedding_dim,
        }
    }
}

impl std::ops::Deref for ValidModelConfig {
    type Target = ModelConfig;

    fn deref(&self) -> &ModelConfig {
        &self.0
    }
}
