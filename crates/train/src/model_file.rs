//! Model files: the fitted features, both towers and what recommendations need, behind a
//! versioned, checksummed header, written atomically (temporary file, fsync, rename) and checked
//! in full when read.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset 0   8 bytes  "TWOTOWER"
//! offset 8   u32      format version (2)
//! offset 12  u64      payload length in bytes
//! offset 20  u32      CRC-32 (IEEE) of the payload
//! offset 24  payload  bincode 1.x (fixed-width integers) of [`ModelFile`]; nothing may follow it
//! ```
//!
//! Reading checks, in order: header, version, length (truncation and trailing bytes), checksum,
//! decoding (bounded by the payload length, so a forged length field cannot allocate more than
//! the file holds), then [`ModelFile::validate`]: every shape against the configuration and the
//! vocabularies, every weight finite, every catalogue row id in range. A file that passes can be
//! served without a panic.

use std::path::{Path, PathBuf};

use bincode::Options;
use serde::{Deserialize, Serialize};
use towers::TwoTower;

use dataset::Dataset;

use crate::encode::candidate_strings;
use crate::fs::write_atomic;
use crate::{FeatureError, FittedFeatures, SeenRows, TrainConfig};

const MAGIC: &[u8; 8] = b"TWOTOWER";
/// Bumped whenever the layout or [`ModelFile`]'s encoding changes.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes before the payload: magic, version, length, checksum.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Everything needed to serve recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// The configuration the model was trained with.
    pub config: TrainConfig,
    /// The fitted preprocessing.
    pub features: FittedFeatures,
    /// Both towers.
    pub model: TwoTower,
    /// The catalogue, one entry per candidate row, in table order.
    pub catalogue: Vec<CatalogueRow>,
    /// Per query-id index: the catalogue rows interacted with in training (excluded from
    /// recommendations by default).
    pub seen: Vec<Vec<u32>>,
}

/// What the model needs of one candidate to embed and show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueRow {
    /// The candidate key in the source data.
    pub key: String,
    /// Its identity for the id embedding (the key, or e.g. the title).
    pub id: String,
    /// Its text, when the model has a text feature.
    pub text: Option<String>,
}

impl CatalogueRow {
    /// What to show for it: the text if any, else the key.
    pub fn display(&self) -> &str {
        self.text.as_deref().unwrap_or(&self.key)
    }
}

/// Why a model file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
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
    /// The file is shorter or longer than its header says.
    #[error("{}: the header announces a {expected}-byte payload but the file holds {found} bytes after the header ({}); the file is damaged", path.display(), if found < expected { "truncated" } else { "trailing bytes" })]
    Length {
        /// The file.
        path: PathBuf,
        /// Payload bytes announced by the header.
        expected: u64,
        /// Bytes present after the header.
        found: u64,
    },
    /// The payload's checksum does not match the header's.
    #[error("{}: checksum mismatch (CRC-32 {found:08x}, header says {expected:08x}); the file is damaged", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the payload.
        found: u32,
    },
    /// The payload does not decode.
    #[error("{}: corrupt model file: {problem}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder found.
        problem: String,
    },
    /// The payload decodes, but its parts disagree.
    #[error("{}: inconsistent model file: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field and what was expected.
        problem: String,
    },
}

/// The bincode options of the payload: fixed-width little-endian integers, no trailing bytes,
/// and at most `limit` bytes read (so no length field can make it allocate beyond the file).
fn codec(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().reject_trailing_bytes().with_limit(limit)
}

impl ModelFile {
    /// What a training run saves: its configuration, features and towers, the catalogue of
    /// `data`, and each query's training rows from `seen`.
    ///
    /// # Errors
    /// [`FeatureError`] when the feature columns are not in `data` (as when fitting).
    pub fn new(
        config: TrainConfig,
        features: FittedFeatures,
        model: TwoTower,
        data: &Dataset,
        seen: &SeenRows,
    ) -> Result<Self, FeatureError> {
        let (ids, text) = candidate_strings(data, &features.columns)?;
        let catalogue = (0..ids.len())
            .map(|row| CatalogueRow {
                key: data.candidates.key(row as u32).to_string(),
                id: ids[row].to_string(),
                text: text.as_ref().map(|t| t[row].to_string()),
            })
            .collect();
        let seen = (0..features.query_ids.len() as u32).map(|u| seen.of(u).to_vec()).collect();
        Ok(Self { config, features, model, catalogue, seen })
    }

    /// The file's bytes: header, then payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let payload = codec(u64::MAX).serialize(self).expect("a ModelFile always encodes");
        seal(&payload)
    }

    /// Writes to `path` atomically: a crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        write_atomic(path, &self.to_bytes()).map_err(|source| ModelFileError::Io {
            path: path.to_path_buf(),
            operation: "writing the model",
            source,
        })
    }

    /// Reads and checks a model file (see the module docs for every check).
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io {
            path: path.to_path_buf(),
            operation: "reading the model",
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Decodes and checks the bytes of a model file; `path` only names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelFileError> {
        let path_buf = || path.to_path_buf();
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Err(ModelFileError::NotAModelFile { path: path_buf() });
        };
        let Some((version, rest)) = rest.split_first_chunk::<4>() else {
            return Err(ModelFileError::NotAModelFile { path: path_buf() });
        };
        let found = u32::from_le_bytes(*version);
        if found != FORMAT_VERSION {
            return Err(ModelFileError::Version { path: path_buf(), found, expected: FORMAT_VERSION });
        }
        let (Some((length, rest)), true) = (rest.split_first_chunk::<8>(), rest.len() >= 12) else {
            return Err(ModelFileError::Length { path: path_buf(), expected: 0, found: 0 });
        };
        let (checksum, payload) = rest.split_first_chunk::<4>().expect("checked above");
        let expected = u64::from_le_bytes(*length);
        if expected != payload.len() as u64 {
            return Err(ModelFileError::Length { path: path_buf(), expected, found: payload.len() as u64 });
        }
        let (expected, found) = (u32::from_le_bytes(*checksum), crc32fast::hash(payload));
        if expected != found {
            return Err(ModelFileError::Checksum { path: path_buf(), expected, found });
        }
        let mut file: Self = codec(payload.len() as u64)
            .deserialize(payload)
            .map_err(|error| ModelFileError::Corrupt { path: path_buf(), problem: describe(&error) })?;
        file.validate().map_err(|problem| ModelFileError::Invalid { path: path_buf(), problem })?;
        file.features.rebuild_indices();
        Ok(file)
    }

    /// Checks that the parts agree: the configuration is valid, every tensor has the shape the
    /// configuration and the fitted vocabularies imply, every weight is finite, and every
    /// catalogue row and seen list is in range.
    ///
    /// # Errors
    /// A description naming the field and what was expected.
    pub fn validate(&self) -> Result<(), String> {
        let config = self.config.clone().validate().map_err(|e| format!("config: {e}"))?;
        self.features.check().map_err(|e| format!("features: {e}"))?;
        let sizes = self.features.vocabularies();
        self.model.check(config.model(), &sizes).map_err(|e| format!("model: {e}"))?;
        if self.catalogue.is_empty() {
            return Err("catalogue: empty".to_string());
        }
        let has_text = self.features.columns.candidate_text.is_some();
        if let Some(row) = self.catalogue.iter().position(|c| c.text.is_some() != has_text) {
            return Err(format!(
                "catalogue[{row}]: text present where the features have none, or missing where they have"
            ));
        }
        if self.seen.len() != sizes.n_query_ids {
            return Err(format!(
                "seen: {} lists, expected one per query-id index ({})",
                self.seen.len(),
                sizes.n_query_ids
            ));
        }
        let n_rows = self.catalogue.len();
        for (query, rows) in self.seen.iter().enumerate() {
            if let Some(row) = rows.iter().find(|&&row| row as usize >= n_rows) {
                return Err(format!("seen[{query}]: catalogue row {row}, expected below {n_rows}"));
            }
        }
        Ok(())
    }
}

/// `header ‖ payload` for a payload (used by [`ModelFile::to_bytes`]; public so that tests can
/// forge files whose checksum is right but whose content is not).
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The decoder's error in words (bincode's own text for a short read is empty).
fn describe(error: &bincode::Error) -> String {
    match &**error {
        bincode::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the payload ends before the model does".to_string()
        }
        bincode::ErrorKind::SizeLimit => "a length field points past the end of the payload".to_string(),
        other => other.to_string(),
    }
}
