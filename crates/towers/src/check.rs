//! Checking a model that came from outside (a file): every tensor's shape against what the
//! configuration and vocabularies imply, and every weight finite.
//!
//! A model is described as a list of named tensors, `("query.inputs[user_id].table", [n_users, dim])`,
//! computed arithmetically from the config (nothing is allocated), and compared with the list
//! read off the model. The first difference names the tensor.

use tensor::{Activation, Dense};

use crate::{Head, Tower, TowerConfig, TwoTower, ValidModelConfig};

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
    /// Checks every tensor's shape against `config`, then every weight for NaN or ∞.
    ///
    /// # Errors
    /// The first [`ShapeError`] found, naming the tensor.
    pub fn check(&self, config: &ValidModelConfig) -> Result<(), ShapeError> {
        let expected = Self::expected_shapes(config);
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

    /// Every tensor's dimensions, each input's kind, and each layout's part widths, by name.
    pub fn shapes(&self) -> Vec<NamedShape> {
        let mut out = Vec::new();
        for (tower_name, tower) in [("query", &self.query), ("candidate", &self.candidate)] {
            tower_shapes(tower_name, tower, &mut out);
        }
        out
    }

    /// What [`Self::shapes`] must return for a model built from `config`.
    pub fn expected_shapes(config: &ValidModelConfig) -> Vec<NamedShape> {
        let mut out = Vec::new();
        for (tower_name, tower) in [("query", &config.query), ("candidate", &config.candidate)] {
            expected_tower(tower_name, tower, &mut out);
        }
        out
    }

    /// Every weight tensor, as a flat view, by name (no copies).
    fn weights(&self) -> Vec<(String, ndarray::ArrayViewD<'_, f32>)> {
        let mut out = Vec::new();
        for (tower_name, tower) in [("query", &self.query), ("candidate", &self.candidate)] {
            for input in &tower.inputs {
                if let Some(table) = input.table() {
                    out.push((format!("{tower_name}.inputs[{}].table", input.name), table.view().into_dyn()));
                }
            }
            for (i, layer) in tower.head.stack.iter().flat_map(|s| s.layers.iter()).enumerate() {
                out.push((format!("{tower_name}.head.layers[{i}].w"), layer.w.view().into_dyn()));
                out.push((format!("{tower_name}.head.layers[{i}].b"), layer.b.view().into_dyn()));
            }
        }
        out
    }
}

fn tower_shapes(name: &str, tower: &Tower, out: &mut Vec<NamedShape>) {
    out.push((format!("{name}.layout"), tower.layout().widths().to_vec()));
    out.push((format!("{name}.l2_normalize"), vec![usize::from(tower.l2_normalize)]));
    for input in &tower.inputs {
        let shape = input.shape();
        out.push((format!("{name}.inputs[{}] ({:?})", input.name, shape.kind), vec![shape.rows, shape.dim]));
    }
    head_shapes(name, &tower.head, out);
}

fn expected_tower(name: &str, tower: &TowerConfig, out: &mut Vec<NamedShape>) {
    out.push((format!("{name}.layout"), tower.inputs.iter().map(|i| i.dim).collect()));
    out.push((format!("{name}.l2_normalize"), vec![usize::from(tower.l2_normalize)]));
    for input in &tower.inputs {
        out.push((format!("{name}.inputs[{}] ({:?})", input.name, input.kind), vec![input.rows, input.dim]));
    }
    expected_head(name, tower.input_width(), &tower.layer_sizes, out);
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
