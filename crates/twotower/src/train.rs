//! `twotower train`: train a spec (a file, a shipped tutorial, or the default preset) over one
//! or more seeds, evaluate, and report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use train::spec::{Boundaries, FeatureKind, FeatureSpec, TIMESTAMP};
use train::{
    ease_split, evaluate_split_with_progress, popularity_split, Checkpoint, Encoded, EpochRecord, Experiment,
    FittedFeatures, ModelFile, Observer, SeenRows, SplitReport, TrainConfig, Trainer,
};

use train::fs::{write_atomic, RunDir};

use crate::data::{DataArgs, Prepared};
use crate::plot;
use crate::report::{self, RunReport};

/// Flags of `train`; anything given overrides the spec's settings.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A shipped tutorial spec: basic, context, context-timestamps, deep-1, deep-2, deep-3, or
    /// all (default, without --config: the MovieLens 100k preset configs/movielens-100k/best.toml).
    #[arg(long, conflicts_with = "config")]
    experiment: Option<String>,
    /// A spec file (TOML): features of each tower, layers and training settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data source, columns, split and validation.
    #[command(flatten)]
    data: DataArgs,
    /// Seeds of the runs, comma-separated; several seeds give a mean.
    #[arg(long, value_delimiter = ',', default_value = "42")]
    seed: Vec<u64>,
    /// Epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adagrad learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Dense layer sizes of both towers, comma-separated (e.g. 64,32).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Embedding width.
    #[arg(long)]
    embedding_dim: Option<usize>,
    /// Add the tutorials' time features (1000 time buckets, normalised time) to the query tower.
    #[arg(long)]
    timestamps: bool,
    /// Mixed negative sampling: draw this many catalogue rows per batch as extra negatives.
    #[arg(long)]
    mixed_negatives: Option<usize>,
    /// L2-normalise both towers' outputs (scores become cosines; pair with --temperature 0.05).
    #[arg(long)]
    l2_normalize: bool,
    /// Softmax temperature.
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f32>,
    /// Apply the logQ sampling-bias correction (candidate probability = share of training ratings).
    #[arg(long)]
    logq: bool,
    /// Remove accidental hits (in-batch candidates with the positive's identity).
    #[arg(long)]
    remove_accidental_hits: bool,
    /// With --logq: estimate candidate probabilities while training (Yi et al. 2019 streaming
    /// estimator at this moving-average rate, e.g. 0.01) instead of counting the training set.
    #[arg(long, requires = "logq")]
    logq_streaming: Option<f32>,
    /// Keep only the N hardest in-batch negatives per query (TFRS num_hard_negatives).
    #[arg(long)]
    num_hard_negatives: Option<usize>,
    /// Ridge λ of the EASE baseline printed beside the model (Steck 2019).
    #[arg(long, default_value_t = 500.0)]
    ease_lambda: f64,
    /// Per-epoch validation on a seeded sample of N interactions (the final evaluation stays complete).
    #[arg(long, value_name = "N")]
    validation_sample: Option<usize>,
    /// Validate every N epochs.
    #[arg(long)]
    validation_freq: Option<usize>,
    /// Write checkpoints under DIR/<spec>/seed-<seed>/ (weights, optimizer state, RNG positions)
    /// every --checkpoint-every epochs; an interrupted run loses at most that many epochs.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Epochs between checkpoints.
    #[arg(long, default_value_t = 10, requires = "checkpoint", value_parser = clap::value_parser!(u32).range(1..))]
    checkpoint_every: u32,
    /// Continue each run from its checkpoint under --checkpoint DIR, when there is one (the same
    /// command otherwise; only --epochs may change); the result equals an uninterrupted run.
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// Output directory (default runs/<experiment>; with --experiment all, DIR/<experiment> for each).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Instead of training, plot top-100 against epoch for these run directories.
    #[arg(long, num_args = 1.., value_name = "RUN_DIR")]
    compare: Vec<PathBuf>,
}

impl TrainArgs {
    pub fn run(self) -> anyhow::Result<()> {
        if !self.compare.is_empty() {
            let out = self.out.clone().unwrap_or_else(|| PathBuf::from("runs/compare.svg"));
            return plot::compare_runs(&self.compare, &out);
        }
        let specs = self.specs()?;
        check_distinct_seeds(&self.seed)?;
        // Every configuration is checked before any data is read or anything trained.
        for spec in &specs {
            for &seed in &self.seed {
                self.config_for(spec, seed)
                    .validate()
                    .with_context(|| format!("invalid configuration for {}", spec.name))?;
            }
        }
        let Prepared { data: dataset, split, split_name, columns, .. } = self.data.prepare()?;
        report::print_data_summary(&dataset, &split, &split_name);
        let fit_rows = (self.data.fit_features_on == "train").then_some(&split.train[..]);

        let out_root = self.out.clone().unwrap_or_else(|| PathBuf::from("runs"));
        let mut deep_runs = Vec::new();
        let mut ease: Option<Result<SplitReport, String>> = None;
        for spec in &specs {
            let mut spec = spec.clone();
            columns.apply(&mut spec.model);
            let name = spec.name.clone();
            let features = FittedFeatures::fit(&dataset, &spec.model, fit_rows)
                .with_context(|| format!("{name}: the data cannot feed the spec's features"))?;
            let encoded = Encoded::new(&dataset, &spec.model, &features, &split.train)?;
            let shapes = features
                .model_config(&spec.model)
                .and_then(|m| m.validate().map_err(|e| e.to_string()))
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            report::print_features(&name, &features);
            let seen = SeenRows::new(&encoded, &split.train);
            let popularity = (
                popularity_split(&encoded, &split.train, &split.test, &seen),
                popularity_split(&encoded, &split.train, &split.train, &seen),
            );
            // EASE sees catalogue rows and users only, so one fit serves every spec.
            let ease_test = ease
                .get_or_insert_with(|| {
                    ease_split(&encoded, &split.train, &split.test, &seen, self.ease_lambda).map_err(|e| e.to_string())
                })
                .clone();
            // One spec's directory is written as a unit: staged, then swapped into place.
            let base_out = match (&self.out, specs.len()) {
                (Some(out), 1) => out.clone(),
                _ => out_root.join(&name),
            };
            let staged = RunDir::create(&base_out).with_context(|| format!("creating {}", base_out.display()))?;
            let mut runs = Vec::new();
            for &seed in &self.seed {
                let config = self.config_for(&spec, seed).validate().expect("validated above");
                if config.batch_size > split.train.len() {
                    eprintln!(
                        "note: {name}: batch size {} exceeds the {} training rows: every epoch is one batch of {}",
                        config.batch_size,
                        split.train.len(),
                        split.train.len()
                    );
                }
                let run_dir = if self.seed.len() == 1 {
                    staged.staging().to_path_buf()
                } else {
                    let dir = staged.path(&format!("seed-{seed}"));
                    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                    dir
                };
                let started = Instant::now();
                let checkpoint_dir = self.checkpoint.as_ref().map(|d| d.join(&name).join(format!("seed-{seed}")));
                let mut trainer = match &checkpoint_dir {
                    Some(dir) if self.resume && dir.join(train::checkpoint::CHECKPOINT_FILE).is_file() => {
                        let checkpoint = Checkpoint::load(dir)?;
                        eprintln!("{name} (seed {seed}): resuming after epoch {}", checkpoint.epochs_done());
                        checkpoint.resume(config, dir)?
                    }
                    _ => Trainer::new(config, shapes.clone()),
                };
                if let Some(dir) = checkpoint_dir {
                    trainer.checkpoint_every(dir, self.checkpoint_every as usize);
                }
                let (validates_on, total) = if split.validation.is_empty() {
                    ("test", split.test.len())
                } else {
                    ("validation", split.validation.len())
                };
                let mut progress = Progress::new(trainer.config(), validates_on, total);
                let history = trainer.fit(&encoded, &split, &mut progress);
                progress.bar.finish_and_clear();
                let history = history.with_context(|| format!("training {name} (seed {seed})"))?;
                let train_seconds = history.iter().map(|r| r.train_seconds).sum::<f64>();
                let eval_started = Instant::now();
                let evaluation =
                    EvaluationBar::new(&name, split.test.len() + split.validation.len() + split.train.len());
                let test = evaluation.run(&trainer.model, &encoded, &split.test, &seen);
                let validation = (!split.validation.is_empty())
                    .then(|| evaluation.run(&trainer.model, &encoded, &split.validation, &seen));
                let train_report = evaluation.run(&trainer.model, &encoded, &split.train, &seen);
                evaluation.bar.finish_and_clear();
                let eval_seconds =
                    eval_started.elapsed().as_secs_f64() + history.iter().map(|r| r.eval_seconds).sum::<f64>();
                let run = RunReport {
                    experiment: name.clone(),
                    config: (**trainer.config()).clone(),
                    split: split_name.clone(),
                    features_fitted_on: features.fitted_on,
                    test,
                    validation,
                    train: train_report,
                    popularity_test: popularity.0.clone(),
                    popularity_train: popularity.1.clone(),
                    ease_test: ease_test.clone(),
                    ease_lambda: self.ease_lambda,
                    history,
                    train_seconds,
                    eval_seconds,
                    wall_seconds: started.elapsed().as_secs_f64(),
                };
                let model_file = ModelFile::new(
                    (**trainer.config()).clone(),
                    features.clone(),
                    trainer.model.clone(),
                    &dataset,
                    &encoded,
                    &split.train,
                    &seen,
                );
                model_file
                    .validate()
                    .map_err(|problem| anyhow::anyhow!("the trained model is inconsistent: {problem}"))?;
                write_run(&run_dir, &run, &model_file)?;
                if run.history.iter().filter(|r| r.validation.is_some()).count() > 1 {
                    plot::accuracy_curves(&[(name.clone(), &run.history)], &run_dir.join("accuracy.svg"))?;
                }
                runs.push(run);
            }
            report::print_table(&runs);
            if runs.len() > 1 {
                report::write_summary(&runs, &staged.path("summary.json"))?;
            }
            let published = staged.publish().with_context(|| format!("publishing {}", base_out.display()))?;
            let contents = if runs.len() > 1 {
                "summary.json, seed-*/{metrics.json,model.bin}"
            } else {
                "metrics.json, model.bin"
            };
            println!("wrote {}/ ({contents})", published.display());
            if name.starts_with("deep-") {
                deep_runs.push((name.clone(), runs.swap_remove(0).history));
            }
        }
        if deep_runs.len() > 1 {
            let curves: Vec<(String, &Vec<EpochRecord>)> = deep_runs.iter().map(|(n, h)| (n.clone(), h)).collect();
            let path = out_root.join("deep-comparison.svg");
            plot::accuracy_curves(&curves, &path)?;
            println!("wrote {}", path.display());
        }
        Ok(())
    }

    /// The specs to train: a file, one or all tutorials, or the default preset.
    fn specs(&self) -> anyhow::Result<Vec<TrainConfig>> {
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).with_context(|| format!("--config {}", path.display()))?;
            let config =
                TrainConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
            return Ok(vec![config]);
        }
        let name = self.experiment.as_deref().unwrap_or(train::presets::DEFAULT_NAME);
        if name == "all" {
            return Ok(Experiment::ALL.iter().map(|e| e.config(self.seed[0])).collect());
        }
        if let Some(config) = train::presets::named(name) {
            return Ok(vec![config]);
        }
        anyhow::bail!(
            "--experiment {name:?}: expected one of basic, context, context-timestamps, deep-1, deep-2, deep-3, all, {}",
            train::presets::DEFAULT_NAME
        )
    }

    fn config_for(&self, spec: &TrainConfig, seed: u64) -> TrainConfig {
        let mut config = TrainConfig { seed, ..spec.clone() };
        if let Some(epochs) = self.epochs {
            config.epochs = epochs;
        }
        if let Some(batch_size) = self.batch_size {
            config.batch_size = batch_size;
        }
        if let Some(lr) = self.lr {
            config.learning_rate = lr;
        }
        if let Some(layers) = &self.layers {
            config.model.set_layers(layers);
        }
        if let Some(dim) = self.embedding_dim {
            config.model.embedding_dim = dim;
        }
        if self.timestamps {
            let query = &mut config.model.query.features;
            let has = |query: &[FeatureSpec], kind| query.iter().any(|f| f.kind == kind && f.column() == TIMESTAMP);
            if !has(query, FeatureKind::Bucketized) {
                let mut buckets = FeatureSpec::new(FeatureKind::Bucketized, TIMESTAMP);
                buckets.boundaries = Some(Boundaries::Linspace(1000));
                query.push(buckets);
            }
            if !has(query, FeatureKind::Numeric) {
                query.push(FeatureSpec::new(FeatureKind::Numeric, TIMESTAMP));
            }
        }
        if self.l2_normalize {
            config.model.query.l2_normalize = true;
            config.model.candidate.l2_normalize = true;
        }
        if self.temperature.is_some() {
            config.temperature = self.temperature;
        }
        config.logq |= self.logq;
        config.remove_accidental_hits |= self.remove_accidental_hits;
        if self.logq_streaming.is_some() {
            config.logq_streaming_alpha = self.logq_streaming;
        }
        if self.num_hard_negatives.is_some() {
            config.num_hard_negatives = self.num_hard_negatives;
        }
        if self.mixed_negatives.is_some() {
            config.mixed_negatives = self.mixed_negatives;
        }
        if self.validation_freq.is_some() {
            config.validation_freq = self.validation_freq;
        }
        if self.validation_sample.is_some() {
            config.validation_sample = self.validation_sample;
        }
        config
    }
}

/// Writes a run's metrics and model into its (staging) directory.
fn write_run(dir: &Path, run: &RunReport, model_file: &ModelFile) -> anyhow::Result<()> {
    let metrics_path = dir.join("metrics.json");
    let json = serde_json::to_string_pretty(&run.to_json()).context("encoding metrics")?;
    write_atomic(&metrics_path, json.as_bytes()).with_context(|| format!("writing {}", metrics_path.display()))?;
    model_file.save(&dir.join("model.bin")).context("saving the model")?;
    Ok(())
}

/// Each seed names its own run directory, so a repeated seed would overwrite its twin.
fn check_distinct_seeds(seeds: &[u64]) -> anyhow::Result<()> {
    for (i, seed) in seeds.iter().enumerate() {
        if seeds[..i].contains(seed) {
            anyhow::bail!(
                "--seed: {seed} is listed twice; each seed is one run, written to its own seed-{seed}/ directory"
            );
        }
    }
    Ok(())
}

/// A progress bar over the final evaluation (test, validation and training interactions, each
/// ranked over the whole catalogue), with interactions/s and the ETA.
struct EvaluationBar {
    bar: ProgressBar,
}

impl EvaluationBar {
    fn new(name: &str, total: usize) -> Self {
        let bar = ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template(
                "{prefix} evaluating [{bar:30}] {human_pos}/{human_len} interactions, {per_sec}, ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        Self { bar }
    }

    /// `train::evaluate_split` of `rows`, advancing the bar as each chunk is ranked.
    fn run(&self, model: &towers::TwoTower, data: &Encoded, rows: &[usize], seen: &SeenRows) -> train::SplitReport {
        let start = self.bar.position();
        evaluate_split_with_progress(model, data, rows, seen, &mut |done, _| self.bar.set_position(start + done as u64))
    }
}

/// A progress bar over every batch of the run, with examples/s, the last loss and the ETA.
struct Progress {
    bar: ProgressBar,
    epochs: usize,
    batch_size: usize,
    /// What per-epoch validation runs on: `validation` or `test`.
    validates_on: &'static str,
    /// How many interactions it holds (a sample ranks fewer).
    total: usize,
}

impl Progress {
    fn new(config: &TrainConfig, validates_on: &'static str, total: usize) -> Self {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} batches, {msg}, ETA {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(config.name.clone());
        Self { bar, epochs: config.epochs, batch_size: config.batch_size, validates_on, total }
    }
}

impl Observer for Progress {
    fn on_batch(&mut self, p: &train::BatchProgress) {
        if self.bar.length() == Some(0) {
            self.bar.set_length((p.n_batches * self.epochs) as u64);
        }
        self.bar.inc(1);
        let examples_per_second =
            (self.bar.position() as usize * self.batch_size) as f64 / self.bar.elapsed().as_secs_f64();
        self.bar.set_message(format!(
            "epoch {}/{}, {examples_per_second:.0} examples/s, batch loss {:.1}",
            p.epoch, self.epochs, p.loss
        ));
    }

    fn on_epoch(&mut self, record: &EpochRecord) {
        if let Some(v) = &record.validation {
            let line = format!(
                "  epoch {:>3}: loss sum {:>10.1}, {} ({} interactions{}) top-100 {:.4} (seen-filtered {:.4})",
                record.epoch,
                record.loss_sum,
                self.validates_on,
                record.validation_rows,
                if record.validation_rows < self.total { ", a seeded sample" } else { "" },
                v.all.at(100).unwrap_or(0.0),
                v.seen_filtered.at(100).unwrap_or(0.0)
            );
            // A hidden bar (stderr not a terminal, as in CI logs) drops its println: print directly.
            if self.bar.is_hidden() {
                eprintln!("{}{line}", self.bar.prefix());
            } else {
                self.bar.println(line);
            }
        }
    }
}
