//! Model files: the fitted features, both towers and what recommendations need, behind a
//! versioned header, written atomically (temporary file, fsync, rename).
//!
//! Layout: the 8 bytes `TWOTOWER`, a little-endian `u32` format version, then the bincode
//! (1.x) encoding of [`ModelFile`].

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use towers::TwoTower;

use crate::{FittedFeatures, TrainConfig};

const MAGIC: &[u8; 8] = b"TWOTOWER";
/// Bumped whenever [`ModelFile`]'s encoding changes.
pub const FORMAT_VERSION: u32 = 1;

/// Everything needed to serve recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// The configuration the model was trained with.
    pub config: TrainConfig,
    /// The fitted preprocessing.
    pub features: FittedFeatures,
    /// Both towers.
    pub model: TwoTower,
    /// The catalogue, in `u.item` order: movie id and title per row.
    pub movies: Vec<(u32, String)>,
    /// Per user index: the catalogue rows rated in training (excluded from recommendations by default).
    pub seen: Vec<Vec<u32>>,
}

/// Why a model file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// File system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not start with the magic bytes.
    #[error("{}: not a twotower model file (missing the TWOTOWER header)", path.display())]
    NotAModelFile {
        /// The file.
        path: PathBuf,
    },
    /// Written by another format version.
    #[error("{}: model file format version {found}, this build reads version {expected}; retrain or use the matching build", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The payload does not decode.
    #[error("{}: corrupt model file: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: bincode::Error,
    },
}

impl ModelFile {
    /// Writes to `path` atomically: a crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        let io = |source| ModelFileError::Io { path: path.to_path_buf(), source };
        let mut bytes = Vec::with_capacity(1 << 20);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bincode::serialize_into(&mut bytes, self)
            .map_err(|source| ModelFileError::Corrupt { path: path.to_path_buf(), source })?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io { path: path.to_path_buf(), source })?;
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Err(ModelFileError::NotAModelFile { path: path.to_path_buf() });
        };
        let Some((version, payload)) = rest.split_first_chunk::<4>() else {
            return Err(ModelFileError::NotAModelFile { path: path.to_path_buf() });
        };
        let found = u32::from_le_bytes(*version);
        if found != FORMAT_VERSION {
            return Err(ModelFileError::Version { path: path.to_path_buf(), found, expected: FORMAT_VERSION });
        }
        let mut file: Self = bincode::deserialize(payload)
            .map_err(|source| ModelFileError::Corrupt { path: path.to_path_buf(), source })?;
        file.features.rebuild_indices();
        Ok(file)
    }
}
