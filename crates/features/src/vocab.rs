//! `StringLookup(vocabulary=…, mask_token=None)`: strings to dense indices, OOV at 0.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::LookupError;

/// The index every unknown string (and the empty string, unless listed) maps to.
pub const OOV_INDEX: u32 = 0;

/// A frozen string vocabulary: entry `i` of the given list maps to `i + 1`, anything else to
/// [`OOV_INDEX`]. `len()` counts the OOV row, as Keras' `vocabulary_size()` does.
///
/// It serialises as its list of entries and deserialises ready to use (the lookup table is
/// rebuilt, and a repeated entry is an error, as when building one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Vocabulary {
    entries: Vec<String>,
    index: HashMap<String, u32>,
}

impl TryFrom<Vec<String>> for Vocabulary {
    type Error = LookupError;

    fn try_from(entries: Vec<String>) -> Result<Self, LookupError> {
        let mut index = HashMap::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if let Some(first) = index.insert(entry.clone(), i as u32 + 1) {
                return Err(LookupError::Duplicate {
                    entry: format!("{entry:?}"),
                    first: first as usize - 1,
                    second: i,
                });
            }
        }
        Ok(Self { entries, index })
    }
}

impl From<Vocabulary> for Vec<String> {
    fn from(vocabulary: Vocabulary) -> Self {
        vocabulary.entries
    }
}

impl Vocabulary {
    /// A vocabulary in the given order (Keras keeps the order it is given).
    ///
    /// # Errors
    /// [`LookupError::Duplicate`] when an entry repeats (Keras raises on this too).
    pub fn new<S: Into<String>>(entries: impl IntoIterator<Item = S>) -> Result<Self, LookupError> {
        Self::try_from(entries.into_iter().map(Into::into).collect::<Vec<String>>())
    }

    /// What the tutorials pass: `np.unique(values)`, i.e. distinct values in byte order.
    pub fn from_sorted_unique<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut entries: Vec<String> = values.into_iter().map(Into::into).collect();
        entries.sort_unstable();
        entries.dedup();
        Self::new(entries).expect("sorted and deduplicated entries are unique")
    }

    /// The index of `token`: `i + 1` for the i-th entry, [`OOV_INDEX`] otherwise.
    pub fn lookup(&self, token: &str) -> u32 {
        self.index.get(token).copied().unwrap_or(OOV_INDEX)
    }

    /// The entry at `index`, or `None` for the OOV index and out-of-range indices.
    pub fn token(&self, index: u32) -> Option<&str> {
        let i = (index as usize).checked_sub(1)?;
        self.entries.get(i).map(String::as_str)
    }

    /// Rows of an embedding table over this vocabulary: entries + 1 (the OOV row).
    pub fn len(&self) -> usize {
        self.entries.len() + 1
    }

    /// Always false: the OOV row is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The entries, without the OOV token.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }
}

/// The order Keras' `adapt()` gives tokens (tf-keras `index_lookup.py`, `finalize_state`):
/// `np.lexsort((tokens, counts))[::-1]`, i.e. count descending, ties by token bytes descending.
pub fn adapt_order<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Vec<(String, u64)> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for token in tokens {
        *counts.entry(token).or_default() += 1;
    }
    let mut ordered: Vec<(String, u64)> = counts.into_iter().map(|(t, c)| (t.to_string(), c)).collect();
    ordered.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.as_bytes().cmp(a.0.as_bytes())));
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_one_based_with_oov_at_zero() {
        let vocab = Vocabulary::new(["1", "10", "2"]).unwrap();
        let cases = [("1", 1), ("10", 2), ("2", 3), ("3", 0), ("", 0)];
        for (token, expected) in cases {
            assert_eq!(vocab.lookup(token), expected, "{token:?}");
        }
        assert_eq!(vocab.len(), 4);
        assert_eq!(vocab.token(2), Some("10"));
        assert_eq!(vocab.token(0), None);
    }

    #[test]
    fn a_repeated_entry_is_an_error() {
        assert_eq!(
            Vocabulary::new(["a", "b", "a"]),
            Err(LookupError::Duplicate { entry: "\"a\"".into(), first: 0, second: 2 })
        );
        let json = serde_json::to_string(&["x", "x"]).unwrap();
        assert!(serde_json::from_str::<Vocabulary>(&json).is_err());
    }

    #[test]
    fn a_deserialised_vocabulary_looks_up_without_a_rebuild() {
        let vocab = Vocabulary::new(["u1", "u2"]).unwrap();
        let back: Vocabulary = serde_json::from_str(&serde_json::to_string(&vocab).unwrap()).unwrap();
        assert_eq!((back.lookup("u2"), back.lookup("nobody")), (2, OOV_INDEX));
        assert_eq!(back, vocab);
    }

    #[test]
    fn sorted_unique_uses_byte_order() {
        let vocab = Vocabulary::from_sorted_unique(["2", "10", "1", "10", "É", "Z"]);
        assert_eq!(vocab.entries(), ["1", "10", "2", "Z", "É"]);
    }

    #[test]
    fn adapt_orders_by_count_then_bytes_descending() {
        // The EXP case of the semantics note: b, a, c, a, b, d → b, a, d, c.
        let order: Vec<String> = adapt_order(["b", "a", "c", "a", "b", "d"]).into_iter().map(|(t, _)| t).collect();
        assert_eq!(order, ["b", "a", "d", "c"]);
    }
}
