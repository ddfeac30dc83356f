//! `TrainConfig` (serde: a TOML spec file, a shipped preset, or flags) → `validate()` →
//! `ValidTrainConfig`.
//!
//! A spec file is a `TrainConfig` in TOML: the training settings at the top level and the
//! towers' features under `[model]` (see [`crate::spec`]). Unknown keys are errors, so a typo
//! cannot silently fall back to a default.

use serde::{Deserialize, Serialize};

use crate::batch::MAX_FEATURES;
use crate::spec::{ModelSpec, SpecError};

/// The largest batch accepted: the loss holds `B × B` f32 logits (1 GiB at 16384).
pub const MAX_BATCH_SIZE: usize = 16_384;
/// The largest number of epochs accepted (the deep tutorials run 300).
pub const MAX_EPOCHS: usize = 1_000_000;

/// How batches are drawn from the training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shuffle {
    /// Shuffle once and replay the same batches every epoch (the basic tutorial's
    /// `shuffle().batch().cache()`).
    Once,
    /// Reshuffle at every epoch (the context and deep tutorials).
    EachEpoch,
}

fn default_seed() -> u64 {
    42
}

fn default_shuffle() -> Shuffle {
    Shuffle::EachEpoch
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The experiment's name, for reports.
    pub name: String,
    /// The towers' features and layers.
    pub model: ModelSpec,
    /// Examples per in-batch softmax; the last partial batch is kept.
    pub batch_size: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Adagrad's step size (the tutorials use 0.1).
    pub learning_rate: f32,
    /// Seeds initialisation, shuffling and sampled negatives (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Validate every this many epochs (Keras' `validation_freq`); `None`: only after the last.
    #[serde(default)]
    pub validation_freq: Option<usize>,
    /// Softmax temperature; `None` means 1.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Subtract `log p(candidate)` (its share of training interactions) from the logits.
    #[serde(default)]
    pub logq: bool,
    /// With `logq`: estimate `p` while training with the streaming estimator of Yi et al. 2019
    /// at this moving-average rate, instead of counting the training set up front.
    #[serde(default)]
    pub logq_streaming_alpha: Option<f32>,
    /// Mask in-batch candidates with the positive's identity out of the negatives.
    #[serde(default)]
    pub remove_accidental_hits: bool,
    /// Keep only the hardest `h` in-batch negatives per query (TFRS `num_hard_negatives`).
    #[serde(default)]
    pub num_hard_negatives: Option<usize>,
    /// Mixed negative sampling (Yang et al. 2020): this many catalogue rows drawn uniformly per
    /// batch, appended to the in-batch candidates as extra negatives.
    #[serde(default)]
    pub mixed_negatives: Option<usize>,
    /// Per-epoch validation on a seeded sample of this many validation interactions instead of
    /// all of them (for large data; the final evaluation is always complete). Reports say so.
    #[serde(default)]
    pub validation_sample: Option<usize>,
    /// Compute factorized top-k on every training batch, before its update (basic tutorial).
    #[serde(default)]
    pub batch_metrics: bool,
    /// Batch order (default: reshuffled every epoch).
    #[serde(default = "default_shuffle")]
    pub shuffle: Shuffle,
}

/// A [`TrainConfig`] whose every rule holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTrainConfig {
    config: TrainConfig,
}

/// Why a [`TrainConfig`] is invalid; one variant per rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A feature of the spec is impossible.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `embedding_dim` is 0 or above [`towers::MAX_WIDTH`].
    #[error("model.embedding_dim {0}: expected 1 to {max} (the tutorials use 32)", max = towers::MAX_WIDTH)]
    EmbeddingDim(usize),
    /// A layer size is 0 or above [`towers::MAX_WIDTH`].
    #[error("model.{tower}.layers {layers:?}: every size must be 1 to {max}", max = towers::MAX_WIDTH)]
    Layers {
        /// `query` or `candidate`.
        tower: &'static str,
        /// The sizes given.
        layers: Vec<usize>,
    },
    /// The towers' outputs differ in width, so no dot product exists.
    #[error("the query tower outputs {query} columns and the candidate tower {candidate}; the score is their dot product, so they must agree (set the last layer sizes equal)")]
    Widths {
        /// Query output width.
        query: usize,
        /// Candidate output width.
        candidate: usize,
    },
    /// More features in a tower than a batch holds.
    #[error("model.{tower}: {found} features, at most {MAX_FEATURES}")]
    TooManyFeatures {
        /// `query` or `candidate`.
        tower: &'static str,
        /// How many.
        found: usize,
    },
    /// `validation_sample` is 0.
    #[error("validation sample must be at least 1 interaction")]
    ZeroValidationSample,
    /// `mixed_negatives` is 0 or more than a batch of logits can hold.
    #[error("mixed_negatives {0}: expected 1 to {MAX_BATCH_SIZE}")]
    MixedNegatives(usize),
    /// `batch_size` is below 2: an in-batch softmax over one example has no negatives, so its
    /// loss is 0 and nothing is learned.
    #[error("batch size {0}: the in-batch softmax needs at least 2 examples per batch (the other examples are the negatives)")]
    BatchTooSmall(usize),
    /// `batch_size` is above [`MAX_BATCH_SIZE`].
    #[error("batch size {0}: at most {MAX_BATCH_SIZE} (a batch of B materialises B×B float logits: 1 GiB at {MAX_BATCH_SIZE}, and the tutorials use 2048 to 8192)")]
    BatchTooLarge(usize),
    /// `epochs` is 0.
    #[error("epochs must be at least 1")]
    ZeroEpochs,
    /// `epochs` is above [`MAX_EPOCHS`].
    #[error("epochs {0}: at most {MAX_EPOCHS}")]
    TooManyEpochs(usize),
    /// The learning rate is not a positive finite number.
    #[error("learning rate must be positive and finite, got {0}")]
    LearningRate(f32),
    /// The temperature is not a positive finite number.
    #[error("temperature must be positive and finite, got {0}")]
    Temperature(f32),
    /// The streaming logQ rate is not in `(0, 1]`.
    #[error("logq streaming alpha must be in (0, 1], got {0}")]
    StreamingAlpha(f32),
    /// `validation_freq` is 0.
    #[error("validation frequency must be at least 1 epoch")]
    ZeroValidationFreq,
}

impl TrainConfig {
    /// Checks every rule.
    pub fn validate(self) -> Result<ValidTrainConfig, ConfigError> {
        if self.batch_size < 2 {
            return Err(ConfigError::BatchTooSmall(self.batch_size));
        }
        if self.batch_size > MAX_BATCH_SIZE {
            return Err(ConfigError::BatchTooLarge(self.batch_size));
        }
        if self.epochs == 0 {
            return Err(ConfigError::ZeroEpochs);
        }
        if self.epochs > MAX_EPOCHS {
            return Err(ConfigError::TooManyEpochs(self.epochs));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ConfigError::LearningRate(self.learning_rate));
        }
        if let Some(t) = self.temperature.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(ConfigError::Temperature(t));
        }
        if let Some(alpha) = self.logq_streaming_alpha.filter(|a| !(*a > 0.0 && *a <= 1.0)) {
            return Err(ConfigError::StreamingAlpha(alpha));
        }
        if self.validation_freq == Some(0) {
            return Err(ConfigError::ZeroValidationFreq);
        }
        if self.validation_sample == Some(0) {
            return Err(ConfigError::ZeroValidationSample);
        }
        if let Some(m) = self.mixed_negatives.filter(|&m| m == 0 || m > MAX_BATCH_SIZE) {
            return Err(ConfigError::MixedNegatives(m));
        }
        self.check_model()?;
        Ok(ValidTrainConfig { config: self })
    }

    /// The model rules that need no data: features, widths, layers.
    fn check_model(&self) -> Result<(), ConfigError> {
        let model = &self.model;
        if model.embedding_dim == 0 || model.embedding_dim > towers::MAX_WIDTH {
            return Err(ConfigError::EmbeddingDim(model.embedding_dim));
        }
        for (tower, spec) in [("query", &model.query), ("candidate", &model.candidate)] {
            if spec.features.len() > MAX_FEATURES {
                return Err(ConfigError::TooManyFeatures { tower, found: spec.features.len() });
            }
            if spec.layers.iter().any(|&s| s == 0 || s > towers::MAX_WIDTH) {
                return Err(ConfigError::Layers { tower, layers: spec.layers.clone() });
            }
        }
        model.check()?;
        let width = |spec: &crate::spec::TowerSpec| {
            spec.layers.last().copied().unwrap_or_else(|| spec.features.iter().map(|f| model.dim_of(f)).sum())
        };
        let (query, candidate) = (width(&model.query), width(&model.candidate));
        if query != candidate {
            return Err(ConfigError::Widths { query, candidate });
        }
        Ok(())
    }

    /// Parses a spec file's text (TOML).
    ///
    /// # Errors
    /// The parser's message, with the line and column of the problem.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The configuration as a spec file (TOML).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a TrainConfig always encodes as TOML")
    }
}

impl ValidTrainConfig {
    /// Whether validation runs after `epoch` (1-based): every `validation_freq`, and always after the last.
    pub fn validates_after(&self, epoch: usize) -> bool {
        epoch == self.config.epochs || self.config.validation_freq.is_some_and(|f| epoch.is_multiple_of(f))
    }
}

impl std::ops::Deref for ValidTrainConfig {
    type Target = TrainConfig;

    fn deref(&self) -> &TrainConfig {
        &self.config
    }
}
