//! One fitted feature: the frozen Keras preprocessing layer behind a spec entry, and how it
//! encodes one value. Training (column at a time) and serving (one request) both encode
//! through [`FittedFeature::encode`], so they cannot disagree.

use features::{Buckets, Hashing, Normalizer, StringLookup, TextVectorizer};
use serde::{Deserialize, Serialize};
use towers::InputKind;

/// One raw value of a feature: what a table cell or a JSON request field holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Text or a categorical value.
    Str(&'a str),
    /// An integer (also timestamps).
    Int(i64),
    /// A float.
    Float(f64),
    /// A list of strings (genres, tags), or of candidate keys for a history.
    List(&'a [&'a str]),
}

/// An encoded value: what one example gives its tower input.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// One table index.
    Index(u32),
    /// Table indices to pool (0 = padding).
    Indices(Vec<u32>),
    /// One float column.
    Number(f32),
}

/// A fitted feature, frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FittedFeature {
    /// `StringLookup` over the sorted distinct values (integers as their decimal text).
    Lookup(StringLookup),
    /// `Hashing(num_bins)`.
    Hashed(Hashing),
    /// `Discretization` boundaries.
    Buckets(Buckets),
    /// `Normalization` mean and variance.
    Normalized(Normalizer),
    /// `TextVectorization` vocabulary.
    Text(TextVectorizer),
    /// `StringLookup` over list items, with the empty string as mask (index 0 = padding).
    Multi(StringLookup),
    /// The most recent `length` of the user's items, as catalogue row + 1 (0 = padding).
    History {
        /// Catalogue rows.
        n_candidates: usize,
        /// Items kept.
        length: usize,
    },
}

impl FittedFeature {
    /// How the tower embeds it.
    pub fn input_kind(&self) -> InputKind {
        match self {
            Self::Lookup(_) | Self::Hashed(_) | Self::Buckets(_) => InputKind::Lookup,
            Self::Normalized(_) => InputKind::Numeric,
            Self::Text(_) | Self::Multi(_) | Self::History { .. } => InputKind::Bag,
        }
    }

    /// Rows of its embedding table (0 for a numeric feature).
    pub fn rows(&self) -> usize {
        match self {
            Self::Lookup(lookup) | Self::Multi(lookup) => lookup.len(),
            Self::Hashed(hashing) => usize::try_from(hashing.num_bins()).unwrap_or(usize::MAX),
            Self::Buckets(buckets) => buckets.n_buckets(),
            Self::Normalized(_) => 0,
            Self::Text(text) => text.len(),
            Self::History { n_candidates, .. } => n_candidates + 1,
        }
    }

    /// Checks what deserialising cannot: boundaries ordered, normalisation finite.
    ///
    /// # Errors
    /// A description of the problem.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Buckets(buckets) => buckets.check(),
            Self::Normalized(Normalizer { mean, variance })
                if !(mean.is_finite() && variance.is_finite() && *variance >= 0.0) =>
            {
                Err(format!("normalisation mean {mean}, variance {variance}; expected finite, variance ≥ 0"))
            }
            Self::Hashed(hashing) if hashing.num_bins() == 0 => Err("hashing into 0 bins".to_string()),
            _ => Ok(()),
        }
    }

    /// Encodes one value (a history's values are catalogue rows, encoded by the caller).
    ///
    /// # Errors
    /// What was expected, when the value has the wrong type.
    pub fn encode(&self, value: Value<'_>) -> Result<Encoding, String> {
        match (self, value) {
            (Self::Lookup(lookup), Value::Str(s)) => Ok(Encoding::Index(lookup.lookup(s))),
            (Self::Lookup(lookup), Value::Int(i)) => Ok(Encoding::Index(lookup.lookup(&i.to_string()))),
            (Self::Hashed(hashing), Value::Str(s)) => Ok(Encoding::Index(bin(hashing, s))),
            (Self::Hashed(hashing), Value::Int(i)) => Ok(Encoding::Index(bin(hashing, &i.to_string()))),
            (Self::Buckets(buckets), value) => Ok(Encoding::Index(buckets.bucketize_f32(number(value)? as f32))),
            (Self::Normalized(normalizer), value) => {
                Ok(Encoding::Number(normalizer.normalize_f32(number(value)? as f32)))
            }
            (Self::Text(text), Value::Str(s)) => Ok(Encoding::Indices(text.encode(s))),
            (Self::Multi(lookup), Value::List(items)) => {
                Ok(Encoding::Indices(items.iter().map(|item| lookup.lookup(item)).collect()))
            }
            (Self::Multi(lookup), Value::Str(item)) => Ok(Encoding::Indices(vec![lookup.lookup(item)])),
            (Self::History { .. }, _) => Err("a history is a list of candidate keys".to_string()),
            (Self::Lookup(_) | Self::Hashed(_), _) => Err("expected a string or an integer".to_string()),
            (Self::Text(_), _) => Err("expected a string".to_string()),
            (Self::Multi(_), _) => Err("expected a list of strings".to_string()),
        }
    }
}

fn bin(hashing: &Hashing, s: &str) -> u32 {
    u32::try_from(hashing.bin(s)).expect("bins fit u32: hash_bins is checked against the table limit")
}

/// A number from an integer or float value (to f64, exact for |integers| below 2⁵³).
fn number(value: Value<'_>) -> Result<f64, String> {
    match value {
        Value::Int(i) => Ok(i as f64),
        Value::Float(x) if x.is_finite() => Ok(x),
        Value::Float(x) => Err(format!("{x} is not a finite number")),
        Value::Str(s) => {
            s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| format!("{s:?} is not a number"))
        }
        Value::List(_) => Err("expected a number, got a list".to_string()),
    }
}
