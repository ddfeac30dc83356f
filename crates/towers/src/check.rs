//! Checking a model that came from outside (a file): every tensor's shape against what the
//! configuration and vocabularies imply, and every weight finite.
//!
//! A model is described as a list of named tensors, `("query.id.table", [n_query_ids, dim])`,
//! computed arithmetically from the config (nothing is allocated), and compared with the list
//! read off the model. The first difference names the tensor.

use tensor::{Activation, Dense};

use crate::{
    CandidateFeatures, CandidateTower, Head, QueryFeatures, QueryTower, TwoTower, ValidModelConfig, Vocabularies,
};

/// `√f32::MAX`: a weight at or beyond this overflows f32 when multiplied by anything ≥ itself,
/// so a model holding one produces ∞ and NaN embeddings.
pub const WEIGHT_LIMIT: f32 = 1.844_674_4e19;

/// One named tensor (or layout) and its dimensions.
pub type NamedShape = (String, Vec<usize>);

/// Why a model does not fit its configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    /// A tensor has other dimensions than the configuration implies.
    #[error("{name}: shape {found:?}, but the configuration and vocabularies imply {expected:?}")]
    Mismatch {
        /// The tensor, e.g. `query.head.layers[1].w`.
        name: String,
        /// Its dimensions in the model.
        found: Vec<usize>,
        /// Its dimensions by the configuration.
        expected: Vec<usize>,
    },
    /// The model lacks a tensor the configuration implies, or has one it does not.
    #[error("{name}: {}", if *.missing { "missing from the model, but the configuration implies it" } else { "present in the model, but the configuration has no such tensor" })]
    Presence {
        /// The tensor.
        name: String,
        /// Missing (true) or unexpected (false).
        missing: bool,
    },
    /// A weight is NaN, infinite, or so large that its products overflow f32.
    #[error("{name}: element {index} is {value}, expected a finite weight below {WEIGHT_LIMIT:e} in magnitude (larger ones overflow float32 products)")]
    NonFinite {
        /// The tensor.
        name: String,
        /// Flat index of the first bad element.
        index: usize,
        /// Its value.
        value: f32,
    },
}

impl TwoTower {
    /// Checks every tensor's shape against `config` and `sizes`, then every weight for NaN or ∞.
    ///
    /// # Errors
    /// The first [`ShapeError`] found, naming the tensor.
    pub fn check(&self, config: &ValidModelConfig, sizes: &Vocabularies) -> Result<(), ShapeError> {
        let expected = Self::expected_shapes(config, sizes);
        let found = self.shapes();
        for (name, dims) in &expected {
            match found.iter().find(|(n, _)| n == name) {
                None => return Err(ShapeError::Presence { name: name.clone(), missing: true }),
                Some((_, f)) if f != dims => {
                    return Err(ShapeError::Mismatch { name: name.clone(), found: f.clone(), expected: dims.clone() })
                }
                Some(_) => {}
            }
        }
        if let Some((name, _)) = found.iter().find(|(n, _)| !expected.iter().any(|(e, _)| e == n)) {
            return Err(ShapeError::Presence { name: name.clone(), missing: false });
        }
        match self.first_non_finite() {
            Some((name, index, value)) => Err(ShapeError::NonFinite { name, index, value }),
            None => Ok(()),
        }
    }

    /// The first weight that is NaN, infinite or at least [`WEIGHT_LIMIT`] in magnitude:
    /// `(tensor name, flat index, value)`.
    pub fn first_non_finite(&self) -> Option<(String, usize, f32)> {
        self.weights().into_iter().find_map(|(name, values)| {
            values
                .iter()
                .enumerate()
                .find(|(_, v)| v.is_nan() || v.abs() >= WEIGHT_LIMIT)
                .map(|(index, &value)| (name, index, value))
        })
    }

    /// Every tensor's dimensions, and each layout's part widths, by name.
    pub fn shapes(&self) -> Vec<NamedShape> {
        let Self { query, candidate } = self;
        let QueryTower { id, timestamp, head, .. } = query;
        let mut out = vec![
            ("query.layout".to_string(), query.layout().widths().to_vec()),
            ("query.id.table".to_string(), id.table.shape().to_vec()),
        ];
        if let Some(t) = timestamp {
            out.push(("query.timestamp.table".to_string(), t.table.shape().to_vec()));
        }
        head_shapes("query", head, &mut out);
        let CandidateTower { id, text, head, .. } = candidate;
        out.push(("candidate.layout".to_string(), candidate.layout().widths().to_vec()));
        out.push(("candidate.id.table".to_string(), id.table.shape().to_vec()));
        if let Some(t) = text {
            out.push(("candidate.text.table".to_string(), t.table.shape().to_vec()));
        }
        head_shapes("candidate", head, &mut out);
        out
    }

    /// What [`Self::shapes`] must return for a model built from `config` and `sizes`.
    pub fn expected_shapes(config: &ValidModelConfig, sizes: &Vocabularies) -> Vec<NamedShape> {
        let dim = config.embedding_dim;
        let query_layout = match config.query_features {
            QueryFeatures::Id => vec![dim],
            QueryFeatures::IdAndTime => vec![dim, dim, 1],
        };
        let mut out = vec![
            ("query.layout".to_string(), query_layout.clone()),
            ("query.id.table".to_string(), vec![sizes.n_query_ids, dim]),
        ];
        if config.query_features == QueryFeatures::IdAndTime {
            out.push(("query.timestamp.table".to_string(), vec![sizes.n_buckets, dim]));
        }
        expected_head("query", query_layout.iter().sum(), &config.layer_sizes, &mut out);
        let candidate_layout = match config.candidate_features {
            CandidateFeatures::Id => vec![dim],
            CandidateFeatures::IdAndText => vec![dim, dim],
        };
        out.push(("candidate.layout".to_string(), candidate_layout.clone()));
        out.push(("candidate.id.table".to_string(), vec![sizes.n_candidate_ids, dim]));
        if config.candidate_features == CandidateFeatures::IdAndText {
            out.push(("candidate.text.table".to_string(), vec![sizes.n_tokens, dim]));
        }
        expected_head("candidate", candidate_layout.iter().sum(), &config.layer_sizes, &mut out);
        out
    }

    /// Every weight tensor, as a flat view, by name (no copies).
    fn weights(&self) -> Vec<(String, ndarray::ArrayViewD<'_, f32>)> {
        let mut out = vec![("query.id.table".to_string(), self.query.id.table.view().into_dyn())];
        if let Some(t) = &self.query.timestamp {
            out.push(("query.timestamp.table".to_string(), t.table.view().into_dyn()));
        }
        out.push(("candidate.id.table".to_string(), self.candidate.id.table.view().into_dyn()));
        if let Some(t) = &self.candidate.text {
            out.push(("candidate.text.table".to_string(), t.table.view().into_dyn()));
        }
        for (tower, head) in [("query", &self.query.head), ("candidate", &self.candidate.head)] {
            for (i, layer) in head.stack.iter().flat_map(|s| s.layers.iter()).enumerate() {
                out.push((format!("{tower}.head.layers[{i}].w"), layer.w.view().into_dyn()));
                out.push((format!("{tower}.head.layers[{i}].b"), layer.b.view().into_dyn()));
            }
        }
        out
    }
}

fn head_shapes(tower: &str, head: &Head, out: &mut Vec<NamedShape>) {
    for (i, Dense { w, b, activation }) in head.stack.iter().flat_map(|s| s.layers.iter()).enumerate() {
        out.push((format!("{tower}.head.layers[{i}].w ({})", activation_name(*activation)), w.shape().to_vec()));
        out.push((format!("{tower}.head.layers[{i}].b"), b.shape().to_vec()));
    }
}

fn expected_head(tower: &str, in_dim: usize, layer_sizes: &[usize], out: &mut Vec<NamedShape>) {
    let mut fan_in = in_dim;
    for (i, &size) in layer_sizes.iter().enumerate() {
        let activation = if i + 1 < layer_sizes.len() { Activation::Relu } else { Activation::Linear };
        out.push((format!("{tower}.head.layers[{i}].w ({})", activation_name(activation)), vec![fan_in, size]));
        out.push((format!("{tower}.head.layers[{i}].b"), vec![size]));
        fan_in = size;
    }
}

fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Linear => "linear",
        Activation::Relu => "relu",
    }
}
