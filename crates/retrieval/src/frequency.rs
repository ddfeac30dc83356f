//! Streaming estimates of candidate sampling probabilities for the logQ correction, when counts
//! are not known up front: Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling for Large
//! Corpus Item Recommendations", Algorithm 1.
//!
//! Two arrays of `H` cells, indexed by a hash of the candidate id: `last[h]`, the step at which
//! a candidate hashing to `h` was last seen, and `gap[h]`, a moving average of the steps between
//! sightings. At step `t`, for each candidate `y` in the batch:
//!
//! ```text
//! gap[h(y)]  ← (1 − α)·gap[h(y)] + α·(t − last[h(y)])
//! last[h(y)] ← t
//! p(y)       ≈ 1 / gap[h(y)]        the probability that y appears in a batch
//! ```
//!
//! Each distinct candidate of a batch counts once per step (a candidate seen twice in one step
//! would otherwise record a gap of 0). Collisions merge candidates that share a cell, as in the
//! paper; with `H` at least the number of candidates and ids below `H`, cells are exact.

use serde::{Deserialize, Serialize};

/// The estimator's state (serialisable, to resume training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingFrequency {
    /// Step at which each cell was last seen; 0: never.
    last: Vec<u64>,
    /// Moving average of the steps between sightings, per cell.
    gap: Vec<f32>,
    /// Learning rate `α` of the moving average.
    alpha: f32,
    /// Steps seen so far.
    step: u64,
    /// Reused per step: cells already updated in this step.
    seen_this_step: Vec<u64>,
}

impl StreamingFrequency {
    /// An estimator with `cells` cells and moving-average rate `alpha` (the paper uses 0.01).
    /// Every gap starts at `cells` steps (a probability of `1 / cells`) until seen.
    ///
    /// # Panics
    /// If `cells` is 0 or `alpha` is not in `(0, 1]`.
    pub fn new(cells: usize, alpha: f32) -> Self {
        assert!(cells > 0, "StreamingFrequency: at least one cell");
        assert!(alpha > 0.0 && alpha <= 1.0, "StreamingFrequency: alpha {alpha} not in (0, 1]");
        Self { last: vec![0; cells], gap: vec![cells as f32; cells], alpha, step: 0, seen_this_step: vec![0; cells] }
    }

    /// The cell of candidate `id`: the id itself when it fits, else a multiplicative hash.
    fn cell(&self, id: u32) -> usize {
        let cells = self.last.len();
        if (id as usize) < cells {
            id as usize
        } else {
            ((u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17) % cells as u64) as usize
        }
    }

    /// Records one training step's candidate ids (Algorithm 1's update).
    pub fn observe(&mut self, ids: &[u32]) {
        self.step += 1;
        let t = self.step;
        for &id in ids {
            let h = self.cell(id);
            if self.seen_this_step[h] == t {
                continue;
            }
            self.seen_this_step[h] = t;
            if self.last[h] > 0 {
                let elapsed = (t - self.last[h]) as f32;
                self.gap[h] = (1.0 - self.alpha) * self.gap[h] + self.alpha * elapsed;
            }
            self.last[h] = t;
        }
    }

    /// The estimated probability that `id` appears in a batch, `1 / gap` (at most 1).
    pub fn probability(&self, id: u32) -> f32 {
        (1.0 / self.gap[self.cell(id)].max(1.0)).min(1.0)
    }

    /// [`Self::probability`] of every id of a batch, into `out` (for `Batch::candidate_sampling_probability`).
    pub fn probabilities(&self, ids: &[u32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(ids.iter().map(|&id| self.probability(id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_seen_every_k_steps_gets_probability_1_over_k() {
        let mut estimator = StreamingFrequency::new(16, 0.1);
        for step in 0..2000 {
            let mut ids = vec![1];
            if step % 4 == 0 {
                ids.push(2);
            }
            ids.push(1); // a repeat within a step counts once
            estimator.observe(&ids);
        }
        assert!((estimator.probability(1) - 1.0).abs() < 1e-3, "{}", estimator.probability(1));
        assert!((estimator.probability(2) - 0.25).abs() < 1e-3, "{}", estimator.probability(2));
        assert_eq!(estimator.probability(3), 1.0 / 16.0, "never seen: the prior");
    }
}
