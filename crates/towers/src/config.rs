//! The model's shape, validated once before anything is built: per tower, a list of inputs
//! (each an embedding lookup, a pooled bag of embeddings, or a numeric column), an optional
//! dense head, and optional L2 normalisation of the output.
//!
//! The shapes carry the table sizes (rows), which come from fitted preprocessing: a spec of
//! *which* features (in `train`) becomes a [`ModelConfig`] of *how large* once fitted.

use serde::{Deserialize, Serialize};

/// The widest embedding or dense layer accepted (the tutorials use 32 to 128).
pub const MAX_WIDTH: usize = 4096;
/// The most rows an embedding table may have (indices are `u32`).
pub const MAX_ROWS: usize = u32::MAX as usize;

/// How one input becomes columns of the tower's concatenated features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    /// One index per example → one embedding row ([`tensor::Embedding`]): ids, hashed ids, buckets.
    Lookup,
    /// A ragged list of indices per example → masked mean of their rows ([`tensor::TokenBag`],
    /// index 0 is padding): text tokens, multi-valued columns, histories.
    Bag,
    /// One float per example, passed through as one column: normalised numbers.
    Numeric,
}

/// One input of a tower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// Unique within its tower; names its tensors (`query.inputs[user_id].table`).
    pub name: String,
    /// How it is embedded.
    pub kind: InputKind,
    /// Embedding-table rows (0 for [`InputKind::Numeric`]).
    pub rows: usize,
    /// Columns it contributes: the embedding width, or 1 for [`InputKind::Numeric`].
    pub dim: usize,
}

/// One tower: its inputs in concatenation order, then the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TowerConfig {
    /// Inputs, concatenated in this order.
    pub inputs: Vec<InputShape>,
    /// Dense head: ReLU after every layer but the last. Empty: the concatenation is the output.
    pub layer_sizes: Vec<usize>,
    /// Divide each output row by its L2 norm (scores become cosines).
    pub l2_normalize: bool,
}

/// Both towers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Maps a query (a user and its context) to an embedding.
    pub query: TowerConfig,
    /// Maps a candidate (an item) to an embedding.
    pub candidate: TowerConfig,
}

/// A [`ModelConfig`] that passed [`ModelConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidModelConfig(ModelConfig);

/// Why a [`ModelConfig`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A tower has no inputs.
    #[error("the {tower} tower has no inputs; give it at least one feature")]
    NoInputs {
        /// `query` or `candidate`.
        tower: &'static str,
    },
    /// Two inputs of a tower share a name.
    #[error("{tower} tower: two inputs are named {name:?}; names must be unique within a tower")]
    DuplicateName {
        /// `query` or `candidate`.
        tower: &'static str,
        /// The name.
        name: String,
    },
    /// An input's shape is impossible.
    #[error("{tower} input {name:?}: {problem}")]
    Input {
        /// `query` or `candidate`.
        tower: &'static str,
        /// The input.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A layer size is 0.
    #[error("{tower} layer_sizes {layer_sizes:?}: every layer needs at least 1 unit (layer {index} has 0)")]
    ZeroLayerSize {
        /// `query` or `candidate`.
        tower: &'static str,
        /// The sizes given.
        layer_sizes: Vec<usize>,
        /// The offending position.
        index: usize,
    },
    /// A width above [`MAX_WIDTH`].
    #[error("{what} {value}: at most {MAX_WIDTH} (every batch and evaluation chunk holds rows this wide; the tutorials use 32 to 128)")]
    TooWide {
        /// Which width (an input's dim or `layer_sizes[i]`).
        what: String,
        /// The value given.
        value: usize,
    },
    /// The towers' outputs have different widths, so no dot product exists.
    #[error("query output width {query} != candidate output width {candidate}: the score is their dot product (make the last layer sizes equal, or without layers the concatenated input widths)")]
    MismatchedWidths {
        /// Query tower output width.
        query: usize,
        /// Candidate tower output width.
        candidate: usize,
    },
}

impl InputShape {
    fn check(&self, tower: &'static str) -> Result<(), ConfigError> {
        let fail = |problem: String| Err(ConfigError::Input { tower, name: self.name.clone(), problem });
        match self.kind {
            InputKind::Numeric if self.dim != 1 || self.rows != 0 => {
                fail(format!("a numeric input is one column without a table, got dim {} rows {}", self.dim, self.rows))
            }
            InputKind::Numeric => Ok(()),
            InputKind::Lookup | InputKind::Bag if self.dim == 0 => fail("dim must be at least 1".to_string()),
            InputKind::Lookup | InputKind::Bag if self.dim > MAX_WIDTH => {
                Err(ConfigError::TooWide { what: format!("{tower} input {:?} dim", self.name), value: self.dim })
            }
            InputKind::Lookup | InputKind::Bag if self.rows == 0 || self.rows > MAX_ROWS => {
                fail(format!("{} table rows: expected 1 to {MAX_ROWS}", self.rows))
            }
            InputKind::Lookup | InputKind::Bag => Ok(()),
        }
    }
}

impl TowerConfig {
    /// Width of the concatenated inputs.
    pub fn input_width(&self) -> usize {
        self.inputs.iter().map(|i| i.dim).sum()
    }

    /// Width of the tower's output.
    pub fn output_width(&self) -> usize {
        self.layer_sizes.last().copied().unwrap_or_else(|| self.input_width())
    }

    fn check(&self, tower: &'static str) -> Result<(), ConfigError> {
        if self.inputs.is_empty() {
            return Err(ConfigError::NoInputs { tower });
        }
        for (i, input) in self.inputs.iter().enumerate() {
            if self.inputs[..i].iter().any(|other| other.name == input.name) {
                return Err(ConfigError::DuplicateName { tower, name: input.name.clone() });
            }
            input.check(tower)?;
        }
        if let Some(index) = self.layer_sizes.iter().position(|&s| s > MAX_WIDTH) {
            return Err(ConfigError::TooWide {
                what: format!("{tower} layer_sizes[{index}]"),
                value: self.layer_sizes[index],
            });
        }
        if let Some(index) = self.layer_sizes.iter().position(|&s| s == 0) {
            return Err(ConfigError::ZeroLayerSize { tower, layer_sizes: self.layer_sizes.clone(), index });
        }
        Ok(())
    }
}

impl ModelConfig {
    /// Checks every rule, so that building the towers cannot fail later.
    ///
    /// # Errors
    /// The first [`ConfigError`], naming the tower and input.
    pub fn validate(self) -> Result<ValidModelConfig, ConfigError> {
        self.query.check("query")?;
        self.candidate.check("candidate")?;
        let (query, candidate) = (self.query.output_width(), self.candidate.output_width());
        if query != candidate {
            return Err(ConfigError::MismatchedWidths { query, candidate });
        }
        Ok(ValidModelConfig(self))
    }
}

impl std::ops::Deref for ValidModelConfig {
    type Target = ModelConfig;

    fn deref(&self) -> &ModelConfig {
        &self.0
    }
}
