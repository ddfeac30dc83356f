//! `Head`: the optional dense stack on top of a tower's concatenated features.

use ndarray::ArrayView2;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::{DenseStack, DenseStackCache, DenseStackGrads};

/// Identity when `layer_sizes` is empty, a [`DenseStack`] otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// The layers, if any.
    pub stack: Option<DenseStack>,
}

/// The stack's cache, if any.
#[derive(Debug, Clone, Default)]
pub struct HeadCache {
    stack: DenseStackCache,
}

/// The stack's grads, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadGrads {
    /// Per-layer gradients.
    pub stack: Option<DenseStackGrads>,
}

impl Head {
    /// A head over `in_dim` features with the given sizes (empty: identity).
    pub fn new(in_dim: usize, layer_sizes: &[usize], rng: &mut impl Rng) -> Self {
        Self { stack: (!layer_sizes.is_empty()).then(|| DenseStack::new(in_dim, layer_sizes, rng)) }
    }

    /// Output width given the input width.
    pub fn out_dim(&self, in_dim: usize) -> usize {
        self.stack.as_ref().map_or(in_dim, DenseStack::out_dim)
    }

    /// Applies the stack to `x` (or returns `x`). The cache does not copy `x`: the caller keeps
    /// it unchanged for [`Self::backward`].
    pub fn forward<'a>(&self, x: ArrayView2<'a, f32>, cache: &'a mut HeadCache) -> ArrayView2<'a, f32> {
        match &self.stack {
            Some(stack) => stack.forward_borrowed(x, &mut cache.stack),
            None => x,
        }
    }

    /// Back through the stack (or `dy` unchanged), given the forward pass's `x`, with the input
    /// gradient for at least the first `dx_columns` input columns (exactly those through a
    /// stack).
    pub fn backward<'a>(
        &self,
        x: ArrayView2<'_, f32>,
        cache: &'a mut HeadCache,
        dy: ArrayView2<'a, f32>,
        grads: &mut HeadGrads,
        dx_columns: usize,
    ) -> ArrayView2<'a, f32> {
        match (&self.stack, &mut grads.stack) {
            (Some(stack), Some(stack_grads)) => {
                stack.backward_borrowed(x, &mut cache.stack, dy, stack_grads, dx_columns)
            }
            _ => dy,
        }
    }
}

impl HeadGrads {
    /// Zero gradients shaped like `head`.
    pub fn zeros_like(head: &Head) -> Self {
        Self { stack: head.stack.as_ref().map(DenseStackGrads::zeros_like) }
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        if let Some(g) = &mut self.stack {
            g.zero();
        }
    }
}
