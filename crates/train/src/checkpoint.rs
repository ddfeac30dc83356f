//! Checkpoints: everything a run needs to continue bit for bit after an interruption — the
//! weights, the Adagrad accumulators, the positions of both RNGs (batch order, mixed negatives),
//! the streaming logQ estimator, the history so far — in `DIR/checkpoint.bin`.
//!
//! The file is framed as a model file (`frame.rs`: magic `TTCHECKP`, format version 1, length,
//! CRC-32), with a bincode payload of [`Checkpoint`].
//!
//! Written through `fs::write_atomic`, so a crash while writing leaves the previous checkpoint.
//! Resuming checks the configuration (only `epochs` may differ, to extend a run) and a
//! fingerprint of the training data, so a checkpoint cannot silently continue another run.

use std::path::{Path, PathBuf};

use bincode::Options;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use towers::TwoTower;

use crate::frame::{self, codec, describe, FrameError};
use crate::fs::write_atomic;
use crate::trainer::FitProgress;
use crate::{ModelOptState, TrainConfig, Trainer};

const MAGIC: &[u8; 8] = b"TTCHECKP";
const VERSION: u32 = 1;
/// The file name inside the checkpoint directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

/// A run between two epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The run's configuration.
    pub config: TrainConfig,
    /// The weights.
    pub model: TwoTower,
    opt_state: ModelOptState,
    negatives_rng: ChaCha8Rng,
    progress: FitProgress,
}

/// Why a checkpoint cannot be read or resumed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{}: {operation}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Not a checkpoint, another version, damaged or inconsistent.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The run asked to resume is not the run the checkpoint holds.
    #[error("{}: the checkpoint holds another run: {problem}", path.display())]
    OtherRun {
        /// The file.
        path: PathBuf,
        /// What differs.
        problem: String,
    },
}

/// What a checkpoint serialises, borrowed from the trainer so that writing copies no weights;
/// it encodes exactly as [`Checkpoint`] decodes.
#[derive(Serialize)]
struct CheckpointRef<'a> {
    config: &'a TrainConfig,
    model: &'a TwoTower,
    opt_state: &'a ModelOptState,
    negatives_rng: &'a ChaCha8Rng,
    progress: &'a FitProgress,
}

/// Writes the trainer's state after `progress.epochs_done` epochs into `dir/checkpoint.bin`.
pub(crate) fn write(trainer: &Trainer, progress: &FitProgress, dir: &Path) -> std::io::Result<()> {
    let (opt_state, negatives_rng) = trainer.parts();
    let checkpoint =
        CheckpointRef { config: trainer.config(), model: &trainer.model, opt_state, negatives_rng, progress };
    let payload = codec(u64::MAX).serialize(&checkpoint).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    write_atomic(&dir.join(CHECKPOINT_FILE), &frame::seal(MAGIC, VERSION, &payload))
}

impl Checkpoint {
    /// Reads and checks `dir/checkpoint.bin`.
    ///
    /// # Errors
    /// [`CheckpointError`] naming the file and what is wrong.
    pub fn load(dir: &Path) -> Result<Self, CheckpointError> {
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Io {
            path: path.clone(),
            operation: "reading the checkpoint",
            source,
        })?;
        let invalid = |problem: String| CheckpointError::Invalid { path: path.clone(), problem };
        let payload = frame::open(&bytes, MAGIC, VERSION).map_err(|error| {
            invalid(match error {
                FrameError::Foreign => "not a twotower checkpoint".to_string(),
                FrameError::Version(found) => format!("checkpoint format {found}, this build reads {VERSION}"),
                FrameError::Length { expected, found } => {
                    format!("the header announces {expected} bytes, the file holds {found}; the file is damaged")
                }
                FrameError::Checksum { .. } => "checksum mismatch; the file is damaged".to_string(),
            })
        })?;
        let checkpoint: Self = codec(payload.len() as u64)
            .deserialize(payload)
            .map_err(|e| invalid(format!("corrupt checkpoint: {}", describe(&e))))?;
        if !checkpoint.opt_state.fits(&checkpoint.model) {
            return Err(invalid("the optimizer state does not fit the model".into()));
        }
        Ok(checkpoint)
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.progress.epochs_done
    }

    /// A trainer that continues this run under `config`, which must equal the checkpoint's
    /// except for `epochs` (at least the epochs done). [`Trainer::fit`] on the same data then
    /// runs the remaining epochs exactly as the uninterrupted run would have, and returns the
    /// whole history.
    ///
    /// # Errors
    /// [`CheckpointError::OtherRun`] naming what differs; `dir` names the checkpoint.
    pub fn resume(self, config: crate::ValidTrainConfig, dir: &Path) -> Result<Trainer, CheckpointError> {
        let other = |problem: String| CheckpointError::OtherRun { path: dir.join(CHECKPOINT_FILE), problem };
        let mut expected = self.config.clone();
        expected.epochs = config.epochs;
        if *config != expected {
            return Err(other(format!(
                "its configuration differs from this one (seed {} vs {}, …); only --epochs may change",
                self.config.seed, config.seed
            )));
        }
        if config.epochs < self.progress.epochs_done {
            return Err(other(format!(
                "it has run {} epochs, more than the {} asked for",
                self.progress.epochs_done, config.epochs
            )));
        }
        Ok(Trainer::from_parts(config, self.model, self.opt_state, self.negatives_rng, Some(self.progress)))
    }
}
