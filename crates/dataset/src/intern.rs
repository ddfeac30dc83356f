//! `Interner`: each distinct string stored once and named by a dense `u32` in order of first
//! appearance.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Distinct strings, numbered `0..len()` in order of first appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Interner {
    strings: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `s`, adding it if new.
    ///
    /// # Panics
    /// Past `u32::MAX` distinct strings.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).expect("more than u32::MAX distinct strings");
        self.strings.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }

    /// The id of `s`, if interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The string of `id`.
    ///
    /// # Panics
    /// If `id` was not handed out by this interner.
    pub fn resolve(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Every string, in id order.
    pub fn strings(&self) -> &[String] {
        &self.strings
    }
}

impl From<Vec<String>> for Interner {
    fn from(strings: Vec<String>) -> Self {
        let mut interner = Self::new();
        for s in &strings {
            interner.intern(s);
        }
        interner
    }
}

impl From<Interner> for Vec<String> {
    fn from(interner: Interner) -> Self {
        interner.strings
    }
}
