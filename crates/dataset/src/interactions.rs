//! `Interactions`: who interacted with what, and when, as columns.
//!
//! An interaction costs 4 bytes (query id), 4 (candidate row), 8 (timestamp, when present) and
//! 4 (weight, when present): at most 20 bytes, plus the interned keys (one copy per distinct
//! query key, not per interaction).

use serde::{Deserialize, Serialize};

use crate::Interner;

/// Interactions in source order, one entry per row of every present column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    /// `(n)` ids into `query_keys`.
    pub query: Vec<u32>,
    /// `(n)` rows of the candidate table.
    pub candidate: Vec<u32>,
    /// `(n)` Unix seconds, if the source has a time column.
    pub timestamp: Option<Vec<i64>>,
    /// `(n)` weights (e.g. ratings), if the source has a weight column.
    pub weight: Option<Vec<f32>>,
    /// The query (user) keys, numbered in order of first appearance.
    pub query_keys: Interner,
}

impl Interactions {
    /// Number of interactions.
    pub fn len(&self) -> usize {
        self.query.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.query.is_empty()
    }

    /// The query key of interaction `i`.
    pub fn query_key(&self, i: usize) -> &str {
        self.query_keys.resolve(self.query[i])
    }

    /// Bytes held per interaction by the columns (keys excluded), for the documented budget.
    pub fn bytes_per_interaction(&self) -> usize {
        4 + 4 + self.timestamp.as_ref().map_or(0, |_| 8) + self.weight.as_ref().map_or(0, |_| 4)
    }
}
