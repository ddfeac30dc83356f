//! Finite-difference checks of both towers through every parameter table, and config validation.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tensor::gradcheck::{assert_close, numeric_gradient, projection};
use tensor::Bags;
use towers::{
    CandidateBatch, CandidateCache, CandidateFeatures, CandidateGrads, CandidateTower, ConfigError, ModelConfig,
    QueryBatch, QueryCache, QueryFeatures, QueryGrads, QueryTower, TwoTower, Vocabularies,
};

const SIZES: Vocabularies = Vocabularies { n_query_ids: 4, n_buckets: 3, n_candidate_ids: 5, n_tokens: 6 };

fn full_config(layer_sizes: Vec<usize>) -> ModelConfig {
    ModelConfig {
        query_features: QueryFeatures::IdAndTime,
        candidate_features: CandidateFeatures::IdAndText,
        embedding_dim: 3,
        layer_sizes,
    }
}

fn model(layer_sizes: Vec<usize>) -> TwoTower {
    TwoTower::new(full_config(layer_sizes).validate().unwrap(), SIZES, &mut ChaCha8Rng::seed_from_u64(41))
}

fn dot(a: ArrayView2<'_, f32>, b: &Array2<f32>) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// Replaces the values of a table with `v` (same shape).
fn with_values(table: &Array2<f32>, v: &[f32]) -> Array2<f32> {
    Array2::from_shape_vec(table.dim(), v.to_vec()).unwrap()
}

#[test]
fn query_tower_gradcheck() {
    let tower = model(vec![4, 2]).query;
    let batch = QueryBatch {
        ids: &[1, 3, 1, 0, 2],
        buckets: &[2, 0, 2, 1, 1],
        normalized_timestamps: &[0.3, -1.2, 0.8, 0.1, 2.0],
    };
    let r = projection((5, 2), &mut ChaCha8Rng::seed_from_u64(42));
    let loss = |t: &QueryTower| dot(t.forward(&batch, &mut QueryCache::default()), &r);
    let mut cache = QueryCache::default();
    tower.forward(&batch, &mut cache);
    let mut grads = QueryGrads::zeros_like(&tower);
    tower.backward(&mut cache, r.view(), &mut grads);

    let num = numeric_gradient(tower.id.table.as_slice().unwrap(), 1e-3, |v| {
        let mut t = tower.clone();
        t.id.table = with_values(&tower.id.table, v);
        loss(&t)
    });
    assert_close("query user table", grads.id.to_dense().as_slice().unwrap(), &num, 1e-3, 1e-2);
    let bucket_table = &tower.timestamp.as_ref().unwrap().table;
    let num = numeric_gradient(bucket_table.as_slice().unwrap(), 1e-3, |v| {
        let mut t = tower.clone();
        t.timestamp.as_mut().unwrap().table = with_values(bucket_table, v);
        loss(&t)
    });
    assert_close(
        "query bucket table",
        grads.timestamp.as_ref().unwrap().to_dense().as_slice().unwrap(),
        &num,
        1e-3,
        1e-2,
    );
    let w0 = &tower.head.stack.as_ref().unwrap().layers[0].w;
    let num = numeric_gradient(w0.as_slice().unwrap(), 1e-3, |v| {
        let mut t = tower.clone();
        t.head.stack.as_mut().unwrap().layers[0].w = with_values(w0, v);
        loss(&t)
    });
    let dw0 = &grads.head.stack.as_ref().unwrap().layers[0].dw;
    assert_close("query head w0", dw0.as_slice().unwrap(), &num, 1e-3, 1e-2);
}

#[test]
fn candidate_tower_gradcheck() {
    let tower = model(vec![2]).candidate;
    let mut tokens = Bags::default();
    for bag in [&[2u32, 3, 0][..], &[1, 5], &[3, 3, 4], &[5], &[2, 0]] {
        tokens.push(bag);
    }
    let batch = CandidateBatch { ids: &[4, 1, 4, 0, 2], tokens: &tokens };
    let r = projection((5, 2), &mut ChaCha8Rng::seed_from_u64(43));
    let loss = |t: &CandidateTower| dot(t.forward(&batch, &mut CandidateCache::default()), &r);
    let mut cache = CandidateCache::default();
    tower.forward(&batch, &mut cache);
    let mut grads = CandidateGrads::zeros_like(&tower);
    tower.backward(&mut cache, r.view(), &mut grads);

    let num = numeric_gradient(tower.id.table.as_slice().unwrap(), 1e-3, |v| {
        let mut t = tower.clone();
        t.id.table = with_values(&tower.id.table, v);
        loss(&t)
    });
    assert_close("candidate title table", grads.id.to_dense().as_slice().unwrap(), &num, 1e-3, 1e-2);
    let token_table = &tower.text.as_ref().unwrap().table;
    let num = numeric_gradient(token_table.as_slice().unwrap(), 1e-3, |v| {
        let mut t = tower.clone();
        t.text.as_mut().unwrap().table = with_values(token_table, v);
        loss(&t)
    });
    assert_close(
        "candidate token table",
        grads.text.as_ref().unwrap().to_dense().as_slice().unwrap(),
        &num,
        1e-3,
        1e-2,
    );
    let b0 = &tower.head.stack.as_ref().unwrap().layers[0].b;
    let num = numeric_gradient(b0.as_slice().unwrap(), 1e-3, |v| {
        let mut t = tower.clone();
        t.head.stack.as_mut().unwrap().layers[0].b = ndarray::Array1::from(v.to_vec());
        loss(&t)
    });
    assert_close(
        "candidate head b0",
        grads.head.stack.as_ref().unwrap().layers[0].db.as_slice().unwrap(),
        &num,
        1e-3,
        1e-2,
    );
}

#[test]
fn output_widths_follow_the_config() {
    let with_head = model(vec![8, 5]);
    assert_eq!((with_head.query.out_dim(), with_head.candidate.out_dim()), (5, 5));
    let basic = ModelConfig {
        query_features: QueryFeatures::Id,
        candidate_features: CandidateFeatures::Id,
        embedding_dim: 32,
        layer_sizes: vec![],
    };
    let basic = TwoTower::new(basic.validate().unwrap(), SIZES, &mut ChaCha8Rng::seed_from_u64(44));
    assert_eq!((basic.query.out_dim(), basic.candidate.out_dim()), (32, 32));
}

#[test]
fn invalid_configs_are_errors_at_construction() {
    assert_eq!(full_config(vec![]).validate(), Err(ConfigError::MismatchedWidths { query: 7, candidate: 6 }));
    assert_eq!(
        full_config(vec![64, 0]).validate(),
        Err(ConfigError::ZeroLayerSize { layer_sizes: vec![64, 0], index: 1 })
    );
    assert_eq!(
        ModelConfig { embedding_dim: 0, ..full_config(vec![32]) }.validate(),
        Err(ConfigError::ZeroEmbeddingDim)
    );
}
