//! `Tower`: inputs concatenated in order, a dense head, optional L2 normalisation.
//!
//! ```text
//! x = [input_0 | input_1 | … ]   (B, Σ widths)
//! y = head(x)                    (B, out)   ReLU between layers, none after the last
//! y = y / ‖y‖                    when l2_normalize
//! ```
//!
//! Every input, its cache and its gradient sit at the same position of three vectors, so a new
//! feature is one more entry, not a new field in five structs.

use ndarray::ArrayView2;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tensor::{Buffer, ColumnLayout, L2Normalize, L2NormalizeCache, RowSparseGrad};

use crate::input::InputCache;
use crate::{Head, HeadCache, HeadGrads, Input, InputColumn, TowerConfig};

/// One tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tower {
    /// Inputs, in concatenation order.
    pub inputs: Vec<Input>,
    /// Dense layers over the concatenation.
    pub head: Head,
    /// Whether outputs are divided by their L2 norm.
    pub l2_normalize: bool,
    layout: ColumnLayout,
}

/// What backward needs, in reusable buffers.
#[derive(Debug, Clone, Default)]
pub struct TowerCache {
    /// The concatenated inputs, `(B, Σ widths)`: the head reads them here in both passes, without
    /// a copy of its own.
    features: Buffer,
    inputs: Vec<InputCache>,
    head: HeadCache,
    norm: L2NormalizeCache,
}

/// Gradients of a [`Tower`]: per input (`None` for inputs without a table), and the head.
#[derive(Debug, Clone, PartialEq)]
pub struct TowerGrads {
    /// Row-sparse table gradients, aligned with [`Tower::inputs`].
    pub inputs: Vec<Option<RowSparseGrad>>,
    /// The dense layers.
    pub head: HeadGrads,
}

impl Tower {
    /// A freshly initialised tower: each input's table in order, then the head (one `rng`).
    pub fn new(config: &TowerConfig, rng: &mut impl Rng) -> Self {
        let inputs: Vec<Input> = config.inputs.iter().map(|shape| Input::new(shape, rng)).collect();
        let layout = ColumnLayout::new(inputs.iter().map(Input::width).collect());
        let head = Head::new(layout.width(), &config.layer_sizes, rng);
        Self { inputs, head, l2_normalize: config.l2_normalize, layout }
    }

    /// The concatenated features' column blocks.
    pub fn layout(&self) -> &ColumnLayout {
        &self.layout
    }

    /// The input named `name`, with its position.
    pub fn input(&self, name: &str) -> Option<(usize, &Input)> {
        self.inputs.iter().enumerate().find(|(_, i)| i.name == name)
    }

    /// Output (embedding) width.
    pub fn out_dim(&self) -> usize {
        self.head.out_dim(self.layout.width())
    }

    /// Embeddings of a batch.
    ///
    /// # Shapes
    /// `batch`: one column per input, each of `B` examples → `(B, out_dim)`, a view into `cache`.
    ///
    /// # Panics
    /// If `batch` has another number of columns than inputs, columns of different lengths, a
    /// column of the wrong kind, or an index outside its table.
    #[track_caller]
    pub fn forward<'c>(&self, batch: &[InputColumn<'_>], cache: &'c mut TowerCache) -> ArrayView2<'c, f32> {
        assert_eq!(
            batch.len(),
            self.inputs.len(),
            "Tower::forward: {} columns for {} inputs",
            batch.len(),
            self.inputs.len()
        );
        let n = batch.first().map_or(0, InputColumn::len);
        if let Some((i, column)) = batch.iter().enumerate().find(|(_, c)| c.len() != n) {
            panic!("Tower::forward: input {:?} has {} examples, input 0 has {n}", self.inputs[i].name, column.len());
        }
        let TowerCache { features, inputs, head, norm } = cache;
        inputs.resize_with(self.inputs.len(), InputCache::default);
        features.reshape(n, self.layout.width());
        for (i, ((input, &column), input_cache)) in self.inputs.iter().zip(batch).zip(inputs.iter_mut()).enumerate() {
            input.forward(column, input_cache, self.layout.block_mut(features.view_mut(), i));
        }
        let out = self.head.forward(features.view(), head);
        if self.l2_normalize {
            L2Normalize.forward(out, norm)
        } else {
            out
        }
    }

    /// Adds the gradients of every parameter for upstream `dy: (B, out_dim)`.
    ///
    /// The head's input gradient is computed only up to the last column of an input with a
    /// table: inputs without parameters (numeric features) need none.
    pub fn backward(&self, cache: &mut TowerCache, dy: ArrayView2<'_, f32>, grads: &mut TowerGrads) {
        let TowerCache { features, inputs, head, norm } = cache;
        let dy = if self.l2_normalize { L2Normalize.backward(norm, dy) } else { dy };
        let dfeatures = self.head.backward(features.view(), head, dy, &mut grads.head, self.dx_columns());
        for (i, ((input, input_cache), grad)) in
            self.inputs.iter().zip(inputs.iter()).zip(&mut grads.inputs).enumerate()
        {
            if let Some(grad) = grad {
                input.backward(input_cache, self.layout.block(dfeatures, i), Some(grad));
            }
        }
    }

    /// [`Tower::backward`] followed by a step on every parameter: `step_input` on each input
    /// (its table, its gradient, `None` for inputs without a table, and its entry of
    /// `input_states`) right after that input's backward pass, and `step_head` on the head.
    ///
    /// After the head's backward pass (which every input needs) each input's backward pass and
    /// step is one rayon job and the head's step another, so a worker that has finished its own
    /// work takes some of them: the two towers of a step, each on its own worker, then end
    /// closer together. Each job reads the shared feature gradient and writes only its own
    /// input's gradient, parameters and state, so the result does not depend on which worker
    /// ran it.
    ///
    /// # Panics
    /// As [`Tower::backward`], and if `input_states` is not one entry per input.
    pub fn backward_then_step<S: Send>(
        &mut self,
        cache: &mut TowerCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut TowerGrads,
        input_states: &mut [S],
        step_input: impl Fn(&mut Input, Option<&RowSparseGrad>, &mut S) + Sync,
        step_head: impl FnOnce(&mut Head, &HeadGrads) + Send,
    ) {
        assert_eq!(input_states.len(), self.inputs.len(), "Tower::backward_then_step: a state per input");
        let TowerCache { features, inputs: input_caches, head: head_cache, norm } = cache;
        let dy = if self.l2_normalize { L2Normalize.backward(norm, dy) } else { dy };
        let dx_columns = self.dx_columns();
        let Self { inputs, head, layout, .. } = self;
        let TowerGrads { inputs: input_grads, head: head_grads } = grads;
        let dfeatures = head.backward(features.view(), head_cache, dy, head_grads, dx_columns);
        let (head_grads, layout) = (&*head_grads, &*layout);
        rayon::join(
            || {
                let jobs = inputs.par_iter_mut().zip(&input_caches[..]).zip(&mut input_grads[..]).zip(input_states);
                jobs.enumerate().with_max_len(1).for_each(|(i, (((input, input_cache), grad), state))| {
                    if let Some(grad) = grad.as_mut() {
                        input.backward(input_cache, layout.block(dfeatures, i), Some(grad));
                    }
                    step_input(input, grad.as_ref(), state);
                })
            },
            || step_head(head, head_grads),
        );
    }

    /// Columns of the features' gradient the inputs need: up to the last column of an input
    /// with a table.
    fn dx_columns(&self) -> usize {
        let with_table = |i: &usize| self.inputs[*i].table().is_some();
        (0..self.inputs.len()).filter(with_table).map(|i| self.layout.range(i).end).max().unwrap_or(0)
    }
}

impl TowerGrads {
    /// Empty gradients for `tower`.
    pub fn zeros_like(tower: &Tower) -> Self {
        Self {
            inputs: tower.inputs.iter().map(|i| i.table().map(|t| RowSparseGrad::new(t.nrows(), t.ncols()))).collect(),
            head: HeadGrads::zeros_like(&tower.head),
        }
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        self.inputs.iter_mut().flatten().for_each(RowSparseGrad::zero);
        self.head.zero();
    }
}
