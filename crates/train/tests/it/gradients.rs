//! Finite-difference checks of every feature kind's table through the real path: a spec with
//! one feature of each kind (id, hashed id, linspace and quantile buckets, numeric, text, multi,
//! history) fitted on data, encoded, gathered into batches and run through both towers.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tensor::gradcheck::{assert_close, numeric_gradient, projection};
use towers::{Tower, TowerCache, TowerGrads, TwoTower};
use train::{embed_catalogue, embed_queries, Encoded};

use crate::tiny_model_file;

fn dot(a: ArrayView2<'_, f32>, b: &Array2<f32>) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// `Σ r ⊙ tower(examples)` for the query tower over interactions `rows`, or the candidate tower
/// over the whole catalogue; returns the loss and the analytic gradient.
fn loss_and_grads(model: &TwoTower, data: &Encoded, rows: &[usize], query: bool, r: &Array2<f32>) -> (f64, TowerGrads) {
    let mut cache = TowerCache::default();
    let out =
        if query { embed_queries(model, data, rows, &mut cache) } else { embed_catalogue(model, data, &mut cache) };
    let tower = if query { &model.query } else { &model.candidate };
    let mut grads = TowerGrads::zeros_like(tower);
    tower.backward(&mut cache, r.view(), &mut grads);
    (dot(out.view(), r), grads)
}

#[test]
fn every_feature_kind_gradchecks_through_encoded_batches() {
    let (file, data, split) = tiny_model_file();
    // Tables of a freshly trained model are tiny; scale them so the check is not lost in f32.
    let mut model = file.model.clone();
    let rows: Vec<usize> = split.test.iter().copied().take(12).collect();
    for (query, n) in [(true, rows.len()), (false, data.n_candidates())] {
        let tower: &mut Tower = if query { &mut model.query } else { &mut model.candidate };
        for input in &mut tower.inputs {
            if let Some(table) = input.table_mut() {
                *table *= 10.0;
            }
        }
        let tower = if query { &model.query } else { &model.candidate };
        let r = projection((n, tower.out_dim()), &mut ChaCha8Rng::seed_from_u64(7));
        let (_, grads) = loss_and_grads(&model, &data, &rows, query, &r);
        let mut checked = 0;
        for (i, input) in tower.inputs.iter().enumerate() {
            let Some(table) = input.table() else { continue };
            let numeric = numeric_gradient(table.as_slice().unwrap(), 1e-2, |v| {
                let mut perturbed = model.clone();
                let t = if query { &mut perturbed.query } else { &mut perturbed.candidate };
                *t.inputs[i].table_mut().unwrap() = Array2::from_shape_vec(table.dim(), v.to_vec()).unwrap();
                loss_and_grads(&perturbed, &data, &rows, query, &r).0
            });
            let analytic = grads.inputs[i].as_ref().unwrap().to_dense();
            assert_close(&input.name, analytic.as_slice().unwrap(), &numeric, 2e-3, 2e-2);
            assert!(analytic.iter().any(|&g| g != 0.0), "{}: the batch reaches no row", input.name);
            checked += 1;
        }
        assert_eq!(checked, if query { 5 } else { 3 }, "every table of the tower was checked");
    }
}
