//! Fitting the Keras-exact features on a neutral dataset, and encoding interactions and
//! catalogue rows as index columns.
//!
//! Which columns feed the towers is a [`FeatureColumns`]: the query id is always the
//! interaction's query key and the time its timestamp; the candidate's identity is the
//! candidate key or another column (the TFRS tutorials use the *title*, so duplicated titles
//! share one embedding), and its text, if any, is a string column.

use dataset::{Column, Dataset};
use features::{Buckets, Normalizer, TextVectorizer, Vocabulary};
use serde::{Deserialize, Serialize};
use tensor::Bags;
use towers::Vocabularies;

/// Time buckets of the tutorials: 1000 boundaries from min to max.
const N_BOUNDARIES: usize = 1000;
/// `TextVectorization(max_tokens=10_000)`.
const MAX_TOKENS: usize = 10_000;

/// The candidate-table columns that feed the candidate tower.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureColumns {
    /// The string column that identifies a candidate for its id embedding; `None`: the key.
    pub candidate_id: Option<String>,
    /// The string column tokenised for the text feature, if any.
    pub candidate_text: Option<String>,
}

impl FeatureColumns {
    /// The TFRS MovieLens tutorials: the title is both the identity and the text.
    pub fn tutorial() -> Self {
        Self { candidate_id: Some("title".into()), candidate_text: Some("title".into()) }
    }
}

/// Why the dataset cannot feed the towers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// A named column is missing or is not a string column.
    #[error("candidate column {name:?} ({role}): {problem}; the candidate table has {available}")]
    Column {
        /// The column.
        name: String,
        /// What it was for.
        role: &'static str,
        /// What is wrong.
        problem: &'static str,
        /// The table's columns, for the message.
        available: String,
    },
}

/// The data a model configuration needs, and why it is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The candidate tower uses text but no text column was chosen.
    #[error("the candidate tower uses text (IdAndText), but no candidate text column was given; name a string column of the candidate table")]
    NoText,
    /// The query tower uses time but the interactions have none.
    #[error("the query tower uses time (IdAndTime), but the interactions have no timestamp column")]
    NoTimestamps,
}

/// Checks that `data` and `columns` provide every input the towers of `model` read.
///
/// # Errors
/// [`InputError`] naming what is missing.
pub fn check_inputs(model: &towers::ModelConfig, columns: &FeatureColumns, data: &Dataset) -> Result<(), InputError> {
    if model.candidate_features == towers::CandidateFeatures::IdAndText && columns.candidate_text.is_none() {
        return Err(InputError::NoText);
    }
    if model.query_features == towers::QueryFeatures::IdAndTime && data.interactions.timestamp.is_none() {
        return Err(InputError::NoTimestamps);
    }
    Ok(())
}

/// Which interactions the query-side preprocessing (query-id vocabulary, time buckets and
/// normalisation) is adapted on. Candidate-side layers always adapt on the whole catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FitScope {
    /// Every interaction, test included: what the TFRS tutorials do.
    #[default]
    AllInteractions,
    /// The training rows only: nothing about validation or test leaks into the features; their
    /// unseen users map to the OOV id.
    TrainingRows,
}

/// The adapted preprocessing layers, frozen; saved inside model files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedFeatures {
    /// Which candidate columns were used.
    pub columns: FeatureColumns,
    /// Which interactions the query-side layers were adapted on.
    pub fitted_on: FitScope,
    /// Byte-sorted unique query keys (`np.unique`), OOV at 0.
    pub query_ids: Vocabulary,
    /// Byte-sorted unique candidate identities, OOV at 0.
    pub candidate_ids: Vocabulary,
    /// `np.linspace(min_ts, max_ts, 1000)` boundaries.
    pub buckets: Buckets,
    /// Normalisation adapted on every timestamp in source order.
    pub normalizer: Normalizer,
    /// Text tokens adapted on the text column in row order (empty without one).
    pub text: TextVectorizer,
    /// The latest timestamp seen when fitting (the default "now" for recommendations).
    pub max_timestamp: i64,
}

/// Per candidate row, its identity and its text (or `None` without a text column).
pub(crate) fn candidate_strings<'a>(
    data: &'a Dataset,
    columns: &FeatureColumns,
) -> Result<(Vec<&'a str>, Option<Vec<&'a str>>), FeatureError> {
    let table = &data.candidates;
    let string_column = |name: &str, role: &'static str| -> Result<Vec<&'a str>, FeatureError> {
        let fail = |problem| FeatureError::Column {
            name: name.to_string(),
            role,
            problem,
            available: table.column_names().join(", "),
        };
        match table.column(name) {
            Some(column @ Column::String { .. }) => {
                Ok((0..table.n_rows()).map(|row| column.string(row).expect("in range")).collect())
            }
            Some(_) => Err(fail("not a string column")),
            None => Err(fail("no such column")),
        }
    };
    let ids = match &columns.candidate_id {
        Some(name) => string_column(name, "candidate id")?,
        None => table.keys().iter().map(String::as_str).collect(),
    };
    let text = columns.candidate_text.as_deref().map(|name| string_column(name, "candidate text")).transpose()?;
    Ok((ids, text))
}

impl FittedFeatures {
    /// Adapts every layer exactly as the tutorials do (on all interactions and all candidates).
    ///
    /// # Errors
    /// [`FeatureError`] when a named column is missing or not text.
    pub fn fit(data: &Dataset, columns: &FeatureColumns) -> Result<Self, FeatureError> {
        Self::fit_on(data, columns, None)
    }

    /// [`Self::fit`], adapting the query-side layers on `rows` only (in ascending index order)
    /// when given ([`FitScope::TrainingRows`]).
    ///
    /// # Errors
    /// [`FeatureError`] when a named column is missing or not text.
    pub fn fit_on(data: &Dataset, columns: &FeatureColumns, rows: Option<&[usize]>) -> Result<Self, FeatureError> {
        let (ids, text) = candidate_strings(data, columns)?;
        let interactions = &data.interactions;
        let all_timestamps = interactions.timestamp.as_deref().unwrap_or(&[]);
        let (timestamps, query_keys): (Vec<i64>, Vec<&str>) = match rows {
            None => (all_timestamps.to_vec(), interactions.query_keys.strings().iter().map(String::as_str).collect()),
            Some(rows) => {
                let mut sorted = rows.to_vec();
                sorted.sort_unstable();
                let timestamps = if all_timestamps.is_empty() {
                    Vec::new()
                } else {
                    sorted.iter().map(|&r| all_timestamps[r]).collect()
                };
                (timestamps, sorted.iter().map(|&r| interactions.query_key(r)).collect())
            }
        };
        let min = timestamps.iter().copied().min().unwrap_or(0);
        let max = timestamps.iter().copied().max().unwrap_or(0);
        Ok(Self {
            columns: columns.clone(),
            fitted_on: if rows.is_some() { FitScope::TrainingRows } else { FitScope::AllInteractions },
            query_ids: Vocabulary::from_sorted_unique(query_keys),
            candidate_ids: Vocabulary::from_sorted_unique(ids.iter().copied()),
            buckets: Buckets::linspace(min as f64, max as f64, N_BOUNDARIES),
            normalizer: Normalizer::adapt(&timestamps),
            text: TextVectorizer::adapt(text.unwrap_or_default(), MAX_TOKENS),
            max_timestamp: max,
        })
    }

    /// Embedding table sizes for the towers.
    pub fn vocabularies(&self) -> Vocabularies {
        Vocabularies {
            n_query_ids: self.query_ids.len(),
            n_buckets: self.buckets.n_buckets(),
            n_candidate_ids: self.candidate_ids.len(),
            n_tokens: self.text.len(),
        }
    }

    /// Checks what deserialising cannot: bucket boundaries ordered, normalisation finite.
    ///
    /// # Errors
    /// A description naming the feature.
    pub fn check(&self) -> Result<(), String> {
        self.buckets.check().map_err(|e| format!("time buckets: {e}"))?;
        let Normalizer { mean, variance } = self.normalizer;
        if !(mean.is_finite() && variance.is_finite() && variance >= 0.0) {
            return Err(format!("time normalisation: mean {mean}, variance {variance}; expected finite, variance ≥ 0"));
        }
        Ok(())
    }

    /// Rebuilds lookup tables after deserialising.
    pub fn rebuild_indices(&mut self) {
        self.query_ids.rebuild_index();
        self.candidate_ids.rebuild_index();
        self.text.rebuild_index();
    }
}

/// A dataset encoded by [`FittedFeatures`]: one column per feature.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Per interaction: query-id index.
    pub query: Vec<u32>,
    /// Per interaction: time bucket.
    pub bucket: Vec<u32>,
    /// Per interaction: normalised time.
    pub normalized_timestamp: Vec<f32>,
    /// Per interaction: the candidate's row in the catalogue.
    pub candidate_row: Vec<u32>,
    /// Per catalogue row: candidate-id index.
    pub candidate_id: Vec<u32>,
    /// Per catalogue row: text token ids (empty without text).
    pub candidate_tokens: Vec<Vec<u32>>,
    /// Per catalogue row: a display name (the text column, else the key), for reports.
    pub candidate_name: Vec<String>,
}

impl Encoded {
    /// Encodes every interaction and catalogue row.
    ///
    /// # Errors
    /// [`FeatureError`] when a named column is missing or not text.
    pub fn new(data: &Dataset, features: &FittedFeatures) -> Result<Self, FeatureError> {
        let (ids, text) = candidate_strings(data, &features.columns)?;
        let interactions = &data.interactions;
        let n = interactions.len();
        let query_index: Vec<u32> =
            interactions.query_keys.strings().iter().map(|key| features.query_ids.lookup(key)).collect();
        let mut encoded = Self {
            query: interactions.query.iter().map(|&q| query_index[q as usize]).collect(),
            bucket: Vec::with_capacity(n),
            normalized_timestamp: Vec::with_capacity(n),
            candidate_row: interactions.candidate.clone(),
            candidate_id: ids.iter().map(|id| features.candidate_ids.lookup(id)).collect(),
            candidate_tokens: match &text {
                Some(text) => text.iter().map(|t| features.text.encode(t)).collect(),
                None => vec![Vec::new(); ids.len()],
            },
            candidate_name: match &text {
                Some(text) => text.iter().map(|t| (*t).to_string()).collect(),
                None => data.candidates.keys().to_vec(),
            },
        };
        match &interactions.timestamp {
            Some(timestamps) => {
                for &t in timestamps {
                    encoded.bucket.push(features.buckets.bucketize(t));
                    encoded.normalized_timestamp.push(features.normalizer.normalize(t));
                }
            }
            None => {
                encoded.bucket.resize(n, 0);
                encoded.normalized_timestamp.resize(n, 0.0);
            }
        }
        Ok(encoded)
    }

    /// Number of catalogue rows.
    pub fn n_candidates(&self) -> usize {
        self.candidate_id.len()
    }

    /// The token bags of catalogue rows `rows`, into `bags`.
    pub fn fill_bags(&self, rows: impl ExactSizeIterator<Item = u32>, bags: &mut Bags) {
        bags.clear();
        let longest = self.candidate_tokens.iter().map(Vec::len).max().unwrap_or(0);
        bags.reserve(rows.len(), longest);
        for row in rows {
            bags.push(&self.candidate_tokens[row as usize]);
        }
    }
}
