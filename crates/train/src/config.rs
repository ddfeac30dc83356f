//! `TrainConfig` (serde, from presets or flags) → `validate()` → `ValidTrainConfig`.

use serde::{Deserialize, Serialize};
use towers::{ModelConfig, ValidModelConfig};

/// The largest batch accepted: the loss holds `B × B` f32 logits (1 GiB at 16384).
pub const MAX_BATCH_SIZE: usize = 16_384;
/// The largest number of epochs accepted (the deep tutorials run 300).
pub const MAX_EPOCHS: usize = 1_000_000;

/// How batches are drawn from the training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shuffle {
    /// Shuffle once and replay the same batches every epoch (the basic tutorial's
    /// `shuffle().batch().cache()`).
    Once,
    /// Reshuffle at every epoch (the context and deep tutorials).
    EachEpoch,
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The experiment's name, for reports.
    pub name: String,
    /// The towers.
    pub model: ModelConfig,
    /// Examples per in-batch softmax; the last partial batch is kept.
    pub batch_size: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Adagrad's step size (the tutorials use 0.1).
    pub learning_rate: f32,
    /// Seeds initialisation and shuffling.
    pub seed: u64,
    /// Validate every this many epochs (Keras' `validation_freq`); `None`: only after the last.
    pub validation_freq: Option<usize>,
    /// Softmax temperature; `None` means 1.
    pub temperature: Option<f32>,
    /// Subtract `log p(candidate)` (its share of training interactions) from the logits.
    pub logq: bool,
    /// With `logq`: estimate `p` while training with the streaming estimator of Yi et al. 2019
    /// at this moving-average rate, instead of counting the training set up front.
    #[serde(default)]
    pub logq_streaming_alpha: Option<f32>,
    /// Mask in-batch candidates with the positive's identity out of the negatives.
    pub remove_accidental_hits: bool,
    /// Keep only the hardest `h` in-batch negatives per query (TFRS `num_hard_negatives`).
    #[serde(default)]
    pub num_hard_negatives: Option<usize>,
    /// Compute factorized top-k on every training batch, before its update (basic tutorial).
    pub batch_metrics: bool,
    /// Batch order.
    pub shuffle: Shuffle,
}

/// A [`TrainConfig`] whose every rule holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTrainConfig {
    config: TrainConfig,
    model: ValidModelConfig,
}

/// Why a [`TrainConfig`] is invalid; one variant per rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The towers' configuration is invalid.
    #[error(transparent)]
    Model(#[from] towers::ConfigError),
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
        let model = self.model.clone().validate()?;
        Ok(ValidTrainConfig { config: self, model })
    }
}

impl ValidTrainConfig {
    /// The validated model configuration.
    pub fn model(&self) -> &ValidModelConfig {
        &self.model
    }

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
