//! The TFRS retrieval loss on your own embeddings: in-batch softmax with the logQ correction,
//! and its gradients.
//!
//! Run with `cargo run -p retrieval --example loss`.

use ndarray::array;
use retrieval::{AccidentalHits, Batch, InBatchSoftmax, LossConfig};

fn main() {
    // Three queries, three candidates; candidate i is query i's positive.
    let queries = array![[1.0f32, 0.0], [0.0, 1.0], [0.7, 0.7]];
    let candidates = array![[0.9f32, 0.1], [0.1, 0.9], [0.5, 0.5]];
    let mut loss = InBatchSoftmax::default();
    let plain = loss.compute(&Batch::new(queries.view(), candidates.view()), &LossConfig::default());
    println!("summed in-batch softmax loss: {plain:.5}");
    println!("dL/dQ:\n{:.4}", loss.query_grad());

    // The logQ correction subtracts log p(candidate) from every logit (Yi et al. 2019): a very
    // popular candidate (p = 0.5) stops dominating the negatives.
    let probabilities = [0.5f32, 0.01, 0.01];
    let batch = Batch {
        candidate_sampling_probability: Some(&probabilities),
        accidental_hits: AccidentalHits::Keep,
        ..Batch::new(queries.view(), candidates.view())
    };
    let corrected = loss.compute(&batch, &LossConfig { temperature: Some(0.5), num_hard_negatives: None });
    println!("with logQ and temperature 0.5: {corrected:.5}");
    assert!(plain.is_finite() && corrected.is_finite());
}
