//! Raw queries: what a caller knows about a user (its key, a time, attributes, the items it
//! interacted with), encoded through the model's fitted features into one example per query.
//!
//! This is the single path from raw values to query-tower inputs at serving time; training
//! encodes its columns through the same [`crate::fitted::FittedFeature::encode`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fitted::Value;

/// A raw value owned by a query or a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OwnedValue {
    /// Text or a categorical value.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A list of strings.
    List(Vec<String>),
}

impl OwnedValue {
    /// Calls `f` with the value borrowed.
    pub fn with_value<T>(&self, f: impl FnOnce(Value<'_>) -> T) -> T {
        match self {
            Self::Str(s) => f(Value::Str(s)),
            Self::Int(i) => f(Value::Int(*i)),
            Self::Float(x) => f(Value::Float(*x)),
            Self::List(items) => {
                let borrowed: Vec<&str> = items.iter().map(String::as_str).collect();
                f(Value::List(&borrowed))
            }
        }
    }

    /// A JSON value as a raw value: strings, integers, floats and lists of strings.
    ///
    /// # Errors
    /// What was expected, for objects, booleans, nulls and lists of non-strings.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::String(s) => Ok(Self::Str(s.clone())),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(Self::Int(i)),
                None => n.as_f64().map(Self::Float).ok_or_else(|| format!("{n} is not representable")),
            },
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_string).ok_or_else(|| format!("list item {item}: expected a string"))
                })
                .collect::<Result<_, _>>()
                .map(Self::List),
            other => Err(format!("{other}: expected a string, a number or a list of strings")),
        }
    }
}

/// One recommendation request, in raw values. Every part is optional; what the model needs and
/// the request lacks comes from the user's training data when the user is known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// The user key. Known: its attributes, history and seen items are the defaults. Unknown or
    /// absent: `$key` features get the out-of-vocabulary row, so a history or attributes must
    /// carry the personalisation.
    pub user: Option<String>,
    /// Unix time of the query; `None`: the latest time of the training data.
    pub at: Option<i64>,
    /// Query-table values by column name (e.g. `occupation`), overriding the known user's.
    pub attributes: BTreeMap<String, OwnedValue>,
    /// Candidate keys the user interacted with, oldest first, replacing the known user's history.
    pub history: Option<Vec<String>>,
    /// How many items (clamped to the catalogue).
    pub k: usize,
    /// Keep the items the user interacted with (training rows, and the given history).
    pub include_seen: bool,
}

/// A query for one known user (the `recommend` command's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery<'a> {
    /// The user id as in the training data.
    pub user: &'a str,
    /// Unix time of the query; `None`: the latest time in the training data.
    pub at: Option<i64>,
    /// How many items (clamped to the catalogue).
    pub k: usize,
    /// Keep the items the user interacted with in training.
    pub include_seen: bool,
}

impl From<&UserQuery<'_>> for Request {
    fn from(query: &UserQuery<'_>) -> Self {
        Self {
            user: Some(query.user.to_string()),
            at: query.at,
            k: query.k,
            include_seen: query.include_seen,
            ..Self::default()
        }
    }
}

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The user is not in the training data and the request carries nothing else about it.
    #[error("user {user:?}: not a user of this model's training data ({n_known} known users); an unknown user gets only the shared out-of-vocabulary embedding, so give a history or attributes to personalise")]
    UnknownUser {
        /// The id asked for.
        user: String,
        /// Known users.
        n_known: usize,
    },
    /// Neither a user nor any feature value.
    #[error("the request names no user and gives no history or attributes: nothing to recommend from")]
    Empty,
    /// `k` is 0.
    #[error("k must be at least 1")]
    ZeroK,
    /// A query-table column the model reads is missing for this user.
    #[error("feature {feature:?} reads column {column:?}: give it in the request's attributes (the user is not known, or the model has no value for it)")]
    MissingAttribute {
        /// The feature.
        feature: String,
        /// The column.
        column: String,
    },
    /// A value cannot be encoded.
    #[error("feature {feature:?}: {problem}")]
    BadValue {
        /// The feature.
        feature: String,
        /// What was expected.
        problem: String,
    },
    /// A history names an item not in the catalogue.
    #[error("history item {key:?}: not a candidate key of this model's catalogue")]
    UnknownItem {
        /// The key.
        key: String,
    },
    /// An attribute the model does not read.
    #[error("attribute {column:?}: the model reads no such column (it reads {known})")]
    UnusedAttribute {
        /// The column given.
        column: String,
        /// The columns the model reads.
        known: String,
    },
    /// The time is too far outside the training data's span.
    #[error("time {at}: expected a Unix time between {lo} and {hi} (the training data spans {first} to {last}; further out than that span again, the time features extrapolate into values the model never saw)")]
    TimeOutOfRange {
        /// The time asked for.
        at: i64,
        /// Earliest accepted.
        lo: i64,
        /// Latest accepted.
        hi: i64,
        /// Earliest training time.
        first: i64,
        /// Latest training time.
        last: i64,
    },
}

impl QueryError {
    /// Whether the error is about who was asked for (HTTP 404) rather than what (422).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::UnknownUser { .. })
    }
}
