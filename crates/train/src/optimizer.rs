//! Adagrad state for every parameter of both towers, and the step that applies the grads.
//!
//! Embedding tables take the row-sparse step (only the rows a batch touched), dense layers the
//! dense step. The code destructures every tower exhaustively, so a new parameter that is not
//! optimised fails to compile.

use ndarray::{Ix1, Ix2};
use optim::{Adagrad, AdagradState};
use towers::{CandidateGrads, CandidateTower, Head, HeadGrads, QueryGrads, QueryTower, TwoTower};

/// Accumulators for every parameter of a [`TwoTower`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptState {
    query: QueryState,
    candidate: CandidateState,
}

#[derive(Debug, Clone, PartialEq)]
struct QueryState {
    id: AdagradState<Ix2>,
    timestamp: Option<AdagradState<Ix2>>,
    head: HeadState,
}

#[derive(Debug, Clone, PartialEq)]
struct CandidateState {
    id: AdagradState<Ix2>,
    text: Option<AdagradState<Ix2>>,
    head: HeadState,
}

#[derive(Debug, Clone, PartialEq)]
struct HeadState {
    /// Per layer: kernel and bias accumulators.
    layers: Vec<(AdagradState<Ix2>, AdagradState<Ix1>)>,
}

impl ModelOptState {
    /// Fresh accumulators (all at `initial_accumulator_value`).
    pub fn new(model: &TwoTower, adagrad: &Adagrad) -> Self {
        let TwoTower { query, candidate } = model;
        let QueryTower { id: query_id, timestamp, head: query_head, .. } = query;
        let CandidateTower { id: candidate_id, text, head: candidate_head, .. } = candidate;
        Self {
            query: QueryState {
                id: AdagradState::new(&query_id.table, adagrad),
                timestamp: timestamp.as_ref().map(|t| AdagradState::new(&t.table, adagrad)),
                head: HeadState::new(query_head, adagrad),
            },
            candidate: CandidateState {
                id: AdagradState::new(&candidate_id.table, adagrad),
                text: text.as_ref().map(|t| AdagradState::new(&t.table, adagrad)),
                head: HeadState::new(candidate_head, adagrad),
            },
        }
    }

    /// The first accumulator holding NaN or ∞ (a gradient whose square overflowed f32), by name.
    pub fn first_non_finite(&self) -> Option<&'static str> {
        let Self { query, candidate } = self;
        let QueryState { id: query_id, timestamp, head: query_head } = query;
        let CandidateState { id: candidate_id, text, head: candidate_head } = candidate;
        let bad2 = |s: &AdagradState<Ix2>| s.accumulator.iter().any(|v| !v.is_finite());
        let bad_head =
            |h: &HeadState| h.layers.iter().any(|(w, b)| bad2(w) || b.accumulator.iter().any(|v| !v.is_finite()));
        [
            ("query.id", bad2(query_id)),
            ("query.timestamp", timestamp.as_ref().is_some_and(bad2)),
            ("query.head", bad_head(query_head)),
            ("candidate.id", bad2(candidate_id)),
            ("candidate.text", text.as_ref().is_some_and(bad2)),
            ("candidate.head", bad_head(candidate_head)),
        ]
        .into_iter()
        .find_map(|(name, bad)| bad.then_some(name))
    }

    /// One Adagrad step on every parameter (the two towers concurrently).
    pub fn step(
        &mut self,
        adagrad: &Adagrad,
        model: &mut TwoTower,
        query_grads: &QueryGrads,
        candidate_grads: &CandidateGrads,
    ) {
        let TwoTower { query, candidate } = model;
        let Self { query: query_state, candidate: candidate_state } = self;
        rayon::join(
            || query_state.step(adagrad, query, query_grads),
            || candidate_state.step(adagrad, candidate, candidate_grads),
        );
    }
}

impl QueryState {
    fn step(&mut self, adagrad: &Adagrad, tower: &mut QueryTower, grads: &QueryGrads) {
        let QueryTower { id, timestamp, head, .. } = tower;
        let QueryGrads { id: d_id, timestamp: d_timestamp, head: d_head } = grads;
        adagrad.step_rows(&mut id.table, d_id, &mut self.id);
        if let (Some(t), Some(dt), Some(s)) = (timestamp, d_timestamp, &mut self.timestamp) {
            adagrad.step_rows(&mut t.table, dt, s);
        }
        self.head.step(adagrad, head, d_head);
    }
}

impl CandidateState {
    fn step(&mut self, adagrad: &Adagrad, tower: &mut CandidateTower, grads: &CandidateGrads) {
        let CandidateTower { id, text, head, .. } = tower;
        let CandidateGrads { id: d_id, text: d_text, head: d_head } = grads;
        adagrad.step_rows(&mut id.table, d_id, &mut self.id);
        if let (Some(t), Some(dt), Some(s)) = (text, d_text, &mut self.text) {
            adagrad.step_rows(&mut t.table, dt, s);
        }
        self.head.step(adagrad, head, d_head);
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
