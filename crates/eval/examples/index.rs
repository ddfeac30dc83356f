//! Exact top-k over your own embeddings, excluding what each user already saw, and the
//! factorized top-k accuracy of TFRS.
//!
//! Run with `cargo run -p eval --example index`.

use eval::{true_rank, BruteForceIndex, FactorizedTopK};
use ndarray::Array2;

fn main() {
    // 1000 items on a circle, 3 queries.
    let items = Array2::from_shape_fn((1000, 2), |(i, j)| {
        let angle = i as f32 * std::f32::consts::TAU / 1000.0;
        if j == 0 {
            angle.cos()
        } else {
            angle.sin()
        }
    });
    let keys: Vec<u32> = (0..1000).collect();
    let index = BruteForceIndex::new(items.clone(), keys);
    let queries = ndarray::array![[1.0f32, 0.0], [0.0, 1.0], [-1.0, 0.0]];
    let seen = vec![vec![0, 1], vec![], vec![500]];
    for (q, top) in index.top_k(queries.view(), 3, Some(&seen)).iter().enumerate() {
        println!("query {q}: rows {:?}, scores {:?}", top.rows, top.scores);
    }

    // Where each query's true item ranks, and the accuracy at k.
    let ranks = true_rank(queries.view(), items.view(), &[0, 240, 500], None);
    let mut metric = FactorizedTopK::new(&[1, 5, 10]);
    metric.update(&ranks);
    println!("ranks {ranks:?}, accuracy {:?}", metric.accuracies());
    assert_eq!(ranks, [0, 19, 0], "19 items lie nearer to [0, 1] than item 240");
}
