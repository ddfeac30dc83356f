//! Model files: the fitted features, both towers and what recommendations need, behind a
//! versioned, checksummed header, written atomically (temporary file, fsync, rename) and checked
//! in full when read.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset 0   8 bytes  "TWOTOWER"
//! offset 8   u32      format version (3)
//! offset 12  u64      payload length in bytes
//! offset 20  u32      CRC-32 (IEEE) of the payload
//! offset 24  payload  bincode 1.x (fixed-width integers) of [`ModelFile`]; nothing may follow it
//! ```
//!
//! Reading checks, in order: header, version, length (truncation and trailing bytes), checksum,
//! decoding (bounded by the payload length, so a forged length field cannot allocate more than
//! the file holds), then [`ModelFile::validate`]: the spec against the fitted features, every
//! tensor's shape against both, every weight finite, every catalogue index and user row in
//! range. A file that passes can be served without a panic.

use std::path::{Path, PathBuf};

use bincode::Options;
use dataset::{Column, Dataset};
use serde::{Deserialize, Serialize};
use towers::TwoTower;

use crate::encode::{EncodedColumn, EncodedInput};
use crate::fitted::FittedFeature;
use crate::frame::{self, codec, describe, FrameError};
use crate::fs::write_atomic;
use crate::query::OwnedValue;
use crate::spec::{KEY, TIMESTAMP};
use crate::{Encoded, FittedFeatures, SeenRows, TrainConfig};

const MAGIC: &[u8; 8] = b"TWOTOWER";
/// Bumped whenever the layout or [`ModelFile`]'s encoding changes (3: spec-driven towers).
pub const FORMAT_VERSION: u32 = 3;
pub use crate::frame::HEADER_LEN;

/// Everything needed to serve recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// The configuration the model was trained with, spec included.
    pub config: TrainConfig,
    /// The fitted preprocessing of every feature.
    pub features: FittedFeatures,
    /// Both towers.
    pub model: TwoTower,
    /// The catalogue: keys, display names and encoded candidate features.
    pub catalogue: Catalogue,
    /// Every user of the training data, with what serving needs about it.
    pub users: Vec<KnownUser>,
}

/// The candidates, one entry per row in table order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    /// Candidate keys in the source data.
    pub keys: Vec<String>,
    /// What to show for each (a text column, else the key).
    pub names: Vec<String>,
    /// Per candidate feature, the encoded column over rows (the candidate tower's input).
    pub inputs: Vec<EncodedColumn>,
    /// Per row, its identity (rows sharing one are the same item for seen-filtering).
    pub identity: Vec<u32>,
}

/// What serving knows about a user of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownUser {
    /// The user key.
    pub key: String,
    /// Its query-table values for the columns the query features read.
    pub attributes: Vec<(String, OwnedValue)>,
    /// Catalogue rows of its training interactions, oldest first.
    pub history: Vec<u32>,
    /// Catalogue rows excluded from its recommendations by default (every row sharing an
    /// identity with a training interaction), ascending.
    pub seen: Vec<u32>,
}

impl Catalogue {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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

impl ModelFile {
    /// What a training run saves: its configuration, features and towers, the catalogue of
    /// `encoded`, and every user's attributes (from `data`), training history and seen rows.
    pub fn new(
        config: TrainConfig,
        features: FittedFeatures,
        model: TwoTower,
        data: &Dataset,
        encoded: &Encoded,
        train_rows: &[usize],
        seen: &SeenRows,
    ) -> Self {
        let inputs = encoded
            .candidate
            .iter()
            .map(|input| match input {
                EncodedInput::Gathered { column, of_example: None } => column.clone(),
                _ => unreachable!("candidate features are encoded per catalogue row"),
            })
            .collect();
        let catalogue = Catalogue {
            keys: data.candidates.keys().to_vec(),
            names: encoded.candidate_name.clone(),
            inputs,
            identity: encoded.candidate_identity.clone(),
        };
        let interactions = &data.interactions;
        let mut sorted = train_rows.to_vec();
        let time = |r: usize| interactions.timestamp.as_ref().map_or(0, |t| t[r]);
        sorted.sort_unstable_by_key(|&r| (interactions.query[r], time(r), r));
        let mut histories: Vec<Vec<u32>> = vec![Vec::new(); interactions.query_keys.len()];
        for &r in &sorted {
            histories[interactions.query[r] as usize].push(interactions.candidate[r]);
        }
        let columns: Vec<&str> = features
            .query
            .iter()
            .filter(|f| !matches!(f.fitted, FittedFeature::History { .. }) && f.column != KEY && f.column != TIMESTAMP)
            .map(|f| f.column.as_str())
            .collect();
        let users = interactions
            .query_keys
            .strings()
            .iter()
            .zip(histories)
            .enumerate()
            .map(|(user, (key, history))| KnownUser {
                key: key.clone(),
                attributes: attributes_of(data, key, &columns),
                history,
                seen: seen.of(user as u32).to_vec(),
            })
            .collect();
        Self { config, features, model, catalogue, users }
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
        let payload = frame::open(bytes, MAGIC, FORMAT_VERSION).map_err(|error| match error {
            FrameError::Foreign => ModelFileError::NotAModelFile { path: path_buf() },
            FrameError::Version(found) => ModelFileError::Version { path: path_buf(), found, expected: FORMAT_VERSION },
            FrameError::Length { expected, found } => ModelFileError::Length { path: path_buf(), expected, found },
            FrameError::Checksum { expected, found } => ModelFileError::Checksum { path: path_buf(), expected, found },
        })?;
        let file: Self = codec(payload.len() as u64)
            .deserialize(payload)
            .map_err(|error| ModelFileError::Corrupt { path: path_buf(), problem: describe(&error) })?;
        file.validate().map_err(|problem| ModelFileError::Invalid { path: path_buf(), problem })?;
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
        let shapes = self.features.model_config(&config.model).map_err(|e| format!("features: {e}"))?;
        let shapes = shapes.validate().map_err(|e| format!("features: {e}"))?;
        self.model.check(&shapes).map_err(|e| format!("model: {e}"))?;
        let catalogue = &self.catalogue;
        let n_rows = catalogue.len();
        if n_rows == 0 {
            return Err("catalogue: empty".to_string());
        }
        if catalogue.names.len() != n_rows || catalogue.identity.len() != n_rows {
            return Err(format!(
                "catalogue: {n_rows} keys but {} names and {} identities",
                catalogue.names.len(),
                catalogue.identity.len()
            ));
        }
        if catalogue.inputs.len() != shapes.candidate.inputs.len() {
            return Err(format!(
                "catalogue: {} encoded inputs for {} candidate features",
                catalogue.inputs.len(),
                shapes.candidate.inputs.len()
            ));
        }
        for (column, shape) in catalogue.inputs.iter().zip(&shapes.candidate.inputs) {
            let kind_matches = matches!(
                (column, shape.kind),
                (EncodedColumn::Ids(_), towers::InputKind::Lookup)
                    | (EncodedColumn::Bags(_), towers::InputKind::Bag)
                    | (EncodedColumn::Values(_), towers::InputKind::Numeric)
            );
            if !kind_matches || column.len() != n_rows {
                return Err(format!(
                    "catalogue input {:?}: {} rows of the wrong kind or length (expected {n_rows} for a {:?} input)",
                    shape.name,
                    column.len(),
                    shape.kind
                ));
            }
            if let Some(max) = column.max_index().filter(|&m| m as usize >= shape.rows) {
                return Err(format!(
                    "catalogue input {:?}: index {max}, the table has {} rows",
                    shape.name, shape.rows
                ));
            }
            if let EncodedColumn::Values(values) = column {
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return Err(format!("catalogue input {:?}: value {v}, expected finite", shape.name));
                }
            }
        }
        for (u, user) in self.users.iter().enumerate() {
            if let Some(row) = user.history.iter().chain(&user.seen).find(|&&row| row as usize >= n_rows) {
                return Err(format!("users[{u}] ({}): catalogue row {row}, expected below {n_rows}", user.key));
            }
        }
        Ok(())
    }
}

/// The query-table values of `key` for `columns` (none without a query table or row).
fn attributes_of(data: &Dataset, key: &str, columns: &[&str]) -> Vec<(String, OwnedValue)> {
    let Some((table, row)) = data.queries.as_ref().and_then(|t| t.row_of(key).map(|r| (t, r as usize))) else {
        return Vec::new();
    };
    columns
        .iter()
        .filter_map(|&name| {
            let value = match table.column(name)? {
                column @ Column::String { .. } => OwnedValue::Str(column.string(row)?.to_string()),
                Column::Integer(v) | Column::Timestamp(v) => OwnedValue::Int(v[row]),
                Column::Float(v) => OwnedValue::Float(v[row]),
                column @ Column::StringList { .. } => {
                    OwnedValue::List(column.list(row)?.into_iter().map(str::to_string).collect())
                }
            };
            Some((name.to_string(), value))
        })
        .collect()
}

/// `header ‖ payload` for a payload (used by [`ModelFile::to_bytes`]; public so that tests can
/// forge files whose checksum is right but whose content is not).
pub fn seal(payload: &[u8]) -> Vec<u8> {
    frame::seal(MAGIC, FORMAT_VERSION, payload)
}
