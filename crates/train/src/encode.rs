//! Fitting the spec's features on a neutral dataset, and encoding interactions and catalogue
//! rows as input columns for the towers.
//!
//! Every feature reads a *source*: per user (`$key`, query-table columns), per interaction
//! (`$timestamp`, `history`) or per catalogue row (candidate `$key` and columns). A source is
//! encoded once per source row and gathered per example when a batch is built, so a user
//! attribute costs one entry per user, not per interaction.

use dataset::{Column, Dataset};
use features::{Buckets, Hashing, Normalizer, StringLookup, TextVectorizer};
use serde::{Deserialize, Serialize};
use tensor::Bags;
use towers::{InputShape, ModelConfig, TowerConfig};

use crate::fitted::{Encoding, FittedFeature, Value};
use crate::spec::{
    Boundaries, FeatureKind, FeatureSpec, ModelSpec, Side, SpecError, DEFAULT_HISTORY_LENGTH, DEFAULT_MAX_TOKENS, KEY,
    TIMESTAMP,
};

/// `Discretization(epsilon=0.01)`, Keras' default accuracy of adapted quantiles.
const QUANTILE_EPSILON: f64 = 0.01;

/// Why the dataset cannot feed a spec's features.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// A column is missing or of the wrong type.
    #[error("{0}")]
    Column(Box<ColumnIssue>),
    /// A query-table feature for data without a query table.
    #[error("query feature {feature:?} reads column {column:?} of the query (user) table, but the data has none (give --queries FILE, or for MovieLens 100k put u.user beside u.data)")]
    NoQueryTable {
        /// The feature.
        feature: String,
        /// The column.
        column: String,
    },
    /// A user of the interactions has no row in the query table.
    #[error("query feature {feature:?}: user {user:?} has no row in the query table")]
    MissingQueryRow {
        /// The feature.
        feature: String,
        /// The user key.
        user: String,
    },
    /// The interactions have no timestamps, but a feature needs them.
    #[error("query feature {feature:?} reads $timestamp, but the interactions have no timestamp column (give --timestamp COL, or remove the feature)")]
    NoTimestamps {
        /// The feature.
        feature: String,
    },
    /// A value cannot be encoded.
    #[error("{tower} feature {feature:?}, row {row}: {problem}")]
    Value {
        /// `query` or `candidate`.
        tower: &'static str,
        /// The feature.
        feature: String,
        /// The source row.
        row: usize,
        /// What was expected.
        problem: String,
    },
    /// The spec itself is impossible (checked again here, so an unvalidated spec is an error).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A fitted layer could not be built.
    #[error("{tower} feature {feature:?}: {problem}")]
    Fit {
        /// `query` or `candidate`.
        tower: &'static str,
        /// The feature.
        feature: String,
        /// What went wrong.
        problem: String,
    },
}

/// A column a feature cannot read, and what the table has instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tower} feature {feature:?}: column {column:?}: {problem}; the {table} has {available}")]
pub struct ColumnIssue {
    /// `query` or `candidate`.
    pub tower: &'static str,
    /// The feature's name.
    pub feature: String,
    /// The column.
    pub column: String,
    /// What is wrong.
    pub problem: String,
    /// Which table was searched.
    pub table: &'static str,
    /// Its columns, for the message.
    pub available: String,
}

/// Which interactions the query-side preprocessing is adapted on. Candidate-side layers always
/// adapt on the whole catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FitScope {
    /// Every interaction, test included: what the TFRS tutorials do.
    #[default]
    AllInteractions,
    /// The training rows only: nothing about validation or test leaks into the features.
    TrainingRows,
}

/// One fitted feature with the spec entry it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedInput {
    /// The feature's name.
    pub name: String,
    /// `$key`, `$timestamp`, a column, or `""` for a history.
    pub column: String,
    /// The frozen layer.
    pub fitted: FittedFeature,
}

/// The adapted preprocessing of both towers, frozen; saved inside model files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedFeatures {
    /// Query-tower features, in spec order.
    pub query: Vec<FittedInput>,
    /// Candidate-tower features, in spec order.
    pub candidate: Vec<FittedInput>,
    /// Which interactions the query side was adapted on.
    pub fitted_on: FitScope,
    /// Earliest and latest fitted timestamps (the default "now" of a query is the latest).
    pub time_range: Option<(i64, i64)>,
}

/// The values of one source, indexed by source row.
enum Values<'a> {
    Strings(Vec<&'a str>),
    Integers(&'a [i64]),
    Floats(&'a [f64]),
    Lists(&'a Column),
}

impl Values<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Strings(v) => v.len(),
            Self::Integers(v) => v.len(),
            Self::Floats(v) => v.len(),
            Self::Lists(c) => c.len(),
        }
    }

    fn with_value<T>(&self, row: usize, f: impl FnOnce(Value<'_>) -> T) -> T {
        match self {
            Self::Strings(v) => f(Value::Str(v[row])),
            Self::Integers(v) => f(Value::Int(v[row])),
            Self::Floats(v) => f(Value::Float(v[row])),
            Self::Lists(c) => f(Value::List(&c.list(row).expect("row in range"))),
        }
    }
}

/// A feature's source: values per source row, and each example's source row (`None`: the
/// examples are the source rows).
struct Source<'a> {
    values: Values<'a>,
    of_example: Option<Vec<u32>>,
    /// Source rows to adapt on, ascending.
    fit_rows: Vec<usize>,
}

fn describe_columns(columns: &[(String, Column)]) -> String {
    let names: Vec<String> = columns.iter().map(|(n, c)| format!("{n} ({:?})", c.kind())).collect();
    if names.is_empty() {
        "no columns".to_string()
    } else {
        names.join(", ")
    }
}

fn column_values<'a>(column: &'a Column) -> Values<'a> {
    match column {
        Column::String { .. } => {
            Values::Strings((0..column.len()).map(|r| column.string(r).expect("in range")).collect())
        }
        Column::Integer(v) | Column::Timestamp(v) => Values::Integers(v),
        Column::Float(v) => Values::Floats(v),
        Column::StringList { .. } => Values::Lists(column),
    }
}

/// Resolves where `feature` (on `side`) reads its values.
fn source<'a>(
    data: &'a Dataset,
    side: Side,
    feature: &FeatureSpec,
    train_rows: Option<&[usize]>,
) -> Result<Source<'a>, FeatureError> {
    let interactions = &data.interactions;
    let name = feature.name();
    let sorted_train = || {
        let mut rows = train_rows.unwrap_or(&[]).to_vec();
        rows.sort_unstable();
        rows
    };
    match (side, feature.column()) {
        (Side::Query, KEY) => {
            let keys: Vec<&str> = interactions.query_keys.strings().iter().map(String::as_str).collect();
            let fit_rows = match train_rows {
                None => (0..keys.len()).collect(),
                Some(rows) => {
                    let mut users: Vec<usize> = rows.iter().map(|&r| interactions.query[r] as usize).collect();
                    users.sort_unstable();
                    users.dedup();
                    users
                }
            };
            Ok(Source { values: Values::Strings(keys), of_example: Some(interactions.query.clone()), fit_rows })
        }
        (Side::Query, TIMESTAMP) => {
            let timestamps = interactions.timestamp.as_deref().ok_or(FeatureError::NoTimestamps { feature: name })?;
            let fit_rows = if train_rows.is_some() { sorted_train() } else { (0..timestamps.len()).collect() };
            Ok(Source { values: Values::Integers(timestamps), of_example: None, fit_rows })
        }
        (Side::Query, column) => {
            let table = data
                .queries
                .as_ref()
                .ok_or_else(|| FeatureError::NoQueryTable { feature: name.clone(), column: column.to_string() })?;
            let values = table.column(column).map(column_values).ok_or_else(|| {
                FeatureError::Column(Box::new(ColumnIssue {
                    tower: "query",
                    feature: name.clone(),
                    column: column.to_string(),
                    problem: "no such column".to_string(),
                    table: "query table",
                    available: describe_columns(table.columns()),
                }))
            })?;
            let user_rows: Vec<Option<u32>> =
                interactions.query_keys.strings().iter().map(|key| table.row_of(key)).collect();
            let mut of_example = Vec::with_capacity(interactions.len());
            for &user in &interactions.query {
                match user_rows[user as usize] {
                    Some(row) => of_example.push(row),
                    None => {
                        return Err(FeatureError::MissingQueryRow {
                            feature: name,
                            user: interactions.query_keys.resolve(user).to_string(),
                        })
                    }
                }
            }
            let fit_rows = match train_rows {
                None => (0..table.n_rows()).collect(),
                Some(rows) => {
                    let mut fit: Vec<usize> = rows.iter().map(|&r| of_example[r] as usize).collect();
                    fit.sort_unstable();
                    fit.dedup();
                    fit
                }
            };
            Ok(Source { values, of_example: Some(of_example), fit_rows })
        }
        (Side::Candidate, KEY) => {
            let keys: Vec<&str> = data.candidates.keys().iter().map(String::as_str).collect();
            let fit_rows = (0..keys.len()).collect();
            Ok(Source { values: Values::Strings(keys), of_example: None, fit_rows })
        }
        (Side::Candidate, column) => {
            let table = &data.candidates;
            let values = table.column(column).map(column_values).ok_or_else(|| {
                FeatureError::Column(Box::new(ColumnIssue {
                    tower: "candidate",
                    feature: name.clone(),
                    column: column.to_string(),
                    problem: "no such column".to_string(),
                    table: "candidate table",
                    available: describe_columns(table.columns()),
                }))
            })?;
            Ok(Source { values, of_example: None, fit_rows: (0..table.n_rows()).collect() })
        }
    }
}

/// Adapts one feature on its source.
fn fit_feature(
    data: &Dataset,
    side: Side,
    feature: &FeatureSpec,
    source: Option<&Source<'_>>,
) -> Result<FittedFeature, FeatureError> {
    let fail = |problem: String| FeatureError::Fit { tower: side.name(), feature: feature.name(), problem };
    let wrong_type = |expected: &str| {
        FeatureError::Column(Box::new(ColumnIssue {
            tower: side.name(),
            feature: feature.name(),
            column: feature.column().to_string(),
            problem: format!("a {} feature needs {expected}", feature.kind.name()),
            table: if side == Side::Query { "query table" } else { "candidate table" },
            available: describe_columns(if side == Side::Query {
                data.queries.as_ref().map_or(&[][..], |t| t.columns())
            } else {
                data.candidates.columns()
            }),
        }))
    };
    let Some(source) = source else {
        let length = feature.length.unwrap_or(DEFAULT_HISTORY_LENGTH);
        return Ok(FittedFeature::History { n_candidates: data.candidates.n_rows(), length });
    };
    let rows = &source.fit_rows;
    let numbers = || -> Result<Vec<f64>, FeatureError> {
        match &source.values {
            Values::Integers(v) => Ok(rows.iter().map(|&r| v[r] as f64).collect()),
            Values::Floats(v) => Ok(rows.iter().map(|&r| v[r]).filter(|x| x.is_finite()).collect()),
            _ => Err(wrong_type("an integer, timestamp or float column")),
        }
    };
    let num_oov = u32::try_from(feature.num_oov.unwrap_or(1)).expect("checked by the spec");
    match feature.kind {
        FeatureKind::Id => {
            if let Some(bins) = feature.hash_bins {
                return Hashing::new(bins as u64, None).map(FittedFeature::Hashed).map_err(|e| fail(e.to_string()));
            }
            let mut vocabulary: Vec<String> = match &source.values {
                Values::Strings(v) => rows.iter().map(|&r| v[r].to_string()).collect(),
                Values::Integers(v) => rows.iter().map(|&r| v[r].to_string()).collect(),
                _ => return Err(wrong_type("a string or integer column")),
            };
            vocabulary.sort_unstable();
            vocabulary.dedup();
            StringLookup::new(vocabulary, num_oov, None).map(FittedFeature::Lookup).map_err(|e| fail(e.to_string()))
        }
        FeatureKind::Bucketized => {
            let buckets = match feature.boundaries.as_ref().expect("checked by the spec") {
                Boundaries::Values(values) => Buckets::new(values.clone()),
                Boundaries::Linspace(n) => {
                    let values = numbers()?;
                    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let (min, max) = if values.is_empty() { (0.0, 0.0) } else { (min, max) };
                    Buckets::linspace(min, max, *n)
                }
                Boundaries::Quantiles(n) => {
                    let values: Vec<f32> = numbers()?.into_iter().map(|x| x as f32).collect();
                    Buckets::adapt_quantiles(&values, *n, QUANTILE_EPSILON)
                }
            };
            Ok(FittedFeature::Buckets(buckets))
        }
        FeatureKind::Numeric => match &source.values {
            Values::Integers(v) => {
                Ok(FittedFeature::Normalized(Normalizer::adapt(&rows.iter().map(|&r| v[r]).collect::<Vec<_>>())))
            }
            Values::Floats(_) => {
                let values: Vec<f32> = numbers()?.into_iter().map(|x| x as f32).collect();
                Ok(FittedFeature::Normalized(Normalizer::adapt_f32(&values)))
            }
            _ => Err(wrong_type("an integer, timestamp or float column")),
        },
        FeatureKind::Text => match &source.values {
            Values::Strings(v) => {
                let max_tokens = feature.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
                Ok(FittedFeature::Text(TextVectorizer::adapt(rows.iter().map(|&r| v[r]), max_tokens)))
            }
            _ => Err(wrong_type("a string column")),
        },
        FeatureKind::Multi => {
            let mut vocabulary: Vec<String> = match &source.values {
                Values::Lists(column) => {
                    rows.iter().flat_map(|&r| column.list(r).expect("in range")).map(str::to_string).collect()
                }
                Values::Strings(v) => rows.iter().map(|&r| v[r].to_string()).collect(),
                _ => return Err(wrong_type("a list column (e.g. --list-column genres=|) or a string column")),
            };
            vocabulary.retain(|item| !item.is_empty());
            vocabulary.sort_unstable();
            vocabulary.dedup();
            StringLookup::new(vocabulary, num_oov, Some(String::new()))
                .map(FittedFeature::Multi)
                .map_err(|e| fail(e.to_string()))
        }
        FeatureKind::History => unreachable!("a history has no source"),
    }
}

impl FittedFeatures {
    /// Adapts every feature of `spec`, the query side on all interactions (as the tutorials) or
    /// on `train_rows` only when given ([`FitScope::TrainingRows`]).
    ///
    /// # Errors
    /// [`FeatureError`] naming the feature and column when the data cannot feed it.
    pub fn fit(data: &Dataset, spec: &ModelSpec, train_rows: Option<&[usize]>) -> Result<Self, FeatureError> {
        spec.check()?;
        let mut towers = Vec::with_capacity(2);
        for side in [Side::Query, Side::Candidate] {
            let mut fitted = Vec::new();
            for feature in &spec.tower(side).features {
                let source = (feature.kind != FeatureKind::History)
                    .then(|| source(data, side, feature, train_rows))
                    .transpose()?;
                fitted.push(FittedInput {
                    name: feature.name(),
                    column: feature.column().to_string(),
                    fitted: fit_feature(data, side, feature, source.as_ref())?,
                });
            }
            towers.push(fitted);
        }
        let candidate = towers.pop().expect("two towers");
        let query = towers.pop().expect("two towers");
        let time_range = data.interactions.timestamp.as_deref().and_then(|timestamps| {
            let fit: Box<dyn Iterator<Item = i64>> = match train_rows {
                None => Box::new(timestamps.iter().copied()),
                Some(rows) => Box::new(rows.iter().map(|&r| timestamps[r])),
            };
            fit.fold(None, |range: Option<(i64, i64)>, t| Some(range.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t)))))
        });
        let fitted_on = if train_rows.is_some() { FitScope::TrainingRows } else { FitScope::AllInteractions };
        Ok(Self { query, candidate, fitted_on, time_range })
    }

    /// The fitted inputs of `side`.
    pub fn tower(&self, side: Side) -> &[FittedInput] {
        match side {
            Side::Query => &self.query,
            Side::Candidate => &self.candidate,
        }
    }

    /// The towers' shapes: the spec's widths and layers, the fitted table sizes.
    ///
    /// # Errors
    /// When the fitted features are not the spec's (a model file whose parts disagree).
    pub fn model_config(&self, spec: &ModelSpec) -> Result<ModelConfig, String> {
        let tower = |side: Side| -> Result<TowerConfig, String> {
            let tower_spec = spec.tower(side);
            let fitted = self.tower(side);
            if tower_spec.features.len() != fitted.len() {
                return Err(format!(
                    "{} tower: the spec lists {} features, {} are fitted",
                    side.name(),
                    tower_spec.features.len(),
                    fitted.len()
                ));
            }
            let mut inputs = Vec::with_capacity(fitted.len());
            for (i, (feature, input)) in tower_spec.features.iter().zip(fitted).enumerate() {
                let expected_kind = match feature.kind {
                    FeatureKind::Id | FeatureKind::Bucketized => towers::InputKind::Lookup,
                    FeatureKind::Numeric => towers::InputKind::Numeric,
                    FeatureKind::Text | FeatureKind::Multi | FeatureKind::History => towers::InputKind::Bag,
                };
                if feature.name() != input.name
                    || feature.column() != input.column
                    || expected_kind != input.fitted.input_kind()
                {
                    return Err(format!(
                        "{} feature {i}: the spec has {:?} on {:?}, the fitted features {:?} on {:?}",
                        side.name(),
                        feature.name(),
                        feature.column(),
                        input.name,
                        input.column
                    ));
                }
                input.fitted.check().map_err(|e| format!("{} feature {:?}: {e}", side.name(), input.name))?;
                inputs.push(InputShape {
                    name: input.name.clone(),
                    kind: expected_kind,
                    rows: input.fitted.rows(),
                    dim: spec.dim_of(feature),
                });
            }
            Ok(TowerConfig { inputs, layer_sizes: tower_spec.layers.clone(), l2_normalize: tower_spec.l2_normalize })
        };
        Ok(ModelConfig { query: tower(Side::Query)?, candidate: tower(Side::Candidate)? })
    }

    /// The default time of a query: the latest fitted timestamp (0 without timestamps).
    pub fn latest_time(&self) -> i64 {
        self.time_range.map_or(0, |(_, hi)| hi)
    }
}

/// One feature's encoded values per source row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EncodedColumn {
    /// One index per row.
    Ids(Vec<u32>),
    /// Indices to pool per row.
    Bags(#[serde(with = "bags_serde")] Bags),
    /// One float per row.
    Values(Vec<f32>),
}

/// One tower input over a set of examples: encoded source rows and each example's source row.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodedInput {
    /// `column` holds source rows; example `i` reads row `of_example[i]` (or row `i` when `None`).
    Gathered {
        /// Per source row.
        column: EncodedColumn,
        /// Per example, its source row.
        of_example: Option<Vec<u32>>,
    },
    /// A history: example `i` pools `items[starts[i]..ends[i]]` (catalogue row + 1 each).
    History {
        /// Every user's training items, grouped by user, oldest first.
        items: Vec<u32>,
        /// Per example: first item.
        starts: Vec<u32>,
        /// Per example: one past the last item (items strictly before the example).
        ends: Vec<u32>,
    },
}

mod bags_serde {
    //! `Bags` as a list of rows.
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tensor::Bags;

    pub fn serialize<S: Serializer>(bags: &Bags, serializer: S) -> Result<S::Ok, S::Error> {
        (0..bags.len()).map(|b| bags.row(b).to_vec()).collect::<Vec<_>>().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bags, D::Error> {
        let rows = Vec::<Vec<u32>>::deserialize(deserializer)?;
        let mut bags = Bags::default();
        for row in &rows {
            bags.push(row);
        }
        Ok(bags)
    }
}

impl EncodedColumn {
    /// Rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Ids(v) => v.len(),
            Self::Bags(b) => b.len(),
            Self::Values(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest index, if the column holds indices.
    pub fn max_index(&self) -> Option<u32> {
        match self {
            Self::Ids(v) => v.iter().copied().max(),
            Self::Bags(b) => (0..b.len()).flat_map(|r| b.row(r).iter().copied()).max(),
            Self::Values(_) => None,
        }
    }

    /// Encodes values one by one through `fitted`.
    fn encode(
        fitted: &FittedFeature,
        n: usize,
        mut value_of: impl FnMut(usize, &mut dyn FnMut(Value<'_>) -> Result<Encoding, String>) -> Result<Encoding, String>,
    ) -> Result<Self, (usize, String)> {
        let mut encode = |row: usize| value_of(row, &mut |v| fitted.encode(v)).map_err(|e| (row, e));
        Ok(match fitted.input_kind() {
            towers::InputKind::Lookup => {
                let mut ids = Vec::with_capacity(n);
                for row in 0..n {
                    let Encoding::Index(i) = encode(row)? else { unreachable!("lookups encode to one index") };
                    ids.push(i);
                }
                Self::Ids(ids)
            }
            towers::InputKind::Bag => {
                let mut bags = Bags::default();
                for row in 0..n {
                    let Encoding::Indices(ids) = encode(row)? else { unreachable!("bags encode to indices") };
                    bags.push(&ids);
                }
                Self::Bags(bags)
            }
            towers::InputKind::Numeric => {
                let mut values = Vec::with_capacity(n);
                for row in 0..n {
                    let Encoding::Number(x) = encode(row)? else { unreachable!("numbers encode to one float") };
                    values.push(x);
                }
                Self::Values(values)
            }
        })
    }
}

/// A dataset encoded for a spec: input columns per interaction (query tower) and per catalogue
/// row (candidate tower), and what evaluation needs besides.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Query-tower inputs, one per query feature, over interactions.
    pub query: Vec<EncodedInput>,
    /// Candidate-tower inputs, one per candidate feature, over catalogue rows.
    pub candidate: Vec<EncodedInput>,
    /// Per interaction: its user (the dataset's query id), for seen lists.
    pub user: Vec<u32>,
    /// Per interaction: the candidate's catalogue row.
    pub candidate_row: Vec<u32>,
    /// Per catalogue row: its identity (the first candidate `id` feature's index, else the row):
    /// rows sharing one count as the same item for accidental hits, logQ and seen-filtering.
    pub candidate_identity: Vec<u32>,
    /// Per catalogue row: a display name (the first text feature's column, else the key).
    pub candidate_name: Vec<String>,
}

impl Encoded {
    /// Encodes every interaction and catalogue row; histories are built from `train_rows` only.
    ///
    /// # Errors
    /// [`FeatureError`] naming the feature and row of a value that cannot be encoded.
    pub fn new(
        data: &Dataset,
        spec: &ModelSpec,
        features: &FittedFeatures,
        train_rows: &[usize],
    ) -> Result<Self, FeatureError> {
        let mut inputs = Vec::with_capacity(2);
        for side in [Side::Query, Side::Candidate] {
            let mut encoded = Vec::new();
            for (feature, input) in spec.tower(side).features.iter().zip(features.tower(side)) {
                if let FittedFeature::History { length, .. } = input.fitted {
                    encoded.push(history(data, train_rows, length));
                    continue;
                }
                let source = source(data, side, feature, None)?;
                let column = EncodedColumn::encode(&input.fitted, source.values.len(), |row, encode| {
                    source.values.with_value(row, &mut *encode)
                })
                .map_err(|(row, problem)| FeatureError::Value {
                    tower: side.name(),
                    feature: input.name.clone(),
                    row,
                    problem,
                })?;
                encoded.push(EncodedInput::Gathered { column, of_example: source.of_example });
            }
            inputs.push(encoded);
        }
        let candidate = inputs.pop().expect("two towers");
        let query = inputs.pop().expect("two towers");
        let identity_input = spec.candidate.features.iter().position(|f| f.kind == FeatureKind::Id);
        let n_rows = data.candidates.n_rows();
        let candidate_identity = match identity_input.map(|i| &candidate[i]) {
            Some(EncodedInput::Gathered { column: EncodedColumn::Ids(ids), of_example: None }) => ids.clone(),
            _ => (0..n_rows as u32).collect(),
        };
        let display = spec.candidate.features.iter().find(|f| f.kind == FeatureKind::Text).map(FeatureSpec::column);
        let candidate_name = match display.and_then(|c| data.candidates.column(c)) {
            Some(column @ Column::String { .. }) => {
                (0..n_rows).map(|r| column.string(r).expect("in range").to_string()).collect()
            }
            _ => data.candidates.keys().to_vec(),
        };
        Ok(Self {
            query,
            candidate,
            user: data.interactions.query.clone(),
            candidate_row: data.interactions.candidate.clone(),
            candidate_identity,
            candidate_name,
        })
    }

    /// Number of catalogue rows.
    pub fn n_candidates(&self) -> usize {
        self.candidate_identity.len()
    }

    /// Number of interactions.
    pub fn n_interactions(&self) -> usize {
        self.candidate_row.len()
    }

    /// Number of distinct users (one more than the largest user id).
    pub fn n_users(&self) -> usize {
        self.user.iter().copied().max().map_or(0, |u| u as usize + 1)
    }
}

/// Each interaction's history: its user's training interactions strictly before it, ordered by
/// (timestamp, source position), the most recent `length`.
fn history(data: &Dataset, train_rows: &[usize], length: usize) -> EncodedInput {
    let interactions = &data.interactions;
    let time = |r: usize| interactions.timestamp.as_ref().map_or(0, |t| t[r]);
    let order_key = |r: usize| (interactions.query[r], time(r), r);
    let mut sorted: Vec<usize> = train_rows.to_vec();
    sorted.sort_unstable_by_key(|&r| order_key(r));
    let items: Vec<u32> = sorted.iter().map(|&r| interactions.candidate[r] + 1).collect();
    // Per user: its slice of `sorted`.
    let n_users = interactions.query_keys.len();
    let mut user_start = vec![0u32; n_users + 1];
    for &r in &sorted {
        user_start[interactions.query[r] as usize + 1] += 1;
    }
    for u in 0..n_users {
        user_start[u + 1] += user_start[u];
    }
    let n = interactions.len();
    let (mut starts, mut ends) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let user = interactions.query[i] as usize;
        let (lo, hi) = (user_start[user] as usize, user_start[user + 1] as usize);
        let key = (time(i), i);
        let before = sorted[lo..hi].partition_point(|&r| (time(r), r) < key);
        let end = lo + before;
        ends.push(end as u32);
        starts.push(end.saturating_sub(length).max(lo) as u32);
    }
    EncodedInput::History { items, starts, ends }
}
