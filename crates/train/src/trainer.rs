//! `Trainer`: the model, its optimizer state and every reusable buffer of a training step.
//!
//! One step, for a batch of rating rows:
//!
//! ```text
//! Q = query_tower(batch)          C = candidate_tower(batch)        (B, d), (B + m, d)
//! loss, dQ, dC = in_batch_softmax(Q, C)                             SUM over the batch
//! query_tower.backward(dQ)        candidate_tower.backward(dC)      grads zeroed first
//! Adagrad on the query tower      Adagrad on the candidate tower    each on its tower's thread
//!   (row-sparse steps on embedding tables, dense steps on layers)
//! ```
//!
//! After the first step of the largest batch size, a step allocates nothing: every buffer
//! (caches, grads, logits, batch columns) is reused (bags longer than any seen before, such as
//! a longer history, grow their buffer once).

use std::time::Instant;

use dataset::Split;
use optim::{Adagrad, AdagradConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retrieval::{AccidentalHits, Batch, InBatchSoftmax, LossConfig, SoftmaxKernel};
use towers::{TowerCache, TowerGrads, TwoTower, ValidModelConfig};

use crate::batch::{with_views, BatchColumns};
use crate::evaluate::{embed_catalogue, evaluate_split, Metrics, SeenRows, SplitReport};
use crate::guard::{step_problem, TrainError};
use crate::spinning::with_spinning_workers;
use crate::{Encoded, ModelOptState, Shuffler, ValidTrainConfig};

/// Progress after one training batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchProgress {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub n_batches: usize,
    /// This batch's summed loss.
    pub loss: f32,
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Sum of the batch losses (each a SUM over its examples).
    pub loss_sum: f64,
    /// The last batch's loss (what Keras' `History` reports as "loss").
    pub last_batch_loss: f32,
    /// What Keras' `verbose=1` progress bar shows at the end of the epoch:
    /// `(Σ batch losses + last batch loss) / (batches + 1)` (the last batch is counted twice).
    pub keras_progress_loss: f64,
    /// Factorized top-k over the epoch's training batches, each before its update (when enabled).
    pub train_batch_metrics: Option<Metrics>,
    /// Validation (on the validation block, else the test split), on validation epochs.
    pub validation: Option<SplitReport>,
    /// How many interactions that validation ranked: all of them, or a seeded sample
    /// (`validation_sample`).
    #[serde(default)]
    pub validation_rows: usize,
    /// Seconds spent training in this epoch.
    pub train_seconds: f64,
    /// Seconds spent validating after it.
    pub eval_seconds: f64,
}

/// Receives progress; every method has an empty default.
pub trait Observer: Send {
    /// After every batch.
    fn on_batch(&mut self, _progress: &BatchProgress) {}
    /// After every epoch (and its validation, if any).
    fn on_epoch(&mut self, _record: &EpochRecord) {}
}

impl Observer for () {}

/// A model being trained.
#[derive(Debug)]
pub struct Trainer {
    /// The towers.
    pub model: TwoTower,
    config: ValidTrainConfig,
    adagrad: Adagrad,
    opt_state: ModelOptState,
    buffers: StepBuffers,
    /// Draws the mixed negatives (its own ChaCha8 stream of the seed).
    negatives_rng: ChaCha8Rng,
    /// Where the run stands between epochs (created by the first `fit`, or by a checkpoint).
    progress: Option<FitProgress>,
    /// Write a checkpoint into this directory every this many epochs.
    checkpoints: Option<(std::path::PathBuf, usize)>,
}

/// The state of a run between two epochs, beside the weights and optimizer state: what a
/// checkpoint needs to continue bit for bit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FitProgress {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Batch order (its RNG position and current permutation).
    pub shuffler: Shuffler,
    /// Streaming logQ: the estimator and the probability of every identity.
    pub streaming: Option<(retrieval::StreamingFrequency, Vec<f32>)>,
    /// The records of the completed epochs.
    pub history: Vec<EpochRecord>,
    /// Identifies the training data (see [`data_fingerprint`]).
    pub data_fingerprint: u32,
}

/// `rows`, or a seeded sample of `n` of them in ascending order (ChaCha8 stream 3 of `seed`).
fn sample_rows(rows: &[usize], n: Option<usize>, seed: u64) -> Vec<usize> {
    match n {
        Some(n) if n < rows.len() => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(3);
            let mut picked: Vec<usize> =
                rand::seq::index::sample(&mut rng, rows.len(), n).into_iter().map(|i| rows[i]).collect();
            picked.sort_unstable();
            picked
        }
        _ => rows.to_vec(),
    }
}

/// A CRC-32 of what decides the batches: the training rows in order, their candidates and the
/// catalogue size; a checkpoint resumes only on the data it was written from.
pub(crate) fn data_fingerprint(data: &Encoded, split: &Split) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for &r in &split.train {
        hasher.update(&(r as u64).to_le_bytes());
        hasher.update(&data.candidate_row[r].to_le_bytes());
        hasher.update(&data.user[r].to_le_bytes());
    }
    hasher.update(&(data.n_candidates() as u64).to_le_bytes());
    hasher.finalize()
}

/// The gradients of both towers, reused from step to step.
pub type Grads = (TowerGrads, TowerGrads);

#[derive(Debug, Default)]
struct StepBuffers {
    columns: BatchColumns,
    query_cache: TowerCache,
    candidate_cache: TowerCache,
    catalogue_cache: TowerCache,
    loss: InBatchSoftmax,
    extra_rows: Vec<u32>,
    profile: StepProfile,
}

/// Wall-clock seconds each phase of [`Trainer::step`] took, summed over `steps` steps since the
/// last [`Trainer::take_step_profile`]: where a step's time goes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepProfile {
    /// Steps measured.
    pub steps: u64,
    /// Gathering the batch's feature columns (and mixed negatives).
    pub gather: f64,
    /// Both towers' forward passes (concurrently).
    pub forward: f64,
    /// The in-batch softmax: scores, softmax, `dQ` and `dC`.
    pub loss: f64,
    /// Both towers' backward passes (concurrently), including zeroing the gradients.
    pub backward: f64,
    /// The Adagrad update of every table and layer: each parameter's step runs as soon as its
    /// gradient is complete, on whichever worker is free, inside the backward phase. Each
    /// tower's steps are summed and the larger sum is counted here and taken out of
    /// `backward` (an estimate: steps of the two towers may overlap each other or the other
    /// tower's backward pass).
    pub update: f64,
}

impl StepProfile {
    /// Seconds of a whole step, summed over the steps.
    pub fn total(&self) -> f64 {
        self.gather + self.forward + self.loss + self.backward + self.update
    }
}

impl Trainer {
    /// A freshly initialised model of shape `model` (weights from
    /// `ChaCha8Rng::seed_from_u64(config.seed)`, tables in spec order).
    pub fn new(config: ValidTrainConfig, model: ValidModelConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let model = TwoTower::new(model, &mut rng);
        let adagrad = Adagrad::new(AdagradConfig { learning_rate: config.learning_rate, ..AdagradConfig::default() });
        let opt_state = ModelOptState::new(&model, &adagrad);
        let mut negatives_rng = ChaCha8Rng::seed_from_u64(config.seed);
        negatives_rng.set_stream(2);
        Self::from_parts(config, model, opt_state, negatives_rng, None)
    }

    /// Writes `dir/checkpoint.bin` (atomically) after every `every` epochs of [`Self::fit`]: the
    /// weights, the optimizer state, the RNG positions and the history, so that
    /// [`crate::Checkpoint::resume`] continues exactly where it stopped.
    pub fn checkpoint_every(&mut self, dir: std::path::PathBuf, every: usize) {
        self.checkpoints = Some((dir, every.max(1)));
    }

    /// The optimizer state and the negatives' RNG, for a checkpoint (see `checkpoint.rs`).
    pub(crate) fn parts(&self) -> (&ModelOptState, &ChaCha8Rng) {
        (&self.opt_state, &self.negatives_rng)
    }

    /// A trainer from its parts: fresh ones ([`Self::new`]) or a checkpoint's, with its progress.
    pub(crate) fn from_parts(
        config: ValidTrainConfig,
        model: TwoTower,
        opt_state: ModelOptState,
        negatives_rng: ChaCha8Rng,
        progress: Option<FitProgress>,
    ) -> Self {
        let adagrad = Adagrad::new(AdagradConfig { learning_rate: config.learning_rate, ..AdagradConfig::default() });
        Self {
            model,
            config,
            adagrad,
            opt_state,
            buffers: StepBuffers::default(),
            negatives_rng,
            progress,
            checkpoints: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ValidTrainConfig {
        &self.config
    }

    /// One Adagrad step on ratings `rows`; returns the batch's summed loss. `candidate_probability`
    /// (per title index) turns on the logQ correction; `grads` are reused buffers from
    /// [`Self::new_grads`].
    pub fn step(
        &mut self,
        data: &Encoded,
        rows: &[usize],
        candidate_probability: Option<&[f32]>,
        grads: &mut Grads,
    ) -> f32 {
        self.step_with_ranks(data, rows, candidate_probability, grads, None)
    }

    /// [`Self::step`], also recording each example's factorized rank over `catalogue` (computed
    /// from the same forward pass, before the update) when `ranks` is given.
    fn step_with_ranks(
        &mut self,
        data: &Encoded,
        rows: &[usize],
        candidate_probability: Option<&[f32]>,
        grads: &mut Grads,
        ranks: Option<(&ndarray::Array2<f32>, &mut eval::FactorizedTopK)>,
    ) -> f32 {
        let StepBuffers { columns, query_cache, candidate_cache, loss, extra_rows, profile, .. } = &mut self.buffers;
        let mut clock = Instant::now();
        let mut lap = |phase: &mut f64| {
            let now = Instant::now();
            *phase += now.duration_since(clock).as_secs_f64();
            clock = now;
        };
        extra_rows.clear();
        if let Some(m) = self.config.mixed_negatives {
            let n = data.n_candidates() as u32;
            extra_rows.extend((0..m).map(|_| self.negatives_rng.random_range(0..n)));
        }
        columns.fill(data, rows, extra_rows, candidate_probability);
        lap(&mut profile.gather);
        // The towers are independent: each runs on its own thread.
        let model = &self.model;
        // The candidate tower on the calling worker, in both passes: the loss sums its `dC` halves
        // there, so the candidate backward pass reads `dC` from its own core's cache (criterion
        // `train_step`, three alternating rounds: 0.4–8 % faster on AVX-512; RESULTS.md, seventh round).
        let (candidates, queries) = rayon::join(
            || with_views(&columns.candidate, |batch| model.candidate.forward(batch, candidate_cache)),
            || with_views(&columns.query, |batch| model.query.forward(batch, query_cache)),
        );
        lap(&mut profile.forward);
        if let Some((catalogue, metric)) = ranks {
            metric.update(&eval::true_rank(queries, catalogue.view(), &columns.candidate_rows[..rows.len()], None));
        }
        let batch = Batch {
            query: queries,
            candidate: candidates,
            sample_weight: None,
            candidate_sampling_probability: candidate_probability.map(|_| &columns.probabilities[..]),
            accidental_hits: if self.config.remove_accidental_hits {
                AccidentalHits::Remove { candidate_ids: &columns.candidate_ids }
            } else {
                AccidentalHits::Keep
            },
        };
        let value = loss.compute(
            &batch,
            &LossConfig { temperature: self.config.temperature, num_hard_negatives: self.config.num_hard_negatives },
        );
        lap(&mut profile.loss);
        // Each tower's backward pass and then its update on its own thread: the faster tower
        // updates while the other is still in its backward pass (the towers share no parameter).
        let (query_grads, candidate_grads) = grads;
        let TwoTower { query, candidate } = &mut self.model;
        let (query_state, candidate_state) = self.opt_state.towers_mut();
        let (adagrad, loss) = (&self.adagrad, &*loss);
        let (candidate_update, query_update) = rayon::join(
            || {
                let dy = loss.candidate_grad();
                candidate_state.backward_then_step(adagrad, candidate, candidate_cache, dy, candidate_grads)
            },
            || query_state.backward_then_step(adagrad, query, query_cache, loss.query_grad(), query_grads),
        );
        let update = query_update.max(candidate_update);
        lap(&mut profile.backward);
        profile.backward -= update;
        profile.update += update;
        profile.steps += 1;
        value
    }

    /// Runs the loss's score products on `kernel` from the next step on (the fused kernel is the
    /// default; the GEMM path is kept for comparison).
    pub fn set_score_kernel(&mut self, kernel: SoftmaxKernel) {
        self.buffers.loss = InBatchSoftmax::with_kernel(kernel);
    }

    /// The phase timings of the steps since the last call, and a fresh start.
    pub fn take_step_profile(&mut self) -> StepProfile {
        std::mem::take(&mut self.buffers.profile)
    }

    /// Fresh gradient buffers for [`Self::step`].
    pub fn new_grads(&self) -> Grads {
        (TowerGrads::zeros_like(&self.model.query), TowerGrads::zeros_like(&self.model.candidate))
    }

    /// Each candidate identity's share of the training interactions, `(n_identities)`, for the
    /// logQ correction.
    pub fn candidate_probability(data: &Encoded, train_rows: &[usize], n_identities: usize) -> Vec<f32> {
        let mut counts = vec![0u64; n_identities];
        for &r in train_rows {
            counts[data.candidate_identity[data.candidate_row[r] as usize] as usize] += 1;
        }
        let total = train_rows.len().max(1) as f64;
        counts.iter().map(|&c| (c as f64 / total) as f32).collect()
    }

    /// Trains for `config.epochs` epochs on `split.train`, validating as configured on
    /// `split.validation` when it is not empty, else on `split.test`.
    ///
    /// # Errors
    /// [`TrainError`] for a split too small to train or test on, and as soon as the loss, a
    /// gradient, a weight or an accumulator stops being finite (see `guard.rs`); the model is then
    /// unusable and should not be saved.
    pub fn fit(
        &mut self,
        data: &Encoded,
        split: &Split,
        observer: &mut dyn Observer,
    ) -> Result<Vec<EpochRecord>, TrainError> {
        if split.train.len() < 2 {
            return Err(TrainError::TooFewTrainRows { found: split.train.len() });
        }
        if split.test.is_empty() {
            return Err(TrainError::NoTestRows);
        }
        let validation_rows = if split.validation.is_empty() { &split.test } else { &split.validation };
        let n_ids = data.candidate_identity.iter().copied().max().map_or(0, |m| m as usize + 1);
        let streaming_alpha = self.config.logq_streaming_alpha.filter(|_| self.config.logq);
        let counted = (self.config.logq && streaming_alpha.is_none())
            .then(|| Self::candidate_probability(data, &split.train, n_ids));
        let fingerprint = data_fingerprint(data, split);
        let mut progress = match self.progress.take() {
            Some(progress) if progress.data_fingerprint != fingerprint => return Err(TrainError::OtherData),
            Some(progress) => progress,
            None => FitProgress {
                epochs_done: 0,
                shuffler: Shuffler::new(&split.train, self.config.shuffle, self.config.seed),
                // Streaming logQ: the estimator and the probability of every id (its prior until seen).
                streaming: streaming_alpha.map(|alpha| {
                    let estimator = retrieval::StreamingFrequency::new(n_ids, alpha);
                    let table = vec![estimator.probability(0); n_ids];
                    (estimator, table)
                }),
                history: Vec::with_capacity(self.config.epochs),
                data_fingerprint: fingerprint,
            },
        };
        let result = self.run_epochs(data, split, validation_rows, counted.as_deref(), &mut progress, observer);
        let history = progress.history.clone();
        self.progress = Some(progress);
        result.map(|()| history)
    }

    /// Epochs `progress.epochs_done + 1 ..= config.epochs`, checkpointing as asked.
    fn run_epochs(
        &mut self,
        data: &Encoded,
        split: &Split,
        validation_rows: &[usize],
        counted: Option<&[f32]>,
        progress: &mut FitProgress,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let seen = SeenRows::new(data, &split.train);
        let validation_rows = sample_rows(validation_rows, self.config.validation_sample, self.config.seed);
        let validation_rows = &validation_rows[..];
        let mut grads = self.new_grads();
        let mut batch_ids = Vec::<u32>::new();
        let batch_size = self.config.batch_size;
        let n_batches = split.train.len().div_ceil(batch_size);
        for epoch in progress.epochs_done + 1..=self.config.epochs {
            let started = Instant::now();
            let order = progress.shuffler.next_epoch().to_vec();
            let mut batch_metric = self.config.batch_metrics.then(|| eval::FactorizedTopK::new(&eval::TFRS_KS));
            // The batches run on a worker of rayon's pool: each step's joins then fork from a
            // worker (which starts on its half at once) instead of being injected from outside
            // the pool, which costs a sleep and a wake-up of the calling thread per join (`bench`
            // on two cores: a step of 2048 went from 9.2–10.1 ms to 7.1–8.5 ms with this alone),
            // and the other workers spin meanwhile, so that they steal each fork at once instead
            // of waking up for it (`spinning`). Only the batches: what an epoch allocates besides
            // (its order, the validation) stays on the calling thread, whose allocator arena
            // later work reuses.
            let (loss_sum, last_batch_loss) = with_spinning_workers(|| {
                let (mut loss_sum, mut last_batch_loss) = (0f64, 0f32);
                for (batch_idx, rows) in order.chunks(batch_size).enumerate() {
                    let catalogue = batch_metric
                        .as_ref()
                        .map(|_| embed_catalogue(&self.model, data, &mut self.buffers.catalogue_cache));
                    let ranks = catalogue.as_ref().zip(batch_metric.as_mut());
                    if let Some((estimator, table)) = &mut progress.streaming {
                        batch_ids.clear();
                        batch_ids.extend(rows.iter().map(|&r| data.candidate_identity[data.candidate_row[r] as usize]));
                        estimator.observe(&batch_ids);
                        for &id in &batch_ids {
                            table[id as usize] = estimator.probability(id);
                        }
                    }
                    let probability = progress.streaming.as_ref().map(|(_, table)| &table[..]).or(counted);
                    let loss = self.step_with_ranks(data, rows, probability, &mut grads, ranks);
                    let batch = batch_idx + 1;
                    if let Some(problem) =
                        step_problem(loss, self.buffers.loss.query_grad(), self.buffers.loss.candidate_grad())
                    {
                        return Err(self.diverged(epoch, batch, n_batches, problem));
                    }
                    loss_sum += f64::from(loss);
                    last_batch_loss = loss;
                    observer.on_batch(&BatchProgress { epoch, batch: batch_idx + 1, n_batches, loss });
                }
                Ok((loss_sum, last_batch_loss))
            })?;
            if let Some((name, index, value)) = self.model.first_non_finite() {
                let problem = format!(
                    "weight {name}[{index}] is {value:e} after the epoch's last batch (beyond {:e}, float32 products overflow)",
                    towers::WEIGHT_LIMIT
                );
                return Err(self.diverged(epoch, n_batches, n_batches, problem));
            }
            if let Some(name) = self.opt_state.first_non_finite() {
                let problem =
                    format!("an Adagrad accumulator of {name} overflowed to ∞ (a gradient too large for float32)");
                return Err(self.diverged(epoch, n_batches, n_batches, problem));
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let eval_started = Instant::now();
            let validation =
                self.config.validates_after(epoch).then(|| evaluate_split(&self.model, data, validation_rows, &seen));
            let record = EpochRecord {
                epoch,
                loss_sum,
                last_batch_loss,
                keras_progress_loss: (loss_sum + f64::from(last_batch_loss)) / (n_batches + 1) as f64,
                train_batch_metrics: batch_metric.map(|m| Metrics(m.accuracies())),
                validation_rows: if validation.is_some() { validation_rows.len() } else { 0 },
                validation,
                train_seconds,
                eval_seconds: eval_started.elapsed().as_secs_f64(),
            };
            observer.on_epoch(&record);
            progress.history.push(record);
            progress.epochs_done = epoch;
            if let Some((dir, every)) = &self.checkpoints {
                if epoch % every == 0 && epoch < self.config.epochs {
                    crate::checkpoint::write(self, progress, dir).map_err(|e| TrainError::Checkpoint {
                        dir: dir.clone(),
                        epoch,
                        problem: e.to_string(),
                    })?;
                }
            }
        }
        Ok(())
    }

    fn diverged(&self, epoch: usize, batch: usize, n_batches: usize, problem: String) -> TrainError {
        TrainError::Diverged {
            epoch,
            batch,
            n_batches,
            problem,
            learning_rate: self.config.learning_rate,
            temperature: self.config.temperature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SyntheticSpec;
    use crate::Experiment;

    /// Each tower's update runs on its thread right after its backward pass, and the candidate
    /// side on the calling worker: the same bits as both backward passes, then one optimizer
    /// step, all on one thread.
    #[test]
    fn a_step_equals_both_backward_passes_then_the_optimizer_step() {
        let config = crate::TrainConfig { batch_size: 256, ..Experiment::Deep2.config(3) };
        let spec = SyntheticSpec { n_ratings: 4000, ..SyntheticSpec::MOVIELENS_100K };
        let synthetic = spec.prepare(3, &config);
        let mut trainer = Trainer::new(config.validate().expect("valid"), synthetic.model.clone());
        let (mut model, mut opt_state) = (trainer.model.clone(), trainer.opt_state.clone());
        let initial = model.clone();
        let (data, rows) = (&synthetic.encoded, &synthetic.split.train[..256]);
        let mut grads = trainer.new_grads();
        trainer.step(data, rows, None, &mut grads);

        let mut columns = BatchColumns::default();
        columns.fill(data, rows, &[], None);
        let (mut query_cache, mut candidate_cache) = (TowerCache::default(), TowerCache::default());
        let queries = with_views(&columns.query, |batch| model.query.forward(batch, &mut query_cache)).to_owned();
        let candidates =
            with_views(&columns.candidate, |batch| model.candidate.forward(batch, &mut candidate_cache)).to_owned();
        let mut loss = InBatchSoftmax::default();
        let batch = Batch::new(queries.view(), candidates.view());
        assert!(!trainer.config.remove_accidental_hits && trainer.config.mixed_negatives.is_none());
        loss.compute(
            &batch,
            &LossConfig {
                temperature: trainer.config.temperature,
                num_hard_negatives: trainer.config.num_hard_negatives,
            },
        );
        let (mut query_grads, mut candidate_grads) =
            (TowerGrads::zeros_like(&model.query), TowerGrads::zeros_like(&model.candidate));
        model.query.backward(&mut query_cache, loss.query_grad(), &mut query_grads);
        model.candidate.backward(&mut candidate_cache, loss.candidate_grad(), &mut candidate_grads);
        opt_state.step(&trainer.adagrad, &mut model, &query_grads, &candidate_grads);

        assert!(model != initial, "the step moved the weights");
        assert_eq!(trainer.model, model, "weights");
        assert_eq!(trainer.opt_state, opt_state, "Adagrad accumulators");
        assert_eq!(grads.0, query_grads, "query gradients");
        assert_eq!(grads.1, candidate_grads, "candidate gradients");
    }
}
