//! Stopping a run that has gone wrong, instead of writing a model and metrics computed from
//! NaN: the checks `Trainer::fit` makes before, during and after every epoch.
//!
//! * Before: at least 2 training rows (an in-batch softmax needs a negative) and 1 test row.
//! * After every batch: the loss is finite, and no element of `dQ` or `dC` exceeds
//!   [`GRADIENT_LIMIT`], beyond which `g²` overflows f32 and Adagrad's accumulator becomes ∞,
//!   freezing every weight it touches (what a tiny temperature does).
//! * After every epoch: every weight and every Adagrad accumulator is finite.

use ndarray::ArrayView2;

/// `√f32::MAX`: a gradient element at or beyond this overflows Adagrad's `Σ g²`.
pub const GRADIENT_LIMIT: f32 = 1.844_674_4e19;

/// Why training stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// Fewer than two training rows.
    #[error("the split has {found} training row(s); the in-batch softmax needs at least 2")]
    TooFewTrainRows {
        /// Training rows in the split.
        found: usize,
    },
    /// No test rows: nothing to evaluate on.
    #[error("the split has no test rows; nothing to evaluate the model on")]
    NoTestRows,
    /// The loss, a gradient, a weight or an accumulator went NaN or ∞.
    #[error("epoch {epoch}, batch {batch} of {n_batches}: {problem}; training stopped and nothing was written. Try a smaller learning rate (now {learning_rate}){}", temperature_hint(*.temperature))]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// Batches per epoch.
        n_batches: usize,
        /// What went wrong, with the value.
        problem: String,
        /// The run's learning rate.
        learning_rate: f32,
        /// The run's temperature, if set.
        temperature: Option<f32>,
    },
    /// A checkpoint is being resumed on other training data than it was written from.
    #[error("the checkpoint was written for other training data (the training rows, their order or the catalogue differ); resume with the same data, split and flags")]
    OtherData,
    /// A checkpoint could not be written.
    #[error("writing the checkpoint of epoch {epoch} into {}: {problem}", dir.display())]
    Checkpoint {
        /// The checkpoint directory.
        dir: std::path::PathBuf,
        /// The epoch just completed.
        epoch: usize,
        /// The I/O error.
        problem: String,
    },
}

fn temperature_hint(temperature: Option<f32>) -> String {
    match temperature {
        Some(t) if t < 1.0 => format!(" or a temperature nearer 1 (now {t}; the logits are divided by it)"),
        _ => String::new(),
    }
}

/// What is wrong after one step, if anything.
pub(crate) fn step_problem(loss: f32, dq: ArrayView2<'_, f32>, dc: ArrayView2<'_, f32>) -> Option<String> {
    if !loss.is_finite() {
        return Some(format!("the loss is {loss}"));
    }
    for (name, grad) in [("query", dq), ("candidate", dc)] {
        if let Some(g) = first_beyond_limit(grad) {
            return Some(format!(
                "a {name} embedding gradient is {g:e}, beyond {GRADIENT_LIMIT:e} whose square overflows Adagrad's float32 accumulator (the weights would freeze)"
            ));
        }
    }
    None
}

/// Whether `g` is below [`GRADIENT_LIMIT`] in magnitude (false for NaN).
#[inline(always)]
fn within_limit(g: f32) -> bool {
    g.abs() < GRADIENT_LIMIT
}

/// The first element of `grad` that is NaN or at least [`GRADIENT_LIMIT`] in magnitude.
///
/// Runs after every step while the other cores wait: a count of the elements beyond the limit
/// per chunk (a branch-free loop the compiler vectorises) says whether there is one, and only
/// then a scan finds it (an early-exit scan of the 2·2048·32 elements of a batch took about 1 %
/// of a step).
fn first_beyond_limit(grad: ArrayView2<'_, f32>) -> Option<f32> {
    let any = match grad.as_slice() {
        Some(values) => values.chunks(1024).any(|chunk| chunk.iter().filter(|&&g| !within_limit(g)).count() > 0),
        None => grad.iter().any(|&g| !within_limit(g)),
    };
    if any {
        grad.iter().copied().find(|&g| !within_limit(g))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    #[test]
    fn the_first_gradient_beyond_the_limit_is_named() {
        let mut grad = Array2::from_shape_fn((2048, 32), |(i, j)| (i as f32 - 1000.0) * (j as f32 + 1.0));
        assert_eq!(first_beyond_limit(grad.view()), None);
        assert_eq!(step_problem(1.0, grad.view(), grad.view()), None);
        for (at, bad) in [((2047, 31), f32::NAN), ((700, 3), -GRADIENT_LIMIT), ((5, 0), f32::INFINITY)] {
            let mut copy = grad.clone();
            copy[at] = bad;
            // A later one too: the first in row-major order is reported.
            copy[[2047, 30]] = 2.0 * GRADIENT_LIMIT;
            let found = first_beyond_limit(copy.view()).expect("found");
            let expected = if at == (2047, 31) { 2.0 * GRADIENT_LIMIT } else { bad };
            assert_eq!(found.to_bits(), expected.to_bits(), "{at:?}");
            // Also through a view that is not contiguous (the scalar path).
            assert!(first_beyond_limit(copy.t()).is_some());
            let message = step_problem(1.0, grad.view(), copy.view()).expect("a problem");
            assert!(message.starts_with("a candidate embedding gradient is"), "{message}");
        }
        // The float just below the limit passes.
        grad[[3, 3]] = -f32::from_bits(GRADIENT_LIMIT.to_bits() - 1);
        assert!(within_limit(grad[[3, 3]]) && first_beyond_limit(grad.view()).is_none());
        assert_eq!(step_problem(f32::NAN, grad.view(), grad.view()).as_deref(), Some("the loss is NaN"));
    }
}
