//! Checkpoints: everything a run needs to continue bit for bit after an interruption — the
//! weights, the Adagrad accumulators, the positions of both RNGs (batch order, mixed negatives),
//! the streaming logQ estimator, the history so far — in `DIR/checkpoint.bin`.
//!
//! ```text
//! offset 0   8 bytes  "TTCHECKP"
//! offset 8   u32      format version (1)
//! offset 12  u64      payload length
//! offset 20  u32      CRC-32 of the payload
//! offset 24  payload  bincode 1.x of `Checkpoint`
//! ```
//!
//! Written through `fs::write_atomic`, so a crash while writing leaves the previous checkpoint.
//! Resuming checks the configuration (only `epochs` may differ, to extend a run) and a
//! fingerprint of the training data, so a checkpoint cannot silently continue another run.

use std::path::{Path, PathBuf};

use bincode::Options;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use towers::TwoTower;

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

fn codec(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().reject_trailing_bytes().with_limit(limit)
}

/// Writes the trainer's state after `progress.epochs_done` epochs into `dir/checkpoint.bin`.
pub(crate) fn write(trainer: &Trainer, progress: &FitProgress, dir: &Path) -> std::io::Result<()> {
    let (opt_state, negatives_rng, _) = trainer.parts();
    let checkpoint = Checkpoint {
        config: (**trainer.config()).clone(),
        model: trainer.model.clone(),
        opt_state: opt_state.clone(),
        negatives_rng: negatives_rng.clone(),
        progress: progress.clone(),
    };
    let payload = codec(u64::MAX).serialize(&checkpoint).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(24 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    std::fs::create_dir_all(dir)?;
    write_atomic(&dir.join(CHECKPOINT_FILE), &bytes)
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
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(invalid("not a twotower checkpoint".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(invalid(format!("checkpoint format {version}, this build reads {VERSION}")));
        }
        let length = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let payload = &bytes[24..];
        if length != payload.len() as u64 {
            return Err(invalid(format!("the header announces {length} bytes, the file holds {}", payload.len())));
        }
        let checksum = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
        if checksum != crc32fast::hash(payload) {
            return Err(invalid("checksum mismatch; the file is damaged".into()));
        }
        let checkpoint: Self =
            codec(length).deserialize(payload).map_err(|e| invalid(format!("corrupt checkpoint: {e}")))?;
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
        Ok(Trainer::from_parts(config, self.model, self.opt_state, self.negatives_rng, self.progress))
    }
}
