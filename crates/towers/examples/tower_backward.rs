//! A tower with manual backward: forward a batch, push a gradient back, read the table
//! gradients, and check one entry against a finite difference.
//!
//! Run with `cargo run -p towers --example tower_backward`.

use ndarray::Array2;
use rand::SeedableRng;
use tensor::Bags;
use towers::{InputColumn, InputKind, InputShape, Tower, TowerCache, TowerConfig, TowerGrads};

fn main() {
    let config = TowerConfig {
        inputs: vec![
            InputShape { name: "user".into(), kind: InputKind::Lookup, rows: 10, dim: 8 },
            InputShape { name: "history".into(), kind: InputKind::Bag, rows: 50, dim: 8 },
            InputShape { name: "age".into(), kind: InputKind::Numeric, rows: 0, dim: 1 },
        ],
        layer_sizes: vec![16, 4],
        l2_normalize: false,
    };
    let tower = Tower::new(&config, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let mut history = Bags::default();
    for items in [&[3u32, 7, 9][..], &[], &[1, 1, 2]] {
        history.push(items);
    }
    let batch = [InputColumn::Ids(&[1, 4, 9]), InputColumn::Bags(&history), InputColumn::Values(&[-0.5, 0.0, 1.2])];

    let mut cache = TowerCache::default();
    let embeddings = tower.forward(&batch, &mut cache).to_owned();
    println!("embeddings {:?}:\n{embeddings:.4}", embeddings.dim());

    // The gradient of L = Σ embeddings (dL/dy = 1 everywhere).
    let upstream = Array2::ones(embeddings.raw_dim());
    let mut grads = TowerGrads::zeros_like(&tower);
    tower.backward(&mut cache, upstream.view(), &mut grads);
    let user_grad = grads.inputs[0].as_ref().expect("a lookup has a table gradient");
    println!("user rows with a gradient: {:?}", user_grad.rows());

    // Check dL/dE[4][0] by a central difference.
    let loss = |t: &Tower| t.forward(&batch, &mut TowerCache::default()).iter().map(|&v| f64::from(v)).sum::<f64>();
    let h = 1e-3;
    let (mut plus, mut minus) = (tower.clone(), tower.clone());
    plus.inputs[0].table_mut().expect("table")[[4, 0]] += h;
    minus.inputs[0].table_mut().expect("table")[[4, 0]] -= h;
    let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(h));
    let analytic = f64::from(user_grad.to_dense()[[4, 0]]);
    println!("dL/dE[4][0]: analytic {analytic:.5}, numeric {numeric:.5}");
    assert!((analytic - numeric).abs() < 1e-3, "the manual backward is wrong");
}
