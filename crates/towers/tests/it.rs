//! Finite-difference checks of a tower through every kind of input (lookup, bag, numeric), the
//! dense head and L2 normalisation, and config validation.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tensor::gradcheck::{assert_close, numeric_gradient, projection};
use tensor::Bags;
use towers::{
    ConfigError, InputColumn, InputKind, InputShape, ModelConfig, Tower, TowerCache, TowerConfig, TowerGrads, TwoTower,
};

fn shape(name: &str, kind: InputKind, rows: usize, dim: usize) -> InputShape {
    InputShape { name: name.into(), kind, rows, dim }
}

/// A tower with one input of every kind.
fn every_kind(layer_sizes: Vec<usize>, l2_normalize: bool) -> TowerConfig {
    TowerConfig {
        inputs: vec![
            shape("id", InputKind::Lookup, 4, 3),
            shape("tokens", InputKind::Bag, 6, 2),
            shape("x", InputKind::Numeric, 0, 1),
            shape("bucket", InputKind::Lookup, 3, 3),
        ],
        layer_sizes,
        l2_normalize,
    }
}

fn dot(a: ArrayView2<'_, f32>, b: &Array2<f32>) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// Checks the analytic gradient of `Σ r ⊙ tower(batch)` against central differences for every
/// table and every head weight.
fn gradcheck(config: TowerConfig, seed: u64) {
    let mut tower = Tower::new(&config, &mut ChaCha8Rng::seed_from_u64(seed));
    if tower.l2_normalize {
        // Keras' U(−0.05, 0.05) tables give tiny norms, where 1/‖x‖ curves too fast for a
        // finite difference in f32; scaled tables keep the check meaningful.
        for input in &mut tower.inputs {
            if let Some(table) = input.table_mut() {
                *table *= 20.0;
            }
        }
    }
    let mut bags = Bags::default();
    for bag in [&[2u32, 3, 0][..], &[1, 5], &[3, 3, 4], &[5], &[0, 0]] {
        bags.push(bag);
    }
    // One column per input, in the config's order, by name.
    let batch: Vec<InputColumn<'_>> = tower
        .inputs
        .iter()
        .map(|input| match input.name.as_str() {
            "id" => InputColumn::Ids(&[1, 3, 1, 0, 2]),
            "tokens" => InputColumn::Bags(&bags),
            "x" => InputColumn::Values(&[0.3, -1.2, 0.8, 0.1, 2.0]),
            "y" => InputColumn::Values(&[-0.7, 0.4, 1.5, -0.2, 0.9]),
            "bucket" => InputColumn::Ids(&[2, 0, 2, 1, 1]),
            other => panic!("no test column for input {other:?}"),
        })
        .collect();
    let r = projection((5, tower.out_dim()), &mut ChaCha8Rng::seed_from_u64(seed + 1));
    let loss = |t: &Tower| dot(t.forward(&batch, &mut TowerCache::default()), &r);
    let mut cache = TowerCache::default();
    tower.forward(&batch, &mut cache);
    let mut grads = TowerGrads::zeros_like(&tower);
    tower.backward(&mut cache, r.view(), &mut grads);
    for (i, input) in tower.inputs.iter().enumerate() {
        let Some(table) = input.table() else {
            assert!(grads.inputs[i].is_none(), "a numeric input has no gradient");
            continue;
        };
        let numeric = numeric_gradient(table.as_slice().unwrap(), 1e-3, |v| {
            let mut t = tower.clone();
            *t.inputs[i].table_mut().unwrap() = Array2::from_shape_vec(table.dim(), v.to_vec()).unwrap();
            loss(&t)
        });
        let analytic = grads.inputs[i].as_ref().unwrap().to_dense();
        assert_close(&format!("input {}", input.name), analytic.as_slice().unwrap(), &numeric, 1e-3, 1e-2);
    }
    for (l, layer) in tower.head.stack.iter().flat_map(|s| &s.layers).enumerate() {
        let numeric = numeric_gradient(layer.w.as_slice().unwrap(), 1e-3, |v| {
            let mut t = tower.clone();
            t.head.stack.as_mut().unwrap().layers[l].w = Array2::from_shape_vec(layer.w.dim(), v.to_vec()).unwrap();
            loss(&t)
        });
        let analytic = &grads.head.stack.as_ref().unwrap().layers[l].dw;
        assert_close(&format!("head w{l}"), analytic.as_slice().unwrap(), &numeric, 1e-3, 1e-2);
        let numeric = numeric_gradient(layer.b.as_slice().unwrap(), 1e-3, |v| {
            let mut t = tower.clone();
            t.head.stack.as_mut().unwrap().layers[l].b = ndarray::Array1::from(v.to_vec());
            loss(&t)
        });
        let analytic = &grads.head.stack.as_ref().unwrap().layers[l].db;
        assert_close(&format!("head b{l}"), analytic.as_slice().unwrap(), &numeric, 1e-3, 1e-2);
    }
}

#[test]
fn every_input_kind_gradchecks_with_a_deep_head() {
    gradcheck(every_kind(vec![4, 2], false), 41);
}

#[test]
fn trailing_numeric_inputs_gradcheck() {
    // The head's input gradient then stops at the last table's columns (a numeric feature
    // needs none): the tables' gradients must not change. Also a tower of numeric inputs only,
    // whose head computes no input gradient at all.
    let mut config = every_kind(vec![4, 2], false);
    let numeric = config.inputs.remove(2);
    config.inputs.push(numeric.clone());
    config.inputs.push(InputShape { name: "y".into(), ..numeric.clone() });
    gradcheck(config, 49);
    gradcheck(TowerConfig { inputs: vec![numeric], layer_sizes: vec![3], l2_normalize: false }, 51);
}

#[test]
fn every_input_kind_gradchecks_without_a_head() {
    gradcheck(every_kind(vec![], false), 43);
}

#[test]
fn l2_normalised_towers_gradcheck() {
    gradcheck(every_kind(vec![5, 3], true), 45);
    gradcheck(every_kind(vec![], true), 47);
}

#[test]
fn normalised_outputs_have_unit_norm() {
    let config =
        TowerConfig { inputs: vec![shape("id", InputKind::Lookup, 5, 4)], layer_sizes: vec![3], l2_normalize: true };
    let tower = Tower::new(&config, &mut ChaCha8Rng::seed_from_u64(3));
    let out = tower.forward(&[InputColumn::Ids(&[0, 1, 4])], &mut TowerCache::default()).to_owned();
    for row in out.rows() {
        assert!((row.dot(&row) - 1.0).abs() < 1e-6, "{row}");
    }
}

#[test]
fn output_widths_follow_the_config() {
    let config = ModelConfig { query: every_kind(vec![8, 5], false), candidate: every_kind(vec![5], false) };
    let model = TwoTower::new(config.validate().unwrap(), &mut ChaCha8Rng::seed_from_u64(44));
    assert_eq!((model.query.out_dim(), model.candidate.out_dim()), (5, 5));
    let bare = ModelConfig { query: every_kind(vec![], false), candidate: every_kind(vec![], false) };
    let model = TwoTower::new(bare.validate().unwrap(), &mut ChaCha8Rng::seed_from_u64(44));
    assert_eq!(model.query.out_dim(), 3 + 2 + 1 + 3);
}

#[test]
fn invalid_configs_are_errors_at_construction() {
    let model = |query: TowerConfig, candidate: TowerConfig| ModelConfig { query, candidate }.validate();
    let one = |dim| TowerConfig {
        inputs: vec![shape("id", InputKind::Lookup, 4, dim)],
        layer_sizes: vec![],
        l2_normalize: false,
    };
    assert_eq!(model(every_kind(vec![], false), one(3)), Err(ConfigError::MismatchedWidths { query: 9, candidate: 3 }));
    assert_eq!(
        model(every_kind(vec![64, 0], false), one(3)),
        Err(ConfigError::ZeroLayerSize { tower: "query", layer_sizes: vec![64, 0], index: 1 })
    );
    assert!(matches!(model(one(0), one(0)), Err(ConfigError::Input { tower: "query", .. })));
    assert!(matches!(model(one(5000), one(5000)), Err(ConfigError::TooWide { .. })));
    let empty = TowerConfig { inputs: vec![], layer_sizes: vec![3], l2_normalize: false };
    assert_eq!(model(one(3), empty), Err(ConfigError::NoInputs { tower: "candidate" }));
    let mut twice = one(3);
    twice.inputs.push(shape("id", InputKind::Bag, 2, 3));
    assert!(matches!(model(twice, one(6)), Err(ConfigError::DuplicateName { .. })));
    let mut wide_numeric = one(3);
    wide_numeric.inputs.push(shape("x", InputKind::Numeric, 0, 2));
    assert!(matches!(model(wide_numeric, one(5)), Err(ConfigError::Input { .. })));
}

#[test]
#[should_panic(expected = "a bags column for a Lookup layer")]
fn a_column_of_the_wrong_kind_is_refused() {
    let config =
        TowerConfig { inputs: vec![shape("id", InputKind::Lookup, 5, 4)], layer_sizes: vec![], l2_normalize: false };
    let tower = Tower::new(&config, &mut ChaCha8Rng::seed_from_u64(3));
    tower.forward(&[InputColumn::Bags(&Bags::default())], &mut TowerCache::default());
}

/// `backward_then_step` equals `backward` followed by the same steps one after another, bit for
/// bit, on a rayon pool of several workers: every input kind, with and without a head.
#[test]
fn backward_then_step_equals_backward_then_the_steps() {
    // A plain SGD step on each table (each touched row minus 0.1·its gradient) and on the head.
    fn step_table(input: &mut towers::Input, grad: Option<&tensor::RowSparseGrad>, count: &mut usize) {
        if let (Some(table), Some(grad)) = (input.table_mut(), grad) {
            for (i, &row) in grad.rows().iter().enumerate() {
                table.row_mut(row as usize).iter_mut().zip(grad.row_grad(i)).for_each(|(w, g)| *w -= 0.1 * g);
            }
        }
        *count += 1;
    }
    fn step_head(head: &mut towers::Head, grads: &towers::HeadGrads) {
        if let (Some(stack), Some(stack_grads)) = (&mut head.stack, &grads.stack) {
            for (layer, g) in stack.layers.iter_mut().zip(&stack_grads.layers) {
                layer.w.scaled_add(-0.1, &g.dw);
                layer.b.scaled_add(-0.1, &g.db);
            }
        }
    }
    let mut bags = Bags::default();
    for bag in [&[2u32, 3, 0][..], &[1, 5], &[3, 3, 4], &[5], &[0, 0]] {
        bags.push(bag);
    }
    let batch = [
        InputColumn::Ids(&[1, 3, 1, 0, 2]),
        InputColumn::Bags(&bags),
        InputColumn::Values(&[0.3, -1.2, 0.8, 0.1, 2.0]),
        InputColumn::Ids(&[2, 0, 2, 1, 1]),
    ];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for (layer_sizes, l2_normalize) in [(vec![6, 3], false), (vec![], true)] {
        let initial = Tower::new(&every_kind(layer_sizes, l2_normalize), &mut ChaCha8Rng::seed_from_u64(9));
        let dy = projection((5, initial.out_dim()), &mut ChaCha8Rng::seed_from_u64(10));

        let mut serial = initial.clone();
        let mut cache = TowerCache::default();
        serial.forward(&batch, &mut cache);
        let mut serial_grads = TowerGrads::zeros_like(&serial);
        serial.backward(&mut cache, dy.view(), &mut serial_grads);
        let mut serial_counts = vec![0usize; serial.inputs.len()];
        for ((input, grad), count) in serial.inputs.iter_mut().zip(&serial_grads.inputs).zip(&mut serial_counts) {
            step_table(input, grad.as_ref(), count);
        }
        step_head(&mut serial.head, &serial_grads.head);

        let mut joined = initial.clone();
        let mut cache = TowerCache::default();
        joined.forward(&batch, &mut cache);
        let mut grads = TowerGrads::zeros_like(&joined);
        let mut counts = vec![0usize; joined.inputs.len()];
        pool.install(|| {
            joined.backward_then_step(&mut cache, dy.view(), &mut grads, &mut counts, step_table, step_head)
        });
        assert_eq!(counts, vec![1; joined.inputs.len()], "one step per input, numeric ones included");
        assert_eq!(grads, serial_grads, "gradients");
        assert_eq!(joined, serial, "parameters after the steps");
        assert_ne!(joined, initial, "the steps changed the parameters");
    }
}
