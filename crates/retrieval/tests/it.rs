//! The retrieval loss against TFRS 0.7.7 (`tests/golden/retrieval_loss.json`, every case) and
//! against finite differences (every option alone and together, with weights).

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use retrieval::{AccidentalHits, Batch, InBatchSoftmax, LossConfig, SoftmaxKernel};
use serde::Deserialize;
use tensor::gradcheck::{assert_close, matrix, numeric_gradient};
use tensor::init::uniform;

#[derive(Deserialize)]
struct Golden {
    query: Vec<Vec<f32>>,
    candidate: Vec<Vec<f32>>,
    candidate_ids: Vec<u32>,
    candidate_sampling_probability: Vec<f32>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    options: Options,
    loss: f32,
    grad_query: Vec<Vec<f32>>,
    grad_candidate: Vec<Vec<f32>>,
}

#[derive(Deserialize, Debug)]
struct Options {
    temperature: Option<f32>,
    #[serde(default)]
    num_hard_negatives: Option<usize>,
    /// Candidates used (the first `n`); `None`: as many as queries.
    #[serde(default)]
    n_candidates: Option<usize>,
    #[serde(default)]
    logq: bool,
    #[serde(default)]
    remove_accidental_hits: bool,
}

/// Largest `|a − b| / max(|b|, 1)`: relative for elements of magnitude ≥ 1, absolute below
/// (an element near zero is a sum of cancelling O(1) terms, whose f32 rounding is absolute).
fn max_relative_error(ours: ArrayView2<'_, f32>, theirs: &Array2<f32>) -> f32 {
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f32::max)
}

#[test]
fn golden_parity_with_tfrs() {
    check_golden(include_str!("golden/retrieval_loss.json"));
}

/// `num_hard_negatives`, and more candidates than queries (extra negatives), alone and combined
/// with logQ, accidental hits and temperature (`tests/golden/retrieval_extra.json`).
#[test]
fn golden_parity_with_tfrs_hard_negatives_and_extra_candidates() {
    check_golden(include_str!("golden/retrieval_extra.json"));
}

fn check_golden(text: &str) {
    let golden: Golden = serde_json::from_str(text).unwrap();
    let q = matrix(&golden.query);
    let mut loss = InBatchSoftmax::default();
    for case in &golden.cases {
        let n = case.options.n_candidates.unwrap_or(golden.query.len());
        let c = matrix(&golden.candidate[..n]);
        let batch = Batch {
            candidate_sampling_probability: case.options.logq.then_some(&golden.candidate_sampling_probability[..n]),
            accidental_hits: if case.options.remove_accidental_hits {
                AccidentalHits::Remove { candidate_ids: &golden.candidate_ids[..n] }
            } else {
                AccidentalHits::Keep
            },
            ..Batch::new(q.view(), c.view())
        };
        let config =
            LossConfig { temperature: case.options.temperature, num_hard_negatives: case.options.num_hard_negatives };
        let value = loss.compute(&batch, &config);
        let loss_error = (value - case.loss).abs() / case.loss.abs();
        let dq_error = max_relative_error(loss.query_grad(), &matrix(&case.grad_query));
        let dc_error = max_relative_error(loss.candidate_grad(), &matrix(&case.grad_candidate));
        eprintln!("{:?}: loss rel err {loss_error:e}, dQ {dq_error:e}, dC {dc_error:e}", case.options);
        assert!(loss_error <= 1e-5, "{:?}: loss {value} vs {}", case.options, case.loss);
        assert!(dq_error <= 1e-5, "{:?}: dQ max rel error {dq_error}", case.options);
        assert!(dc_error <= 1e-5, "{:?}: dC max rel error {dc_error}", case.options);
    }
}

/// Every combination of temperature, logQ, accidental hits, weights and hard negatives, with N > B.
#[test]
fn gradcheck_every_option_combination() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (n_queries, n_candidates, dim) = (4, 6, 3);
    let q = uniform((n_queries, dim), 1.0, &mut rng);
    let c = uniform((n_candidates, dim), 1.0, &mut rng);
    let ids = [7u32, 8, 7, 9, 8, 7];
    let probabilities = [0.3f32, 0.1, 0.05, 0.2, 1e-8, 0.6];
    let weights = [1.0f32, 0.5, 2.0, 0.0];
    let mut worst = 0f32;
    for mask in 0..32u32 {
        let config = LossConfig {
            temperature: (mask & 1 != 0).then_some(0.7),
            num_hard_negatives: (mask & 16 != 0).then_some(2),
        };
        fn make<'a>(
            mask: u32,
            q: ArrayView2<'a, f32>,
            c: ArrayView2<'a, f32>,
            extras: &'a ([u32; 6], [f32; 6], [f32; 4]),
        ) -> Batch<'a> {
            let (ids, probabilities, weights) = extras;
            Batch {
                query: q,
                candidate: c,
                sample_weight: (mask & 8 != 0).then_some(&weights[..]),
                candidate_sampling_probability: (mask & 2 != 0).then_some(&probabilities[..]),
                accidental_hits: if mask & 4 != 0 {
                    AccidentalHits::Remove { candidate_ids: ids }
                } else {
                    AccidentalHits::Keep
                },
            }
        }
        let extras = (ids, probabilities, weights);
        let mut loss = InBatchSoftmax::default();
        loss.compute(&make(mask, q.view(), c.view(), &extras), &config);
        let (dq, dc) = (loss.query_grad().to_owned(), loss.candidate_grad().to_owned());
        let eval = |q: ArrayView2<'_, f32>, c: ArrayView2<'_, f32>| {
            f64::from(InBatchSoftmax::default().compute(&make(mask, q, c, &extras), &config))
        };
        // Hard negatives make the loss piecewise smooth (the kept set changes where two negatives
        // tie); a smaller step stays on one piece.
        let step = if mask & 16 != 0 { 1e-3 } else { 1e-2 };
        let num_dq = numeric_gradient(q.as_slice().unwrap(), step, |v| {
            eval(ArrayView2::from_shape(q.dim(), v).unwrap(), c.view())
        });
        let num_dc = numeric_gradient(c.as_slice().unwrap(), step, |v| {
            eval(q.view(), ArrayView2::from_shape(c.dim(), v).unwrap())
        });
        worst =
            worst.max(assert_close(&format!("dQ, options {mask:05b}"), dq.as_slice().unwrap(), &num_dq, 2e-3, 1e-2));
        worst =
            worst.max(assert_close(&format!("dC, options {mask:05b}"), dc.as_slice().unwrap(), &num_dc, 2e-3, 1e-2));
    }
    eprintln!("loss gradcheck: max abs error {worst:e}");
}

#[test]
fn huge_logits_do_not_overflow() {
    let q = Array2::from_shape_vec((2, 1), vec![100.0f32, -100.0]).unwrap();
    let c = Array2::from_shape_vec((2, 1), vec![100.0f32, 100.0]).unwrap();
    let mut loss = InBatchSoftmax::default();
    let value = loss.compute(&Batch::new(q.view(), c.view()), &LossConfig::default());
    // Row 0: logits (1e4, 1e4): log 2. Row 1: (−1e4, −1e4): log 2.
    assert!((value - 2.0 * 2f32.ln()).abs() < 1e-5, "{value}");
    assert!(loss.query_grad().iter().chain(loss.candidate_grad()).all(|v| v.is_finite()));
}

#[test]
fn sum_reduction_scales_with_batch() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let q = uniform((3, 2), 1.0, &mut rng);
    let doubled = ndarray::concatenate![ndarray::Axis(0), q, q];
    let mut loss = InBatchSoftmax::default();
    let single: f32 = (0..3)
        .map(|i| {
            let row = q.slice(ndarray::s![i..i + 1, ..]);
            loss.compute(&Batch::new(row, row), &LossConfig::default())
        })
        .sum();
    assert_eq!(single, 0.0, "a one-candidate softmax has zero loss");
    let full = loss.compute(&Batch::new(doubled.view(), doubled.view()), &LossConfig::default());
    let half = loss.compute(&Batch::new(q.view(), q.view()), &LossConfig::default());
    assert!(full > 1.5 * half, "SUM over twice the rows (and more negatives) exceeds the half batch: {full} vs {half}");
}

/// The plain textbook computation in f64: logits, options, softmax, loss and both gradients.
fn naive_reference(batch: &Batch<'_>, temperature: f64) -> (f64, Array2<f64>, Array2<f64>) {
    let (n_queries, dim) = batch.query.dim();
    let n_candidates = batch.candidate.nrows();
    let (mut dq, mut dc) = (Array2::<f64>::zeros((n_queries, dim)), Array2::<f64>::zeros((n_candidates, dim)));
    let mut loss = 0.0;
    for i in 0..n_queries {
        let logits: Vec<f64> = (0..n_candidates)
            .map(|j| {
                let dot: f64 =
                    (0..dim).map(|d| f64::from(batch.query[[i, d]]) * f64::from(batch.candidate[[j, d]])).sum();
                let mut s = dot / temperature;
                if let Some(p) = batch.candidate_sampling_probability {
                    s -= f64::from(p[j].clamp(1e-6, 1.0)).ln();
                }
                if let AccidentalHits::Remove { candidate_ids } = batch.accidental_hits {
                    if candidate_ids[j] == candidate_ids[i] && j != i {
                        s += f64::from(retrieval::MIN_FLOAT);
                    }
                }
                s
            })
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = logits.iter().map(|s| (s - max).exp()).sum();
        let weight = batch.sample_weight.map_or(1.0, |w| f64::from(w[i]));
        loss += weight * (max + sum.ln() - logits[i]);
        for (j, s) in logits.iter().enumerate() {
            let ds = weight * ((s - max).exp() / sum - if i == j { 1.0 } else { 0.0 }) / temperature;
            for d in 0..dim {
                dq[[i, d]] += ds * f64::from(batch.candidate[[j, d]]);
                dc[[j, d]] += ds * f64::from(batch.query[[i, d]]);
            }
        }
    }
    (loss, dq, dc)
}

/// Many more candidates than one block of logits holds, so the blocked path runs several blocks,
/// with accidental hits removed and kept.
#[test]
fn blocked_computation_matches_a_naive_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (n_queries, n_candidates, dim) = (100, 20_000, 8);
    let q = uniform((n_queries, dim), 1.0, &mut rng);
    let c = uniform((n_candidates, dim), 1.0, &mut rng);
    let ids: Vec<u32> = (0..n_candidates as u32).map(|j| j % 997).collect();
    let probabilities: Vec<f32> = (0..n_candidates).map(|j| 1.0 / (1.0 + j as f32)).collect();
    let weights: Vec<f32> = (0..n_queries).map(|i| 0.5 + (i % 3) as f32).collect();
    for accidental_hits in [AccidentalHits::Remove { candidate_ids: &ids }, AccidentalHits::Keep] {
        let batch = Batch {
            query: q.view(),
            candidate: c.view(),
            sample_weight: Some(&weights),
            candidate_sampling_probability: Some(&probabilities),
            accidental_hits,
        };
        compare_with_naive(&batch, 0.3);
    }
}

/// Both kernels against [`naive_reference`]: the loss within 10⁻⁵, the gradients within 10⁻⁴
/// (relative, or absolute below 1).
fn compare_with_naive(batch: &Batch<'_>, temperature: f32) {
    let (reference, dq, dc) = naive_reference(batch, f64::from(temperature));
    for kernel in [SoftmaxKernel::Gemm, SoftmaxKernel::Fused] {
        let mut loss = InBatchSoftmax::with_kernel(kernel);
        let value = loss.compute(batch, &LossConfig { temperature: Some(temperature), num_hard_negatives: None });
        let relative = |a: f64, b: f64| (a - b).abs() / b.abs().max(1.0);
        assert!(relative(f64::from(value), reference) < 1e-5, "{kernel:?}: loss {value} vs {reference}");
        let dq_error = loss.query_grad().iter().zip(&dq).map(|(&a, &b)| relative(f64::from(a), b)).fold(0.0, f64::max);
        let dc_error =
            loss.candidate_grad().iter().zip(&dc).map(|(&a, &b)| relative(f64::from(a), b)).fold(0.0, f64::max);
        eprintln!("{kernel:?} vs naive f64: dQ {dq_error:e}, dC {dc_error:e}");
        assert!(dq_error < 1e-4 && dc_error < 1e-4, "{kernel:?}: dQ {dq_error}, dC {dc_error}");
    }
}

/// On a stationary stream (batches of 64 drawn from a Zipf-like distribution over 200
/// candidates), the streaming estimate of each popular candidate's per-batch probability is
/// within 10 % of the exact frequency counted over the same stream.
#[test]
fn streaming_frequency_matches_exact_counts_on_a_stationary_stream() {
    use rand::Rng;
    let (n_candidates, batch, steps) = (200usize, 64usize, 20_000usize);
    let weights: Vec<f64> = (0..n_candidates).map(|i| 1.0 / (i + 1) as f64).collect();
    let total: f64 = weights.iter().sum();
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |s, w| {
            *s += w / total;
            Some(*s)
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // α = 0.002 averages about 500 gaps (the estimate's own noise is about √(α/2) ≈ 3 %).
    let mut estimator = retrieval::StreamingFrequency::new(n_candidates, 0.002);
    let mut steps_with = vec![0u64; n_candidates];
    for _ in 0..steps {
        let ids: Vec<u32> = (0..batch)
            .map(|_| {
                let u: f64 = rng.random();
                cumulative.partition_point(|&c| c < u).min(n_candidates - 1) as u32
            })
            .collect();
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for &id in &distinct {
            steps_with[id as usize] += 1;
        }
        estimator.observe(&ids);
    }
    let mut worst = 0f64;
    for id in 0..20u32 {
        let exact = steps_with[id as usize] as f64 / steps as f64;
        let estimate = f64::from(estimator.probability(id));
        worst = worst.max((estimate - exact).abs() / exact);
    }
    eprintln!("streaming frequency: largest relative error over the 20 most popular candidates {worst:.3}");
    assert!(worst < 0.10, "largest relative error {worst}");
}

/// The loss and both gradients keep every bit on 1, 2, 3 and 5 threads (the fused path splits
/// the queries at a point fixed by the batch's size, whatever runs each part).
#[test]
fn the_fused_loss_has_the_same_bits_on_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let (n_queries, n_candidates, dim) = (700, 900, 24);
    let q = uniform((n_queries, dim), 1.0, &mut rng);
    let c = uniform((n_candidates, dim), 1.0, &mut rng);
    let probabilities: Vec<f32> = (0..n_candidates).map(|j| 1.0 / (2.0 + j as f32)).collect();
    let weights: Vec<f32> = (0..n_queries).map(|i| 0.5 + (i % 4) as f32).collect();
    let batch = Batch {
        query: q.view(),
        candidate: c.view(),
        sample_weight: Some(&weights),
        candidate_sampling_probability: Some(&probabilities),
        accidental_hits: AccidentalHits::Keep,
    };
    let config = LossConfig { temperature: Some(0.2), num_hard_negatives: None };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut loss = InBatchSoftmax::with_kernel(SoftmaxKernel::Fused);
            // Twice, so that reused buffers are exercised too.
            loss.compute(&batch, &config);
            let value = loss.compute(&batch, &config);
            let bits = |v: ndarray::ArrayView2<'_, f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (value.to_bits(), bits(loss.query_grad()), bits(loss.candidate_grad()))
        })
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        assert!(run(threads) == one, "{threads} threads differ from one");
    }
    compare_with_naive(&batch, 0.2);
}

#[test]
fn candidates_without_queries_get_zero_gradients() {
    let c = Array2::from_elem((40, 16), 0.5f32);
    let q = Array2::<f32>::zeros((0, 16));
    let mut loss = InBatchSoftmax::default();
    let value = loss.compute(&Batch::new(q.view(), c.view()), &LossConfig::default());
    assert_eq!(value, 0.0);
    assert_eq!(loss.candidate_grad().dim(), (40, 16));
    assert!(loss.candidate_grad().iter().all(|&v| v == 0.0));
}

/// Embeddings of width 0 (every logit 0): each row's loss is `ln N` on both kernels, with
/// empty gradients, and nothing panics.
#[test]
fn zero_width_embeddings_give_the_uniform_softmax() {
    for n in [3, 300] {
        let (query, candidate) = (Array2::<f32>::zeros((n, 0)), Array2::<f32>::zeros((n, 0)));
        for kernel in [SoftmaxKernel::Fused, SoftmaxKernel::Gemm] {
            let mut loss = InBatchSoftmax::with_kernel(kernel);
            let value = loss.compute(&Batch::new(query.view(), candidate.view()), &LossConfig::default());
            let expected = n as f32 * (n as f32).ln();
            assert!((value - expected).abs() <= 1e-4 * expected, "{kernel:?}, {n} rows: {value} against {expected}");
            assert_eq!(loss.query_grad().dim(), (n, 0));
            assert_eq!(loss.candidate_grad().dim(), (n, 0));
        }
    }
}
