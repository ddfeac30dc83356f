//! Criterion benchmarks: score-core GEMMs (OpenBLAS and pure Rust) at the training and evaluation
//! shapes, the softmax over a 2048×2048 logit block, one training step of the deep [64, 32]
//! model at batch 2048, and the evaluation pass over 20 000 queries × 1682 movies.
//!
//! Throughput is reported in elements per second where an element is one floating-point
//! operation, so "Gelem/s" reads as GFLOP/s.

use std::hint::black_box;

use benches::{deep_trainer, matrixmultiply_gemm, random_matrix, synthetic_data, N_MOVIES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use rand::SeedableRng;
use retrieval::{exp_columns, exp_columns_with_max, exp_row, Batch, InBatchSoftmax, LossConfig, SoftmaxKernel};
use tensor::lanes::{lane_gemm, lane_gemm_column_max};

/// (name, m, k, n) of `A (m×k) · B (k×n)`.
const GEMM_SHAPES: [(&str, usize, usize, usize); 4] = [
    ("score_forward_QCt", 2048, 32, 2048),
    ("score_backward_dS_C", 2048, 2048, 32),
    ("score_backward_Qt_dS", 32, 2048, 2048),
    ("eval_20000x1682", 20_000, 32, 1682),
];

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    for (name, m, k, n) in GEMM_SHAPES {
        let a = random_matrix((m, k), 1);
        let b = random_matrix((k, n), 2);
        let mut out = Array2::<f32>::zeros((m, n));
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(BenchmarkId::new("openblas", name), |bench| {
            bench.iter(|| general_mat_mul(1.0, black_box(&a), black_box(&b), 0.0, &mut out))
        });
        group.bench_function(BenchmarkId::new("matrixmultiply", name), |bench| {
            bench.iter(|| matrixmultiply_gemm(black_box(a.view()), black_box(b.view()), &mut out.view_mut()))
        });
    }
    let n = 1024;
    let (a, b) = (random_matrix((n, n), 3), random_matrix((n, n), 4));
    let mut out = Array2::<f32>::zeros((n, n));
    group.throughput(Throughput::Elements((2 * n * n * n) as u64));
    group.bench_function(BenchmarkId::new("openblas", "square_1024_peak"), |bench| {
        bench.iter(|| general_mat_mul(1.0, &a, &b, 0.0, &mut out))
    });
    group.finish();
}

fn softmax(c: &mut Criterion) {
    let logits = random_matrix((2048, 2048), 5) * 5.0;
    let mut work = logits.clone();
    let mut group = c.benchmark_group("softmax");
    group.throughput(Throughput::Elements(2048 * 2048));
    group.bench_function("exp_rows_2048x2048_one_thread", |bench| {
        bench.iter(|| {
            work.assign(&logits);
            let slice = work.as_slice_mut().expect("contiguous");
            let mut loss = 0.0;
            for (i, row) in slice.chunks_mut(2048).enumerate() {
                let positive = row[i];
                loss += exp_row(row).logsumexp() - f64::from(positive);
            }
            black_box(loss)
        })
    });
    group.bench_function("exp_columns_2048x48_one_thread", |bench| {
        let block = random_matrix((2048, 48), 6) * 5.0;
        let mut work = block.clone();
        let (mut max, mut sum) = (vec![0.0; 48], vec![0.0; 48]);
        bench.iter(|| {
            work.assign(&block);
            exp_columns(work.as_slice_mut().expect("contiguous"), 48, &mut max, &mut sum);
            black_box(sum[0])
        })
    });
    group.finish();
}

/// The three products of one fused block (48 queries against 2048 candidates, d = 32) on
/// `tensor::lanes::lane_gemm`, one thread: the logits `Eᵀ = C·Qᵀ`, the query gradient
/// `(Eᵀ)ᵀ·C` (a transposed view, no copy) and the accumulated candidate gradient `dC += Eᵀ·Q̃`.
/// One element is one FLOP, so each reads against the one-core FMA peak that `bench` reports.
fn block_products(c: &mut Criterion) {
    let (candidates, queries_t) = (random_matrix((2048, 32), 20), random_matrix((32, 48), 21));
    let (logits_t, scaled_queries) = (random_matrix((2048, 48), 22), random_matrix((48, 32), 23));
    let mut group = c.benchmark_group("lane_gemm_block");
    group.throughput(Throughput::Elements(2 * 2048 * 48 * 32));
    let mut logits_out = Array2::<f32>::zeros((2048, 48));
    group.bench_function("logits_C_Qt_2048x32x48", |bench| {
        bench.iter(|| lane_gemm(black_box(candidates.view()), queries_t.view(), 0.0, &mut logits_out.view_mut()))
    });
    let mut dquery = Array2::<f32>::zeros((48, 32));
    group.bench_function("dquery_Et_t_C_48x2048x32", |bench| {
        bench.iter(|| lane_gemm(black_box(logits_t.t()), candidates.view(), 0.0, &mut dquery.view_mut()))
    });
    let mut dcandidate = Array2::<f32>::zeros((2048, 32));
    group.bench_function("dcandidate_Et_Q_2048x48x32_accumulate", |bench| {
        bench.iter(|| lane_gemm(black_box(logits_t.view()), scaled_queries.view(), 1.0, &mut dcandidate.view_mut()))
    });
    group.finish();
}

/// The first half of a fused block, one thread: the logits `Eᵀ = C·Qᵀ` of 48 queries against
/// 2048 candidates, then their column softmax (`exp(v − max)` and sums), with the maxima found
/// by a pass of their own (`exp_columns`) or in the product's epilogue
/// (`lane_gemm_column_max`, then `exp_columns_with_max`). Same bits either way; one element is
/// one FLOP of the product.
fn block_logits_softmax(c: &mut Criterion) {
    let (candidates, queries_t) = (random_matrix((2048, 32), 20), random_matrix((32, 48), 21) * 0.3);
    let mut group = c.benchmark_group("block_logits_softmax");
    group.throughput(Throughput::Elements(2 * 2048 * 48 * 32));
    let mut logits = Array2::<f32>::zeros((2048, 48));
    let (mut max, mut sum) = (vec![0.0; 48], vec![0.0; 48]);
    group.bench_function("product_then_max_pass_2048x32x48", |bench| {
        bench.iter(|| {
            lane_gemm(black_box(candidates.view()), queries_t.view(), 0.0, &mut logits.view_mut());
            exp_columns(logits.as_slice_mut().expect("contiguous"), 48, &mut max, &mut sum);
            black_box(sum[0])
        })
    });
    group.bench_function("max_in_product_epilogue_2048x32x48", |bench| {
        bench.iter(|| {
            lane_gemm_column_max(
                black_box(candidates.view()),
                queries_t.view(),
                None,
                &mut max,
                &mut logits.view_mut(),
            );
            exp_columns_with_max(logits.as_slice_mut().expect("contiguous"), 48, &max, &mut sum);
            black_box(sum[0])
        })
    });
    group.finish();
}

/// The query tower's two layers of the deep [64, 32] model at batch 2048 (inputs 65 wide: a
/// user embedding, a timestamp-bucket embedding and the normalised timestamp), forward and
/// backward, one thread. One element is one FLOP of the layer's products (2·b·in·out forward,
/// twice that backward: `dW` and `dx`).
fn dense_layers(c: &mut Criterion) {
    use tensor::{Activation, Dense, DenseCache, DenseGrads};
    let mut group = c.benchmark_group("dense");
    let mut rng = rand::rngs::StdRng::seed_from_u64(30);
    for (in_dim, out_dim, activation) in [(65, 64, Activation::Relu), (64, 32, Activation::Linear)] {
        let layer = Dense::new(in_dim, out_dim, activation, &mut rng);
        let x = random_matrix((2048, in_dim), 31);
        let dy = random_matrix((2048, out_dim), 32);
        let (mut cache, mut grads) = (DenseCache::default(), DenseGrads::zeros_like(&layer));
        let name = format!("{in_dim}x{out_dim}_batch_2048");
        group.throughput(Throughput::Elements((2 * 2048 * in_dim * out_dim) as u64));
        group.bench_function(BenchmarkId::new("forward", &name), |bench| {
            bench.iter(|| black_box(layer.forward(x.view(), &mut cache)[[0, 0]]))
        });
        group.throughput(Throughput::Elements((4 * 2048 * in_dim * out_dim) as u64));
        // The backward pass reads the forward's cache (filled here too when a filter skips the
        // forward benchmark).
        layer.forward(x.view(), &mut cache);
        group.bench_function(BenchmarkId::new("backward", &name), |bench| {
            bench.iter(|| black_box(layer.backward(&mut cache, dy.view(), &mut grads)[[0, 0]]))
        });
        if in_dim % 16 != 0 {
            // What the query tower runs: `dx` only for the 64 columns of its two tables.
            let columns = in_dim / 16 * 16;
            group.bench_function(BenchmarkId::new(format!("backward_dx_{columns}_columns"), &name), |bench| {
                bench.iter(|| black_box(layer.backward_partial(&mut cache, dy.view(), &mut grads, columns)[[0, 0]]))
            });
        }
    }
    group.finish();
}

/// Each tower of the deep [64, 32] model at batch 2048 on synthetic columns, one thread:
/// forward, and backward from a random `dy` (the query tower: a user lookup, a timestamp-bucket
/// lookup, the normalised timestamp; the candidate tower: a title lookup and a bag of 1 to 8
/// title tokens). One element is one example; the layers alone are in the `dense` group.
fn towers(c: &mut Criterion) {
    use rand::Rng;
    use tensor::Bags;
    use towers::{InputColumn, InputKind, TowerCache, TowerGrads, TwoTower};
    let synthetic = synthetic_data(7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(50);
    let model = TwoTower::new(synthetic.model.clone(), &mut rng);
    let mut group = c.benchmark_group("tower");
    group.throughput(Throughput::Elements(2048));
    for (side, tower) in [("query", &model.query), ("candidate", &model.candidate)] {
        let shapes: Vec<_> = tower.inputs.iter().map(towers::Input::shape).collect();
        let ids: Vec<Vec<u32>> =
            shapes.iter().map(|s| (0..2048).map(|_| rng.random_range(0..s.rows.max(1) as u32)).collect()).collect();
        let tokens = shapes.iter().find(|s| s.kind == InputKind::Bag).map_or(2, |s| s.rows as u32);
        let mut bags = Bags::default();
        for _ in 0..2048 {
            let tokens: Vec<u32> = (0..rng.random_range(1..=8)).map(|_| rng.random_range(1..tokens)).collect();
            bags.push(&tokens);
        }
        let values: Vec<f32> = (0..2048).map(|_| rng.random_range(-1.0..1.0)).collect();
        let columns: Vec<InputColumn<'_>> = shapes
            .iter()
            .zip(&ids)
            .map(|(shape, ids)| match shape.kind {
                InputKind::Lookup => InputColumn::Ids(ids),
                InputKind::Bag => InputColumn::Bags(&bags),
                InputKind::Numeric => InputColumn::Values(&values),
            })
            .collect();
        let (mut cache, mut grads) = (TowerCache::default(), TowerGrads::zeros_like(tower));
        group.bench_function(BenchmarkId::new("forward_deep_64_32_batch_2048", side), |bench| {
            bench.iter(|| black_box(tower.forward(&columns, &mut cache)[[0, 0]]))
        });
        let dy = random_matrix((2048, tower.out_dim()), 51);
        tower.forward(&columns, &mut cache);
        group.bench_function(BenchmarkId::new("backward_deep_64_32_batch_2048", side), |bench| {
            bench.iter(|| {
                grads.zero();
                tower.backward(&mut cache, dy.view(), &mut grads);
                black_box(grads.inputs.len())
            })
        });
    }
    group.finish();
}

/// The row-scattered work of a 25M step, one thread, on tables of ML-25M's sizes with uniform
/// random ids (the worst case for the caches): a history bag of 20 items for each of 2048
/// queries from a 62 423-row item table, forward and backward, and Adagrad on 20 000 rows of
/// a 162 541-row user table (the table and its accumulators, 42 MB, outgrow a 32 MB L3).
fn scattered_rows(c: &mut Criterion) {
    use optim::{Adagrad, AdagradConfig, AdagradState};
    use rand::Rng;
    use tensor::{Bags, RowSparseGrad, TokenBag, TokenBagCache};
    let mut rng = rand::rngs::StdRng::seed_from_u64(40);
    let mut group = c.benchmark_group("scattered_rows");
    let items = TokenBag::new(62_423, 32, &mut rng);
    let mut bags = Bags::default();
    for _ in 0..2048 {
        let history: Vec<u32> = (0..20).map(|_| rng.random_range(1..62_423)).collect();
        bags.push(&history);
    }
    let (mut cache, mut pooled) = (TokenBagCache::default(), Array2::<f32>::zeros((2048, 32)));
    group.throughput(Throughput::Elements(2048 * 20));
    group.bench_function("history_bag_forward_2048x20_of_62k", |bench| {
        bench.iter(|| black_box(items.forward(&bags, &mut cache, pooled.view_mut())))
    });
    let dy = random_matrix((2048, 32), 41);
    let mut grad = RowSparseGrad::new(62_423, 32);
    items.forward(&bags, &mut cache, pooled.view_mut());
    group.bench_function("history_bag_backward_2048x20_of_62k", |bench| {
        bench.iter(|| {
            grad.zero();
            items.backward(&cache, dy.view(), &mut grad);
            black_box(grad.rows().len())
        })
    });
    let adagrad = Adagrad::new(AdagradConfig { learning_rate: 0.05, ..AdagradConfig::default() });
    let mut users = random_matrix((162_541, 32), 42);
    let mut state = AdagradState::new(&users, &adagrad);
    let mut user_grad = RowSparseGrad::new(162_541, 32);
    let row_grad = random_matrix((1, 32), 43) * 1e-3;
    let mut touched = std::collections::HashSet::new();
    while touched.len() < 20_000 {
        let row = rng.random_range(0..162_541u32);
        if touched.insert(row) {
            user_grad.add_row(row, row_grad.row(0));
        }
    }
    group.throughput(Throughput::Elements(20_000));
    group.bench_function("adagrad_20000_rows_of_162k", |bench| {
        bench.iter(|| adagrad.step_rows(&mut users, &user_grad, &mut state))
    });
    group.finish();
}

/// The loss alone on a batch of 2048 at d = 32 with the logQ correction: the fused kernel
/// against the three GEMMs. One element is one FLOP of the three score products.
fn loss(c: &mut Criterion) {
    tensor::matmul::set_blas_threads(1);
    let (q, cand) = (random_matrix((2048, 32), 10) * 0.5, random_matrix((2048, 32), 11) * 0.5);
    let probabilities: Vec<f32> = (0..2048).map(|j| 1.0 / (10.0 + j as f32)).collect();
    let batch = Batch { candidate_sampling_probability: Some(&probabilities), ..Batch::new(q.view(), cand.view()) };
    let mut group = c.benchmark_group("loss");
    group.sample_size(30);
    group.throughput(Throughput::Elements(3 * 2 * 2048 * 2048 * 32));
    for (name, kernel) in [("fused", SoftmaxKernel::Fused), ("gemm", SoftmaxKernel::Gemm)] {
        let mut loss = InBatchSoftmax::with_kernel(kernel);
        group.bench_function(BenchmarkId::new("in_batch_softmax_2048_d32", name), |bench| {
            bench.iter(|| black_box(loss.compute(&batch, &LossConfig::default())))
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    // As the twotower binary runs it: rayon owns the cores, OpenBLAS one thread per call.
    tensor::matmul::set_blas_threads(1);
    let synthetic = synthetic_data(7);
    let mut trainer = deep_trainer(&synthetic);
    let mut grads = trainer.new_grads();
    let (data, split) = (&synthetic.encoded, &synthetic.split);
    let batches: Vec<&[usize]> = split.train.chunks(2048).filter(|b| b.len() == 2048).collect();
    let mut next = 0;
    let mut group = c.benchmark_group("train_step");
    group.sample_size(30);
    group.throughput(Throughput::Elements(2048));
    group.bench_function("deep_64_32_batch_2048", |bench| {
        bench.iter(|| {
            next = (next + 1) % batches.len();
            black_box(trainer.step(data, batches[next], None, &mut grads))
        })
    });
    // The same steps as `Trainer::fit` runs them: with rayon's other workers spinning, so that
    // no fork of a step waits for a worker to wake up.
    group.bench_function("deep_64_32_batch_2048_spinning_workers", |bench| {
        bench.iter_custom(|iters| {
            train::spinning::with_spinning_workers(|| {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    next = (next + 1) % batches.len();
                    black_box(trainer.step(data, batches[next], None, &mut grads));
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn evaluation(c: &mut Criterion) {
    let queries = random_matrix((20_000, 32), 8);
    let catalogue = random_matrix((N_MOVIES, 32), 9);
    let true_rows: Vec<u32> = (0..20_000u32).map(|i| (i * 7919) % N_MOVIES as u32).collect();
    let mut group = c.benchmark_group("evaluation");
    group.sample_size(20);
    group.throughput(Throughput::Elements(20_000));
    group.bench_function("factorized_top_k_20000x1682", |bench| {
        bench.iter(|| black_box(eval::true_rank(queries.view(), catalogue.view(), &true_rows, None)))
    });
    // Seen-filtered, as evaluation ranks a split: 400 users' 50 queries each side by side, each
    // user's list (about 300 of the 1682 rows) borrowed by all its queries.
    let seen: Vec<Vec<u32>> = (0..400u32)
        .map(|user| {
            let mut rows: Vec<u32> = (0..300u32).map(|i| (i * 7919 + user * 104_729) % N_MOVIES as u32).collect();
            rows.sort_unstable();
            rows.dedup();
            rows
        })
        .collect();
    let exclusions: Vec<&[u32]> = (0..20_000).map(|query| seen[query / 50].as_slice()).collect();
    group.bench_function("factorized_top_k_20000x1682_seen_filtered", |bench| {
        bench.iter(|| {
            black_box(eval::true_rank_unfiltered_and_filtered(
                queries.view(),
                catalogue.view(),
                &true_rows,
                &exclusions,
            ))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    gemm,
    softmax,
    block_products,
    block_logits_softmax,
    dense_layers,
    towers,
    scattered_rows,
    loss,
    train_step,
    evaluation
);
criterion_main!(benches);
