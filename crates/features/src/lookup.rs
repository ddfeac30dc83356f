//! `StringLookup` and `IntegerLookup` with every option the spec can ask for: several OOV
//! indices and a mask token.
//!
//! Index layout, as Keras': `[mask (if any)] [OOV 0 .. OOV n−1] [vocabulary…]`. The mask value
//! maps to 0. An unknown string goes to OOV `fingerprint64(s) mod n` (Keras'
//! `to_hash_bucket_fast`), an unknown integer to OOV `x mod n` (floor modulo, so −1 → n − 1).
//! [`Vocabulary`](crate::Vocabulary) is the tutorials' special case: one OOV index, no mask.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::fingerprint64;

/// Why a lookup cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// A vocabulary entry appears twice (Keras raises on this too).
    #[error("vocabulary entry {entry} appears twice (positions {first} and {second})")]
    Duplicate {
        /// The entry, as text.
        entry: String,
        /// 0-based position of its first appearance.
        first: usize,
        /// 0-based position of the repeat.
        second: usize,
    },
    /// The mask token is also a vocabulary entry.
    #[error("the mask token {0} is also in the vocabulary")]
    MaskInVocabulary(String),
}

fn index_map<T: std::hash::Hash + Eq + Clone + std::fmt::Debug>(
    vocabulary: &[T],
    mask: Option<&T>,
) -> Result<HashMap<T, u32>, LookupError> {
    let mut map = HashMap::with_capacity(vocabulary.len());
    for (i, entry) in vocabulary.iter().enumerate() {
        if let Some(first) = map.insert(entry.clone(), i as u32) {
            return Err(LookupError::Duplicate { entry: format!("{entry:?}"), first: first as usize, second: i });
        }
        if mask == Some(entry) {
            return Err(LookupError::MaskInVocabulary(format!("{entry:?}")));
        }
    }
    Ok(map)
}

/// `StringLookup(vocabulary, num_oov_indices, mask_token)`, frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StringLookupParts", into = "StringLookupParts")]
pub struct StringLookup {
    parts: StringLookupParts,
    index: HashMap<String, u32>,
}

/// What a [`StringLookup`] serialises as (the index is rebuilt, and checked, on loading).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringLookupParts {
    /// Entries in index order.
    pub vocabulary: Vec<String>,
    /// Number of OOV indices (at least 1).
    pub num_oov_indices: u32,
    /// A value that maps to 0 (padding), if any.
    pub mask_token: Option<String>,
}

impl TryFrom<StringLookupParts> for StringLookup {
    type Error = LookupError;

    fn try_from(parts: StringLookupParts) -> Result<Self, LookupError> {
        let index = index_map(&parts.vocabulary, parts.mask_token.as_ref())?;
        Ok(Self { parts: StringLookupParts { num_oov_indices: parts.num_oov_indices.max(1), ..parts }, index })
    }
}

impl From<StringLookup> for StringLookupParts {
    fn from(lookup: StringLookup) -> Self {
        lookup.parts
    }
}

impl StringLookup {
    /// A lookup over `vocabulary` (in index order).
    ///
    /// # Errors
    /// [`LookupError`] for a repeated entry or a mask token inside the vocabulary.
    pub fn new(vocabulary: Vec<String>, num_oov_indices: u32, mask_token: Option<String>) -> Result<Self, LookupError> {
        StringLookupParts { vocabulary, num_oov_indices, mask_token }.try_into()
    }

    fn first_entry(&self) -> u32 {
        u32::from(self.parts.mask_token.is_some()) + self.parts.num_oov_indices
    }

    /// The index of `token` (see the module docs).
    pub fn lookup(&self, token: &str) -> u32 {
        if self.parts.mask_token.as_deref() == Some(token) {
            return 0;
        }
        match self.index.get(token) {
            Some(&i) => self.first_entry() + i,
            None => {
                let oov = fingerprint64(token.as_bytes()) % u64::from(self.parts.num_oov_indices);
                u32::from(self.parts.mask_token.is_some()) + oov as u32
            }
        }
    }

    /// Rows of an embedding table over this lookup: mask, OOV indices and entries.
    pub fn len(&self) -> usize {
        self.first_entry() as usize + self.parts.vocabulary.len()
    }

    /// Always false: the OOV rows are always there.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// `IntegerLookup(vocabulary, num_oov_indices, mask_token)`, frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "IntegerLookupParts", into = "IntegerLookupParts")]
pub struct IntegerLookup {
    parts: IntegerLookupParts,
    index: HashMap<i64, u32>,
}

/// What an [`IntegerLookup`] serialises as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegerLookupParts {
    /// Entries in index order.
    pub vocabulary: Vec<i64>,
    /// Number of OOV indices (at least 1).
    pub num_oov_indices: u32,
    /// A value that maps to 0, if any.
    pub mask_token: Option<i64>,
}

impl TryFrom<IntegerLookupParts> for IntegerLookup {
    type Error = LookupError;

    fn try_from(parts: IntegerLookupParts) -> Result<Self, LookupError> {
        let index = index_map(&parts.vocabulary, parts.mask_token.as_ref())?;
        Ok(Self { parts: IntegerLookupParts { num_oov_indices: parts.num_oov_indices.max(1), ..parts }, index })
    }
}

impl From<IntegerLookup> for IntegerLookupParts {
    fn from(lookup: IntegerLookup) -> Self {
        lookup.parts
    }
}

impl IntegerLookup {
    /// A lookup over `vocabulary` (in index order).
    ///
    /// # Errors
    /// [`LookupError`] for a repeated entry or a mask inside the vocabulary.
    pub fn new(vocabulary: Vec<i64>, num_oov_indices: u32, mask_token: Option<i64>) -> Result<Self, LookupError> {
        IntegerLookupParts { vocabulary, num_oov_indices, mask_token }.try_into()
    }

    fn first_entry(&self) -> u32 {
        u32::from(self.parts.mask_token.is_some()) + self.parts.num_oov_indices
    }

    /// The index of `value` (see the module docs).
    pub fn lookup(&self, value: i64) -> u32 {
        if self.parts.mask_token == Some(value) {
            return 0;
        }
        match self.index.get(&value) {
            Some(&i) => self.first_entry() + i,
            None => {
                let oov = value.rem_euclid(i64::from(self.parts.num_oov_indices));
                u32::from(self.parts.mask_token.is_some()) + oov as u32
            }
        }
    }

    /// Rows of an embedding table over this lookup.
    pub fn len(&self) -> usize {
        self.first_entry() as usize + self.parts.vocabulary.len()
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_masked_entries_are_errors_and_serde_rebuilds_the_index() {
        assert!(matches!(
            StringLookup::new(vec!["a".into(), "b".into(), "a".into()], 1, None),
            Err(LookupError::Duplicate { first: 0, second: 2, .. })
        ));
        assert!(StringLookup::new(vec!["".into()], 1, Some(String::new())).is_err());
        let lookup = StringLookup::new(vec!["x".into(), "y".into()], 2, Some(String::new())).unwrap();
        let json = serde_json::to_string(&lookup).unwrap();
        let back: StringLookup = serde_json::from_str(&json).unwrap();
        assert_eq!(back.lookup("y"), lookup.lookup("y"));
        assert_eq!(back.lookup("y"), 4);
        assert_eq!(back.len(), 5);
        let bad = r#"{"vocabulary":["a","a"],"num_oov_indices":1,"mask_token":null}"#;
        assert!(serde_json::from_str::<StringLookup>(bad).is_err(), "a duplicate is refused on loading too");
    }
}
