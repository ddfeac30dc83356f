//! `twotower bench-scale`: the MovieLens 100k preset (deep [64, 32], history, genres, logQ,
//! mixed negatives) on a seeded synthetic ML-25M-shaped release (162 541 users, 62 423 items,
//! 25 000 095 ratings; Zipf popularity, heavy-tailed activity), read by the real loaders.
//!
//! Reports, per batch size: one training epoch over the 80% training split (seconds,
//! examples/s, the share of the same run's GEMM peak and of its register-only FMA peak), the
//! complete evaluation of the 20% test split over the whole catalogue with seen-filtering, the
//! seeded sampled validation used per epoch, and the process's peak resident memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use train::{
    evaluate_split_with_progress, BatchProgress, Encoded, EpochRecord, FittedFeatures, Observer, SeenRows, Trainer,
};

use crate::bench::{fma_peak_gflops, gemm_gflops_square, synthetic_release};

/// Flags of `bench-scale`.
#[derive(Debug, Args)]
pub struct ScaleBenchArgs {
    /// Ratings of the synthetic release (users and items scale with it, up to ML-25M's).
    #[arg(long, default_value_t = 25_000_095, value_parser = clap::value_parser!(u32).range(10_000..=100_000_000))]
    ratings: u32,
    /// Catalogue items of the synthetic release (default: ML-25M's 62 423 scaled by the square
    /// root of the ratings' share).
    #[arg(long, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    items: Option<u32>,
    /// Batch sizes to time one epoch at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2048,8192")]
    batch_sizes: Vec<usize>,
    /// Interactions of the seeded validation sample ranked after each epoch.
    #[arg(long, default_value_t = 100_000)]
    validation_sample: usize,
    /// Skip the full evaluation of the test split (only the epochs and their sampled validation).
    #[arg(long)]
    no_full_evaluation: bool,
    /// Where to write the report.
    #[arg(long, default_value = "scale.json")]
    out: PathBuf,
}

/// Prints progress every few seconds: batches, examples/s, ETA.
struct Ticker {
    started: Instant,
    last: Instant,
    batch_size: usize,
}

impl Observer for Ticker {
    fn on_batch(&mut self, p: &BatchProgress) {
        if self.last.elapsed().as_secs_f64() < 10.0 && p.batch != p.n_batches {
            return;
        }
        self.last = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = (p.batch * self.batch_size) as f64 / elapsed;
        let eta = elapsed / p.batch as f64 * (p.n_batches - p.batch) as f64;
        eprintln!(
            "  batch {}/{}: {rate:.0} examples/s, ETA {eta:.0} s, batch loss {:.1}",
            p.batch, p.n_batches, p.loss
        );
    }

    fn on_epoch(&mut self, record: &EpochRecord) {
        if let Some(v) = &record.validation {
            eprintln!(
                "  validation (a seeded sample of {} interactions): top-100 {:.4}, seen-filtered {:.4}",
                record.validation_rows,
                v.all.at(100).unwrap_or(0.0),
                v.seen_filtered.at(100).unwrap_or(0.0)
            );
        }
    }
}

/// The peak resident memory of this process (Linux `VmHWM`), in bytes.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl ScaleBenchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let full = movielens::synthetic::Shape::ML_25M;
        let fraction = (f64::from(self.ratings) / full.n_ratings as f64).min(1.0);
        let shape = movielens::synthetic::Shape {
            n_ratings: self.ratings as usize,
            n_users: ((full.n_users as f64 * fraction) as usize).max(100),
            n_candidates: match self.items {
                Some(items) => items as usize,
                None => ((full.n_candidates as f64 * fraction.sqrt()) as usize).max(100),
            },
        };
        let dir = synthetic_release(shape)?;
        let started = Instant::now();
        let dataset = movielens::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
        let load_seconds = started.elapsed().as_secs_f64();
        eprintln!("bench-scale: loaded {} interactions in {load_seconds:.1} s", dataset.interactions.len());
        let split = dataset::Split::seeded(dataset.interactions.len(), 42, 0.8);
        let mut spec = train::presets::named(train::presets::DEFAULT_NAME).expect("the preset exists");
        spec.epochs = 1;
        spec.validation_sample = Some(self.validation_sample);
        let started = Instant::now();
        let features = FittedFeatures::fit(&dataset, &spec.model, None)?;
        let encoded = Encoded::new(&dataset, &spec.model, &features, &split.train)?;
        let shapes = features.model_config(&spec.model).map_err(anyhow::Error::msg)?.validate()?;
        let encode_seconds = started.elapsed().as_secs_f64();
        eprintln!("bench-scale: fitted and encoded in {encode_seconds:.1} s");
        // The peaks are measured before the epochs, after each, and at the end, and the best is
        // kept, as `bench` does: one measurement landing in a moment when the host has taken a
        // vCPU away would flatter every fraction (seen: 126 against 223–247 GFLOP/s).
        let mut peak_samples = vec![gemm_gflops_square(1024, 10)];
        let mut fma_samples = vec![fma_peak_gflops()];
        let mut runs = Vec::new();
        // (epoch GFLOP, score GFLOP, seconds) of each run, for the fractions once the peaks are in.
        let mut timed = Vec::new();
        let mut trained = None;
        for &batch_size in &self.batch_sizes {
            let config = train::TrainConfig { batch_size, ..spec.clone() }.validate()?;
            let mixed = config.mixed_negatives.unwrap_or(0);
            eprintln!("bench-scale: one epoch of {} examples at batch {batch_size}", split.train.len());
            let mut trainer = Trainer::new(config, shapes.clone());
            let mut ticker = Ticker { started: Instant::now(), last: Instant::now(), batch_size };
            let history = trainer.fit(&encoded, &split, &mut ticker)?;
            let profile = trainer.take_step_profile();
            let record = &history[0];
            let n = split.train.len();
            let (full, rest) = (n / batch_size, n % batch_size);
            let flops = |b: usize| 3.0 * 2.0 * (b * (b + mixed) * 32) as f64;
            let score_gflop = (full as f64 * flops(batch_size) + flops(rest)) / 1e9;
            let n_batches = n.div_ceil(batch_size);
            let tower_gflop = crate::bench::epoch_tower_gflop(&trainer.model, n, n + n_batches * mixed);
            let epoch_gflop = score_gflop + tower_gflop;
            timed.push((epoch_gflop, score_gflop, record.train_seconds));
            peak_samples.push(gemm_gflops_square(1024, 10));
            fma_samples.push(fma_peak_gflops());
            runs.push(json!({
                "batch_size": batch_size,
                "epoch_seconds": record.train_seconds,
                "examples_per_second": n as f64 / record.train_seconds,
                "epoch_gflop": epoch_gflop,
                "epoch_score_gflop": score_gflop,
                "step_profile_ms": crate::bench::step_profile_json(&profile),
                "sampled_validation_seconds": record.eval_seconds,
                "sampled_validation_rows": record.validation_rows,
            }));
            // Keep the first model for the evaluation, not its trainer: the trainer's shuffled
            // order of 20M training rows alone is 160 MB.
            trained.get_or_insert(trainer.model);
        }
        let model = trained.context("--batch-sizes is empty")?;
        let full_evaluation = if self.no_full_evaluation {
            serde_json::Value::Null
        } else {
            eprintln!(
                "bench-scale: full evaluation of {} test interactions over {} items",
                split.test.len(),
                dataset.candidates.n_rows()
            );
            let started = Instant::now();
            let seen = SeenRows::new(&encoded, &split.train);
            let mut last = Instant::now();
            let report = evaluate_split_with_progress(&model, &encoded, &split.test, &seen, &mut |done, total| {
                if last.elapsed().as_secs_f64() >= 10.0 || done == total {
                    last = Instant::now();
                    let elapsed = started.elapsed().as_secs_f64();
                    let eta = elapsed / done as f64 * (total - done) as f64;
                    eprintln!("  ranked {done}/{total}: {:.0} interactions/s, ETA {eta:.0} s", done as f64 / elapsed);
                }
            });
            let eval_seconds = started.elapsed().as_secs_f64();
            let eval_gflop = 2.0 * split.test.len() as f64 * dataset.candidates.n_rows() as f64 * 32.0 / 1e9;
            json!({
                "seconds": eval_seconds,
                "test_interactions": split.test.len(),
                "score_gflop": eval_gflop,
                "test_top_100": report.all.at(100),
                "test_seen_filtered_top_100": report.seen_filtered.at(100),
            })
        };
        peak_samples.push(gemm_gflops_square(1024, 10));
        fma_samples.push(fma_peak_gflops());
        let peak_gflops = peak_samples.iter().copied().fold(0.0, f64::max);
        let fma_peak = fma_samples.iter().flatten().copied().reduce(f64::max);
        let of_fma = |gflop: f64, seconds: f64| fma_peak.map(|peak| gflop / (seconds * peak));
        for (run, &(epoch_gflop, score_gflop, seconds)) in runs.iter_mut().zip(&timed) {
            run["gemm_fraction_of_peak"] = json!(epoch_gflop / (seconds * peak_gflops));
            run["score_fraction_of_peak"] = json!(score_gflop / (seconds * peak_gflops));
            run["fraction_of_fma_peak"] = json!(of_fma(epoch_gflop, seconds));
        }
        let mut full_evaluation = full_evaluation;
        if let (Some(gflop), Some(seconds)) =
            (full_evaluation["score_gflop"].as_f64(), full_evaluation["seconds"].as_f64())
        {
            full_evaluation["gemm_fraction_of_peak"] = json!(gflop / (seconds * peak_gflops));
            full_evaluation["fraction_of_fma_peak"] = json!(of_fma(gflop, seconds));
        }
        let doc = json!({
            "data": format!("seeded synthetic ML-25M-shaped release: {} ratings, {} users, {} items", shape.n_ratings, shape.n_users, shape.n_candidates),
            "ratings": shape.n_ratings,
            "users": shape.n_users,
            "items": shape.n_candidates,
            "items_given": self.items.is_some(),
            "spec": "configs/movielens-100k/best.toml, 1 epoch",
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "load_seconds": load_seconds,
            "fit_and_encode_seconds": encode_seconds,
            "peak_gflops": peak_gflops,
            "peak_gflops_samples": peak_samples,
            "peak_note": "the best of the 1024^3 GEMM peaks measured before the epochs, after each and at the end (each the best of 10 GEMMs); every fraction is against it",
            "blas_core": tensor::matmul::blas_core(),
            "fma_peak_gflops": fma_peak,
            "fma_peak_isa": tensor::fma_peak::FmaWidth::of_this_machine().map(tensor::fma_peak::FmaWidth::name),
            "epochs": runs,
            "full_evaluation": full_evaluation,
            "peak_resident_bytes": peak_resident_bytes(),
        });
        crate::bench::write_report(&doc, &self.out)
    }
}
