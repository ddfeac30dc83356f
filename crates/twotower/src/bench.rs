//! `twotower bench`: a short fixed workload of the deep [64, 32] model on MovieLens 100k, timed in
//! one process, written to `bench.json`.
//!
//! Every figure is the best of several repetitions (this VM's run-to-run spread is 10–40%):
//! * `train_epoch_seconds`: one epoch (40 steps of 2048) after a warm-up epoch;
//! * `eval_seconds`: embed 20 000 test queries and the 1682 movies, rank every true movie;
//! * `gemm_gflops`: the score GEMM `(2048×32)·(32×2048)`; `peak_gflops`: a `1024³` GEMM, the
//!   best of three measurements spread over the run;
//! * `gemm_fraction_of_peak`: the epoch's GEMM FLOPs (score products and dense layers) /
//!   (epoch seconds × `peak_gflops`);
//! * `gemm_fraction_of_adjacent_peak`: the same for each timed epoch against a GEMM peak
//!   measured right after it, the median over the epochs (it cancels a drift that slows both;
//!   not a host taking a vCPU away for part of an epoch, which the short GEMMs can miss);
//! * `fma_peak_gflops`: FMAs on registers on every core at once (`tensor::fma_peak`), the limit
//!   no kernel passes, and `fraction_of_fma_peak` against it: the GEMM peak is only the kernel
//!   OpenBLAS runs (`blas_core`), which an `OPENBLAS_CORETYPE` in the environment can pin to one
//!   narrower than the CPU's (`openblas_coretype_env`: the Zen 5 VM sets `Haswell`, AVX2, where
//!   0.3.21 picks its AVX-512 `Cooperlake` kernels by itself);
//! * `large_catalogue_eval_seconds`: 20 000 queries ranked over 100 000 synthetic items.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tensor::matmul::Parallelism;
use towers::TowerCache;
use train::{
    embed_catalogue, embed_queries, evaluate_split, Encoded, Experiment, FittedFeatures, SeenRows, SoftmaxKernel,
    Trainer,
};

use crate::data;

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// MovieLens 100k directory (else MOVIELENS_DIR, else data/ml-100k, else download).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Timed training epochs (after one warm-up epoch), 1 to 1000.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    epochs: u16,
    /// Rows of the synthetic ML-25M-shaped ratings.csv whose parse is timed (0: skip).
    #[arg(long, default_value_t = 25_000_095)]
    parse_rows: usize,
    /// Where to write the report.
    #[arg(long, default_value = "bench.json")]
    out: PathBuf,
}

impl BenchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let dir = data::resolve_data_dir(self.data.as_deref())?;
        let dataset = movielens::load(&dir).with_context(|| format!("loading MovieLens from {}", dir.display()))?;
        let split = dataset::Split::seeded(dataset.interactions.len(), 42, 0.8);
        let mut config = Experiment::Deep2.config(42);
        let features = FittedFeatures::fit(&dataset, &config.model, None)?;
        let encoded = Encoded::new(&dataset, &config.model, &features, &split.train)?;
        let shapes = features.model_config(&config.model).map_err(anyhow::Error::msg)?.validate()?;
        let epochs = usize::from(self.epochs);
        config.epochs = epochs + 1;
        config.validation_freq = None;
        let config = config.validate().context("deep-2 configuration")?;
        // The GEMM kernel first, then the fused one (the default), which the rest of the bench uses.
        // The peak is measured three times (before training, after it, at the end) and the best
        // is kept: on a shared VM one measurement can land in a slow moment and flatter the
        // fractions, the best of three cannot.
        let mut peak_samples = vec![gemm_gflops_square(1024, 10)];
        let mut fma_samples = vec![fma_peak_gflops()];
        let mut gemm_trainer = Trainer::new(config.clone(), shapes.clone());
        gemm_trainer.set_score_kernel(SoftmaxKernel::Gemm);
        eprintln!("bench: training deep [64, 32] for {} epochs (1 warm-up), GEMM score kernel", epochs + 1);
        let gemm_history = gemm_trainer.fit(&encoded, &split, &mut ())?;
        let gemm_profile = gemm_trainer.take_step_profile();
        let mut trainer = Trainer::new(config, shapes);
        eprintln!("bench: training deep [64, 32] for {} epochs (1 warm-up), fused score kernel", epochs + 1);
        let mut beside = PeakBesideEpochs::default();
        let history = trainer.fit(&encoded, &split, &mut beside)?;
        let fused_profile = trainer.take_step_profile();
        let timed =
            |history: &[train::EpochRecord]| -> Vec<f64> { history.iter().skip(1).map(|r| r.train_seconds).collect() };
        let (epoch_times, gemm_epoch_times) = (timed(&history), timed(&gemm_history));
        let best = |times: &[f64]| times.iter().copied().fold(f64::INFINITY, f64::min);
        let (train_epoch_seconds, gemm_epoch_seconds) = (best(&epoch_times), best(&gemm_epoch_times));
        let final_loss = |history: &[train::EpochRecord]| history.last().map(|r| r.loss_sum);

        peak_samples.push(gemm_gflops_square(1024, 10));
        fma_samples.push(fma_peak_gflops());
        eprintln!("bench: evaluation, GEMMs, large catalogue");
        let true_rows: Vec<u32> = split.test.iter().map(|&r| encoded.candidate_row[r]).collect();
        let (mut query_cache, mut candidate_cache) = (TowerCache::default(), TowerCache::default());
        let eval_seconds = best_of(5, || {
            let catalogue = embed_catalogue(&trainer.model, &encoded, &mut candidate_cache);
            let queries = embed_queries(&trainer.model, &encoded, &split.test, &mut query_cache);
            eval::true_rank(queries.view(), catalogue.view(), &true_rows, None);
        });
        let seen = SeenRows::new(&encoded, &split.train);
        let full_evaluation_seconds = best_of(3, || {
            evaluate_split(&trainer.model, &encoded, &split.test, &seen);
        });
        let gemm_gflops = gemm_gflops(2048, 32, 2048, 20);
        peak_samples.push(gemm_gflops_square(1024, 10));
        fma_samples.push(fma_peak_gflops());
        let peak_gflops = peak_samples.iter().copied().fold(0.0, f64::max);
        let fma_peak = fma_samples.iter().flatten().copied().reduce(f64::max);
        let score_gflop = epoch_score_gflop(split.train.len(), trainer.config().batch_size, 32);
        let tower_gflop = epoch_tower_gflop(&trainer.model, split.train.len(), split.train.len());
        let epoch_gflop = score_gflop + tower_gflop;
        let paired = beside.paired_fractions(epoch_gflop);
        let large_catalogue_eval_seconds = large_catalogue(100_000, 20_000);
        let parse = if self.parse_rows > 0 { Some(parse_speed(self.parse_rows)?) } else { None };

        let mut report = json!({
            "workload": "deep [64, 32], MovieLens 100k, seeded 80/20 split (seed 42), batch 2048",
            "blas": tensor::matmul::USES_BLAS,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "train_epoch_seconds": train_epoch_seconds,
            "train_epoch_seconds_all": epoch_times,
            "train_examples_per_second": split.train.len() as f64 / train_epoch_seconds,
            "epoch_gflop": epoch_gflop,
            "epoch_score_gflop": score_gflop,
            "epoch_tower_gflop": tower_gflop,
            "gemm_fraction_of_peak": epoch_gflop / (train_epoch_seconds * peak_gflops),
            "gemm_fraction_note": "the epoch's GEMM FLOPs (the loss's three score products per step, S = Q·Cᵀ, dQ, dC: 3 · 2·b·b·d, plus every dense layer of both towers forward and backward: 6·rows·in·out) divided by (epoch seconds × peak_gflops of this run)",
            "score_fraction_of_peak": score_gflop / (train_epoch_seconds * peak_gflops),
            "score_fraction_note": "the score products' FLOPs alone over the same time: everything else in the step counts as overhead",
            "fraction_of_fma_peak": fma_peak.map(|fma| epoch_gflop / (train_epoch_seconds * fma)),
            "fraction_of_fma_peak_note": "the same FLOPs over (epoch seconds × fma_peak_gflops): against what the vector units can issue, whichever GEMM kernel OpenBLAS picked",
            "score_kernel": "fused (tensor::lanes, logits kept in cache per block of 48 queries)",
            "gemm_fraction_of_adjacent_peak": median(&paired),
            "gemm_fraction_of_adjacent_peak_per_epoch": paired,
            "gemm_fraction_of_adjacent_peak_note": "each timed epoch's GEMM FLOPs over (its seconds × a 1024^3 GEMM peak, best of 3, measured right after it), the median over the timed epochs: a ratio of two measurements a second apart, which cancels a drift of the machine's speed but not a host taking a vCPU away for part of an epoch, which the short GEMMs can miss; gemm_fraction_of_peak sets the best epoch against the best peak of the run instead",
            "step_profile_ms": step_profile_json(&fused_profile),
            "gemm_kernel": {
                "train_epoch_seconds": gemm_epoch_seconds,
                "train_epoch_seconds_all": gemm_epoch_times,
                "gemm_fraction_of_peak": epoch_gflop / (gemm_epoch_seconds * peak_gflops),
                "score_fraction_of_peak": score_gflop / (gemm_epoch_seconds * peak_gflops),
                "step_profile_ms": step_profile_json(&gemm_profile),
                "fused_speedup": gemm_epoch_seconds / train_epoch_seconds,
                "final_epoch_loss": final_loss(&gemm_history),
                "fused_final_epoch_loss": final_loss(&history),
                "note": "the same workload with the loss's products on three general_mat_mul calls per half (the path before the fused kernel), trained first in this run",
            },
            "eval_seconds": eval_seconds,
            "eval_note": "one pass: embed 20 000 test queries and 1682 movies, rank each true movie over the catalogue",
            "full_validation_seconds": full_evaluation_seconds,
            "full_validation_note": "what training runs per validation: the pass above plus the seen-filtered ranking",
            "projected_300_epochs_60_validations_seconds": 300.0 * train_epoch_seconds + 60.0 * full_evaluation_seconds,
            "gemm_gflops": gemm_gflops,
            "gemm_shape": "(2048x32)·(32x2048), as training runs it: two halves on rayon, one OpenBLAS thread each",
            "peak_gflops": peak_gflops,
            "peak_shape": "1024^3, OpenBLAS on every core",
            "peak_gflops_samples": peak_samples,
            "peak_note": "the best of three measurements (before training, after it, at the end), each the best of 10 GEMMs",
            "blas_core": tensor::matmul::blas_core(),
            "fma_peak_gflops": fma_peak,
            "fma_peak_isa": tensor::fma_peak::FmaWidth::of_this_machine().map(tensor::fma_peak::FmaWidth::name),
            "fma_peak_gflops_samples": fma_samples.iter().flatten().collect::<Vec<_>>(),
            "fma_peak_note": "16 (AVX-512) or 12 (AVX2) independent FMA chains on registers, one thread per core at once, the widest vectors the lane kernels use; the best of three measurements taken beside the GEMM peak's",
            "large_catalogue_eval_seconds": large_catalogue_eval_seconds,
            "large_catalogue_shape": "20 000 queries x 100 000 items, d = 32, blocks of 512 x 4096",
            "parse": parse,
        });
        // Beside the macro's fields (one more would pass its recursion limit).
        report["openblas_coretype_env"] = json!(std::env::var("OPENBLAS_CORETYPE").ok());
        report["openblas_coretype_note"] = json!(
            "OPENBLAS_CORETYPE as this run found it: when set, OpenBLAS runs that kernel whatever the CPU and \
             peak_gflops is that kernel's peak; unset, OpenBLAS picks by the CPU"
        );
        write_report(&report, &self.out)
    }
}

/// Measures the GEMM peak after every epoch, so that each epoch's time can be set against a peak
/// taken within a second of it: this VM's speed drifts by up to a quarter between runs a minute
/// apart, and within a run as well.
#[derive(Debug, Default)]
struct PeakBesideEpochs {
    /// `(epoch seconds, GFLOP/s of the GEMM measured right after it)`, warm-up epoch first.
    epochs: Vec<(f64, f64)>,
}

impl train::Observer for PeakBesideEpochs {
    fn on_epoch(&mut self, record: &train::EpochRecord) {
        self.epochs.push((record.train_seconds, gemm_gflops_square(1024, 3)));
        // OpenBLAS's threads spin for a while after a call: let them go idle before the next
        // epoch starts its clock.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl PeakBesideEpochs {
    /// `epoch_gflop / (seconds × peak)` of every timed epoch (the warm-up left out).
    fn paired_fractions(&self, epoch_gflop: f64) -> Vec<f64> {
        self.epochs.iter().skip(1).map(|&(seconds, peak)| epoch_gflop / (seconds * peak)).collect()
    }
}

/// The median (the mean of the middle two for an even count); `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    (n > 0).then(|| if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) })
}

/// Writes a benchmark report atomically and prints it.
pub(crate) fn write_report(report: &serde_json::Value, out: &std::path::Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    train::fs::write_atomic(out, text.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    println!("{text}");
    println!("wrote {}", out.display());
    Ok(())
}

/// Milliseconds per step of each phase, averaged over every step of a fit (warm-up included).
pub(crate) fn step_profile_json(profile: &train::StepProfile) -> serde_json::Value {
    let per_step = |seconds: f64| 1e3 * seconds / profile.steps.max(1) as f64;
    json!({
        "steps": profile.steps,
        "gather": per_step(profile.gather),
        "towers_forward": per_step(profile.forward),
        "loss": per_step(profile.loss),
        "towers_backward": per_step(profile.backward),
        "adagrad": per_step(profile.update),
        "total": per_step(profile.total()),
    })
}

/// GFLOP of the loss's score products in one epoch: per batch of `b` rows, `S = Q·Cᵀ` and the
/// two backward products, each `2·b·b·dim`.
fn epoch_score_gflop(n_train: usize, batch_size: usize, dim: usize) -> f64 {
    let batch = batch_size.max(1);
    let (full, rest) = (n_train / batch, n_train % batch);
    let flops = |b: usize| 3.0 * 2.0 * (b * b * dim) as f64;
    (full as f64 * flops(batch) + flops(rest)) / 1e9
}

/// GFLOP of both towers' dense layers in one epoch that feeds `query_rows` rows through the
/// query tower and `candidate_rows` through the candidate tower: per layer of shape `in × out`,
/// `2·rows·in·out` forward and twice that backward (`dW` and `dx`).
pub(crate) fn epoch_tower_gflop(model: &towers::TwoTower, query_rows: usize, candidate_rows: usize) -> f64 {
    let tower = |tower: &towers::Tower, rows: usize| -> f64 {
        tower
            .head
            .stack
            .iter()
            .flat_map(|stack| &stack.layers)
            .map(|layer| 6.0 * (rows * layer.w.nrows() * layer.w.ncols()) as f64 / 1e9)
            .sum()
    };
    tower(&model.query, query_rows) + tower(&model.candidate, candidate_rows)
}

/// The fastest of `n` runs of `f`, in seconds.
fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn random(shape: (usize, usize), rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

/// Best GFLOP/s of the score product `Q (m×k) · Cᵀ` with `C (n×k)`, run as training runs it
/// (two concurrent halves, one OpenBLAS thread each).
fn gemm_gflops(m: usize, k: usize, n: usize, reps: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (q, c) = (random((m, k), &mut rng), random((n, k), &mut rng));
    let mut s = Array2::<f32>::zeros((m, n));
    let mut run = || tensor::matmul::scores(q.view(), c.view(), &mut s.view_mut(), Parallelism::SplitInTwo);
    run();
    let seconds = best_of(reps, run);
    2.0 * (m * k * n) as f64 / seconds / 1e9
}

/// Best GFLOP/s of a square GEMM with OpenBLAS on both cores: the machine's practical peak.
pub(crate) fn gemm_gflops_square(n: usize, reps: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (a, b) = (random((n, n), &mut rng), random((n, n), &mut rng));
    let mut c = Array2::<f32>::zeros((n, n));
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    tensor::matmul::set_blas_threads(threads);
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    let seconds = best_of(reps, || general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    tensor::matmul::set_blas_threads(1);
    2.0 * (n * n * n) as f64 / seconds / 1e9
}

/// GFLOP/s of register-only FMAs on every core at once (the sum of the threads' rates), with the
/// vector width the lane kernels run (`FmaWidth::of_this_machine`), or `None` without AVX2 + FMA.
pub(crate) fn fma_peak_gflops() -> Option<f64> {
    let width = tensor::fma_peak::FmaWidth::of_this_machine()?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // 50 M rounds: about 0.1–0.2 s per thread, long enough for the clock to settle.
    let rates: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(move || tensor::fma_peak::fma_gflops_one_thread(width, 50_000_000)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("the FMA loop does not panic")).collect()
    });
    Some(rates.iter().sum())
}

/// Seconds to rank 20 000 queries over a synthetic catalogue, scored block by block.
fn large_catalogue(n_items: usize, n_queries: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (queries, items) = (random((n_queries, 32), &mut rng), random((n_items, 32), &mut rng));
    let true_rows: Vec<u32> = (0..n_queries).map(|_| rng.random_range(0..n_items as u32)).collect();
    best_of(2, || {
        eval::true_rank(queries.view(), items.view(), &true_rows, None);
    })
}

/// Generates (once, cached in the temp directory) a seeded ML-25M-shaped CSV release with
/// `n_rows` ratings, then times loading it (best of 2, on every core): MB/s of ratings.csv and the bytes each
/// interaction holds in memory.
/// A seeded synthetic release of `shape` in the temporary directory, written once and reused.
pub(crate) fn synthetic_release(shape: movielens::synthetic::Shape) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir()
        .join(format!("twotower-bench-ml25m-shaped-{}-{}-{}", shape.n_ratings, shape.n_users, shape.n_candidates));
    if !dir.join("ratings.csv").is_file() {
        eprintln!("bench: writing a synthetic {}-rating CSV release to {}", shape.n_ratings, dir.display());
        let staging = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&staging);
        movielens::synthetic::write_csv_release(&staging, shape, 25).context("writing the synthetic release")?;
        std::fs::rename(&staging, &dir).context("moving the synthetic release into place")?;
    }
    Ok(dir)
}

fn parse_speed(n_rows: usize) -> anyhow::Result<serde_json::Value> {
    let shape = movielens::synthetic::Shape {
        n_ratings: n_rows,
        n_users: (movielens::synthetic::Shape::ML_25M.n_users as f64 * (n_rows as f64 / 25_000_095.0).min(1.0)).max(1.0)
            as usize,
        ..movielens::synthetic::Shape::ML_25M
    };
    let dir = synthetic_release(shape)?;
    let bytes = std::fs::metadata(dir.join("ratings.csv"))?.len() as f64;
    eprintln!("bench: parsing {:.0} MB of ratings.csv", bytes / 1e6);
    let mut loaded = None;
    let seconds = best_of(2, || loaded = Some(movielens::load(&dir)));
    let data = loaded.expect("ran")?;
    let interactions = &data.interactions;
    let key_bytes: usize = interactions.query_keys.strings().iter().map(|k| k.len() * 2 + 40).sum();
    Ok(json!({
        "rows": interactions.len(),
        "ratings_csv_bytes": bytes,
        "seconds": seconds,
        "mb_per_second": bytes / seconds / 1e6,
        "column_bytes_per_interaction": interactions.bytes_per_interaction(),
        "bytes_per_interaction_with_keys": interactions.bytes_per_interaction() as f64 + key_bytes as f64 / interactions.len() as f64,
        "note": "movielens::load of a seeded ML-25M-shaped ratings.csv + movies.csv (movielens::synthetic): ratings parsed in ~16 MB chunks on every core",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_fractions_leave_out_the_warm_up_and_take_the_median() {
        let beside = PeakBesideEpochs { epochs: vec![(9.0, 1.0), (2.0, 10.0), (1.0, 10.0), (4.0, 5.0)] };
        assert_eq!(beside.paired_fractions(20.0), [1.0, 2.0, 1.0]);
        assert_eq!(median(&beside.paired_fractions(20.0)), Some(1.0));
        assert_eq!(median(&[3.0, 1.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
