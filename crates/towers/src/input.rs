//! One input of a tower: its layer, the column a batch feeds it, and its cache.
//!
//! | kind | batch column | forward | parameter gradient |
//! |---|---|---|---|
//! | lookup | `Ids (B)` | `y[b] = E[id_b]` | row-sparse |
//! | bag | `Bags (B, ragged)` | masked mean of rows (0 = padding) | row-sparse |
//! | numeric | `Values (B)` | `y[b] = v_b` (one column) | none |

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::{Bags, Embedding, EmbeddingCache, RowSparseGrad, TokenBag, TokenBagCache};

use crate::{InputKind, InputShape};

/// The layer of one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InputLayer {
    /// An embedding table, one row per example.
    Lookup(Embedding),
    /// An embedding table pooled by masked mean over each example's indices.
    Bag(TokenBag),
    /// A float column, passed through.
    Numeric,
}

/// A named input of a tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The feature's name (from the spec).
    pub name: String,
    /// Its layer.
    pub layer: InputLayer,
}

/// What a batch gives one input, one entry per example.
#[derive(Debug, Clone, Copy)]
pub enum InputColumn<'a> {
    /// Table indices, `(B)`.
    Ids(&'a [u32]),
    /// Ragged table indices (0 = padding), `B` rows.
    Bags(&'a Bags),
    /// Floats, `(B)`.
    Values(&'a [f32]),
}

/// The cache of one input.
#[derive(Debug, Clone, Default)]
pub(crate) enum InputCache {
    /// Nothing to remember (numeric, or before the first forward).
    #[default]
    Empty,
    Lookup(EmbeddingCache),
    Bag(TokenBagCache),
}

impl InputColumn<'_> {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Self::Ids(ids) => ids.len(),
            Self::Bags(bags) => bags.len(),
            Self::Values(values) => values.len(),
        }
    }

    /// Whether it has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Self::Ids(_) => "ids",
            Self::Bags(_) => "bags",
            Self::Values(_) => "values",
        }
    }
}

impl Input {
    /// A freshly initialised input of `shape` (tables `U(−0.05, 0.05)`, as Keras).
    pub fn new(shape: &InputShape, rng: &mut impl Rng) -> Self {
        let layer = match shape.kind {
            InputKind::Lookup => InputLayer::Lookup(Embedding::new(shape.rows, shape.dim, rng)),
            InputKind::Bag => InputLayer::Bag(TokenBag::new(shape.rows, shape.dim, rng)),
            InputKind::Numeric => InputLayer::Numeric,
        };
        Self { name: shape.name.clone(), layer }
    }

    /// The embedding table, if the input has one.
    pub fn table(&self) -> Option<&ndarray::Array2<f32>> {
        match &self.layer {
            InputLayer::Lookup(e) => Some(&e.table),
            InputLayer::Bag(b) => Some(&b.table),
            InputLayer::Numeric => None,
        }
    }

    /// The embedding table, mutably, if the input has one.
    pub fn table_mut(&mut self) -> Option<&mut ndarray::Array2<f32>> {
        match &mut self.layer {
            InputLayer::Lookup(e) => Some(&mut e.table),
            InputLayer::Bag(b) => Some(&mut b.table),
            InputLayer::Numeric => None,
        }
    }

    /// Columns it contributes to the concatenation.
    pub fn width(&self) -> usize {
        self.table().map_or(1, ndarray::Array2::ncols)
    }

    /// Its kind and shape.
    pub fn shape(&self) -> InputShape {
        let (kind, rows) = match &self.layer {
            InputLayer::Lookup(e) => (InputKind::Lookup, e.n_rows()),
            InputLayer::Bag(b) => (InputKind::Bag, b.table.nrows()),
            InputLayer::Numeric => (InputKind::Numeric, 0),
        };
        InputShape { name: self.name.clone(), kind, rows, dim: self.width() }
    }

    /// Writes this input's columns for `column` into `out: (B, width)`.
    ///
    /// # Panics
    /// If the column's kind does not match the layer, or an index is outside the table.
    #[track_caller]
    pub(crate) fn forward(&self, column: InputColumn<'_>, cache: &mut InputCache, mut out: ArrayViewMut2<'_, f32>) {
        match (&self.layer, column) {
            (InputLayer::Lookup(table), InputColumn::Ids(ids)) => {
                if !matches!(cache, InputCache::Lookup(_)) {
                    *cache = InputCache::Lookup(EmbeddingCache::default());
                }
                let InputCache::Lookup(c) = cache else { unreachable!("set above") };
                table.forward(ids, c, out);
            }
            (InputLayer::Bag(table), InputColumn::Bags(bags)) => {
                if !matches!(cache, InputCache::Bag(_)) {
                    *cache = InputCache::Bag(TokenBagCache::default());
                }
                let InputCache::Bag(c) = cache else { unreachable!("set above") };
                table.forward(bags, c, out);
            }
            (InputLayer::Numeric, InputColumn::Values(values)) => {
                out.column_mut(0).assign(&ArrayView1::from(values));
            }
            (_, column) => {
                panic!("input {:?}: a {} column for a {:?} layer", self.name, column.kind_name(), self.shape().kind)
            }
        }
    }

    /// Adds this input's parameter gradient for `dy: (B, width)`.
    pub(crate) fn backward(&self, cache: &InputCache, dy: ArrayView2<'_, f32>, grad: Option<&mut RowSparseGrad>) {
        match (&self.layer, cache, grad) {
            (InputLayer::Lookup(table), InputCache::Lookup(c), Some(g)) => table.backward(c, dy, g),
            (InputLayer::Bag(table), InputCache::Bag(c), Some(g)) => table.backward(c, dy, g),
            _ => {}
        }
    }
}
