//! Adagrad against tf-keras 2.21 (`tests/golden/adagrad.json`): three dense steps, and a sparse
//! step whose gradient repeats a row.

use ndarray::Array1;
use optim::{Adagrad, AdagradConfig, AdagradState};
use serde::Deserialize;
use tensor::gradcheck::matrix;
use tensor::RowSparseGrad;

#[derive(Deserialize)]
struct Golden {
    dense: Dense,
    sparse: Sparse,
}

#[derive(Deserialize)]
struct Dense {
    w0: Vec<Vec<f32>>,
    grads: Vec<Vec<Vec<f32>>>,
    w_after_each_step: Vec<Vec<Vec<f32>>>,
}

#[derive(Deserialize)]
struct Sparse {
    w0: Vec<Vec<f32>>,
    indices: Vec<u32>,
    values: Vec<Vec<f32>>,
    w_after: Vec<Vec<f32>>,
}

fn tutorial_adagrad() -> Adagrad {
    Adagrad::new(AdagradConfig { learning_rate: 0.1, ..AdagradConfig::default() })
}

fn golden() -> Golden {
    serde_json::from_str(include_str!("golden/adagrad.json")).unwrap()
}

#[test]
fn dense_steps_match_keras() {
    let golden = golden().dense;
    let adagrad = tutorial_adagrad();
    let mut w = matrix(&golden.w0);
    let mut state = AdagradState::new(&w, &adagrad);
    for (step, (grad, expected)) in golden.grads.iter().zip(&golden.w_after_each_step).enumerate() {
        adagrad.step_dense(&mut w, &matrix(grad), &mut state);
        let error = w.iter().zip(&matrix(expected)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        eprintln!("dense step {}: max abs error {error:e}", step + 1);
        assert!(error <= 1e-6, "step {}: max abs error {error}", step + 1);
    }
}

#[test]
fn sparse_step_sums_repeated_rows_and_leaves_others_bit_exact() {
    let golden = golden().sparse;
    let adagrad = tutorial_adagrad();
    let mut table = matrix(&golden.w0);
    let mut state = AdagradState::new(&table, &adagrad);
    let mut grad = RowSparseGrad::new(table.nrows(), table.ncols());
    for (&row, values) in golden.indices.iter().zip(&golden.values) {
        grad.add_row(row, Array1::from(values.clone()).view());
    }
    adagrad.step_rows(&mut table, &grad, &mut state);
    let expected = matrix(&golden.w_after);
    let error = table.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    eprintln!("sparse step: max abs error {error:e}");
    assert!(error <= 1e-6, "max abs error {error}");
    let before = matrix(&golden.w0);
    for untouched in [0, 2, 4] {
        assert_eq!(table.row(untouched), before.row(untouched), "row {untouched} value");
        assert!(
            state.accumulator.row(untouched).iter().all(|&a| a.to_bits() == 0.1f32.to_bits()),
            "row {untouched} accumulator"
        );
    }
}

#[test]
fn sparse_step_equals_dense_step_on_the_scattered_gradient() {
    let golden = golden().sparse;
    let adagrad = tutorial_adagrad();
    let mut grad = RowSparseGrad::new(5, 2);
    for (&row, values) in golden.indices.iter().zip(&golden.values) {
        grad.add_row(row, Array1::from(values.clone()).view());
    }
    let (mut sparse, mut dense) = (matrix(&golden.w0), matrix(&golden.w0));
    let (mut sparse_state, mut dense_state) =
        (AdagradState::new(&sparse, &adagrad), AdagradState::new(&dense, &adagrad));
    adagrad.step_rows(&mut sparse, &grad, &mut sparse_state);
    adagrad.step_dense(&mut dense, &grad.to_dense(), &mut dense_state);
    assert_eq!(sparse, dense);
    assert_eq!(sparse_state, dense_state);
}
