//! Adagrad state for every parameter of both towers, and the step that applies the grads.
//!
//! Embedding tables take the row-sparse step (only the rows a batch touched), dense layers the
//! dense step. The state mirrors the towers input by input, so a feature added to a spec is
//! optimised without code here; a table without a state (or the reverse) is a bug that panics
//! instead of being skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ndarray::{ArrayView2, Ix1, Ix2};
use optim::{Adagrad, AdagradState};
use tensor::RowSparseGrad;
use towers::{Head, HeadGrads, Input, Tower, TowerCache, TowerGrads, TwoTower};

/// Accumulators for every parameter of a [`TwoTower`] (serialisable, for checkpoints).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelOptState {
    query: TowerState,
    candidate: TowerState,
}

/// The accumulators of one tower.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TowerState {
    /// Per input: the table's accumulator (`None` for inputs without a table).
    inputs: Vec<Option<AdagradState<Ix2>>>,
    head: HeadState,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct HeadState {
    /// Per layer: kernel and bias accumulators.
    layers: Vec<(AdagradState<Ix2>, AdagradState<Ix1>)>,
}

impl ModelOptState {
    /// Fresh accumulators (all at `initial_accumulator_value`).
    pub fn new(model: &TwoTower, adagrad: &Adagrad) -> Self {
        Self { query: TowerState::new(&model.query, adagrad), candidate: TowerState::new(&model.candidate, adagrad) }
    }

    /// The first accumulator holding NaN or ∞ (a gradient whose square overflowed f32), by name.
    pub fn first_non_finite(&self) -> Option<String> {
        fn bad<'a>(mut values: impl Iterator<Item = &'a f32>) -> bool {
            values.any(|v| !v.is_finite())
        }
        for (tower, state) in [("query", &self.query), ("candidate", &self.candidate)] {
            if let Some(i) = state.inputs.iter().position(|s| s.as_ref().is_some_and(|s| bad(s.accumulator.iter()))) {
                return Some(format!("{tower}.inputs[{i}]"));
            }
            if state.head.layers.iter().any(|(w, b)| bad(w.accumulator.iter()) || bad(b.accumulator.iter())) {
                return Some(format!("{tower}.head"));
            }
        }
        None
    }

    /// Whether the accumulators have the shapes of `model`'s parameters (a checkpoint's state
    /// belongs to its model).
    pub fn fits(&self, model: &TwoTower) -> bool {
        let tower_fits = |state: &TowerState, tower: &Tower| {
            state.inputs.len() == tower.inputs.len()
                && state.inputs.iter().zip(&tower.inputs).all(|(s, i)| match (s, i.table()) {
                    (Some(s), Some(t)) => s.accumulator.dim() == t.dim(),
                    (None, None) => true,
                    _ => false,
                })
                && {
                    let layers: Vec<_> = tower.head.stack.iter().flat_map(|s| &s.layers).collect();
                    state.head.layers.len() == layers.len()
                        && state
                            .head
                            .layers
                            .iter()
                            .zip(layers)
                            .all(|((w, b), l)| w.accumulator.dim() == l.w.dim() && b.accumulator.dim() == l.b.dim())
                }
        };
        tower_fits(&self.query, &model.query) && tower_fits(&self.candidate, &model.candidate)
    }

    /// The query tower's state and the candidate tower's, to step each tower on its own
    /// thread as soon as its gradients are complete.
    pub(crate) fn towers_mut(&mut self) -> (&mut TowerState, &mut TowerState) {
        (&mut self.query, &mut self.candidate)
    }

    /// One Adagrad step on every parameter (the two towers concurrently).
    pub fn step(
        &mut self,
        adagrad: &Adagrad,
        model: &mut TwoTower,
        query_grads: &TowerGrads,
        candidate_grads: &TowerGrads,
    ) {
        let TwoTower { query, candidate } = model;
        let Self { query: query_state, candidate: candidate_state } = self;
        rayon::join(
            || query_state.step(adagrad, query, query_grads),
            || candidate_state.step(adagrad, candidate, candidate_grads),
        );
    }
}

impl TowerState {
    fn new(tower: &Tower, adagrad: &Adagrad) -> Self {
        Self {
            inputs: tower.inputs.iter().map(|input| input.table().map(|t| AdagradState::new(t, adagrad))).collect(),
            head: HeadState::new(&tower.head, adagrad),
        }
    }

    /// One Adagrad step on every parameter of `tower`.
    pub(crate) fn step(&mut self, adagrad: &Adagrad, tower: &mut Tower, grads: &TowerGrads) {
        assert_eq!(self.inputs.len(), tower.inputs.len(), "optimizer state for another tower");
        for ((input, grad), state) in tower.inputs.iter_mut().zip(&grads.inputs).zip(&mut self.inputs) {
            step_table(adagrad, input, grad.as_ref(), state);
        }
        self.head.step(adagrad, &mut tower.head, &grads.head);
    }

    /// `tower`'s backward pass from `dy` into `grads` (zeroed first), each parameter's Adagrad
    /// step as soon as its gradient is complete ([`Tower::backward_then_step`]: the inputs and
    /// the head as rayon jobs, so that an idle worker takes some). The same bits as
    /// [`Tower::backward`] then [`Self::step`]. Returns the seconds spent in the steps, summed
    /// over the parameters (on whichever workers ran them).
    pub(crate) fn backward_then_step(
        &mut self,
        adagrad: &Adagrad,
        tower: &mut Tower,
        cache: &mut TowerCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut TowerGrads,
    ) -> f64 {
        assert_eq!(self.inputs.len(), tower.inputs.len(), "optimizer state for another tower");
        grads.zero();
        let Self { inputs: input_states, head: head_state } = self;
        let step_nanos = AtomicU64::new(0);
        let timed = |step: &mut dyn FnMut()| {
            let started = Instant::now();
            step();
            step_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        };
        tower.backward_then_step(
            cache,
            dy,
            grads,
            input_states,
            |input, grad, state| timed(&mut || step_table(adagrad, input, grad, state)),
            |head, head_grads| timed(&mut || head_state.step(adagrad, head, head_grads)),
        );
        step_nanos.into_inner() as f64 * 1e-9
    }
}

/// The row-sparse Adagrad step of one input's table, if it has one.
///
/// # Panics
/// If the input's table, gradient and state are not all present or all absent.
fn step_table(
    adagrad: &Adagrad,
    input: &mut Input,
    grad: Option<&RowSparseGrad>,
    state: &mut Option<AdagradState<Ix2>>,
) {
    match (input.table_mut(), grad, state) {
        (Some(table), Some(grad), Some(state)) => adagrad.step_rows(table, grad, state),
        (None, None, None) => {}
        _ => panic!("input {:?}: table, gradient and optimizer state disagree", input.name),
    }
}

impl HeadState {
    fn new(head: &Head, adagrad: &Adagrad) -> Self {
        let layers = head
            .stack
            .iter()
            .flat_map(|s| &s.layers)
            .map(|l| (AdagradState::new(&l.w, adagrad), AdagradState::new(&l.b, adagrad)))
            .collect();
        Self { layers }
    }

    fn step(&mut self, adagrad: &Adagrad, head: &mut Head, grads: &HeadGrads) {
        let (Some(stack), Some(stack_grads)) = (&mut head.stack, &grads.stack) else { return };
        for ((layer, g), (w_state, b_state)) in stack.layers.iter_mut().zip(&stack_grads.layers).zip(&mut self.layers) {
            adagrad.step_dense(&mut layer.w, &g.dw, w_state);
            adagrad.step_dense(&mut layer.b, &g.db, b_state);
        }
    }
}
