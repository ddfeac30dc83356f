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

    /// Keeps the interactions `i` with `keep[i]`, in order, in every column. Query keys stay
    /// interned (a user left with no interaction keeps its id).
    ///
    /// # Panics
    /// If `keep` has another length than the interactions.
    pub fn retain(&mut self, keep: &[bool]) {
        assert_eq!(
            keep.len(),
            self.len(),
            "Interactions::retain: {} flags for {} interactions",
            keep.len(),
            self.len()
        );
        fn filter<T: Copy>(values: &mut Vec<T>, keep: &[bool]) {
            let mut flags = keep.iter();
            values.retain(|_| *flags.next().expect("one flag per value"));
        }
        filter(&mut self.query, keep);
        filter(&mut self.candidate, keep);
        if let Some(t) = &mut self.timestamp {
            filter(t, keep);
        }
        if let Some(w) = &mut self.weight {
            filter(w, keep);
        }
    }

    /// Bytes held per interaction by the columns (keys excluded), for the documented budget.
    pub fn bytes_per_interaction(&self) -> usize {
        4 + 4 + self.timestamp.as_ref().map_or(0, |_| 8) + self.weight.as_ref().map_or(0, |_| 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_filters_every_column_alike() {
        let mut interactions = Interactions {
            query: vec![0, 1, 0, 1],
            candidate: vec![5, 6, 7, 8],
            timestamp: Some(vec![10, 20, 30, 40]),
            weight: Some(vec![1.0, 5.0, 4.0, 2.0]),
            query_keys: Interner::from(vec!["a".to_string(), "b".to_string()]),
        };
        interactions.retain(&[false, true, true, false]);
        assert_eq!((interactions.query, interactions.candidate), (vec![1, 0], vec![6, 7]));
        assert_eq!(interactions.timestamp, Some(vec![20, 30]));
        assert_eq!(interactions.weight, Some(vec![5.0, 4.0]));
    }
}
