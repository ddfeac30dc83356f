//! `Table`: rows named by a unique key, with typed columns (the candidate table, the query table).

use serde::{Deserialize, Serialize};

use crate::{Column, Interner};

/// Rows with unique keys and named, typed columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Row `i` has key `keys.resolve(i)`; keys are unique.
    keys: Interner,
    /// `(name, column)`, each with one value per row.
    columns: Vec<(String, Column)>,
}

/// Why a table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A key appears twice.
    #[error("key {key:?} appears twice (rows {first} and {second}); keys must be unique")]
    DuplicateKey {
        /// The key.
        key: String,
        /// 0-based row of its first appearance.
        first: usize,
        /// 0-based row of the repeat.
        second: usize,
    },
    /// A column has a different number of rows than the keys.
    #[error("column {name:?} has {found} rows, the table {expected}")]
    Length {
        /// The column.
        name: String,
        /// Rows of the table.
        expected: usize,
        /// Rows of the column.
        found: usize,
    },
    /// Two columns share a name.
    #[error("column {0:?} appears twice")]
    DuplicateColumn(String),
}

impl Table {
    /// A table from its keys (in row order) and columns.
    ///
    /// # Errors
    /// [`TableError`] for a repeated key, a column of the wrong length or a repeated name.
    pub fn new(keys: impl IntoIterator<Item = String>, columns: Vec<(String, Column)>) -> Result<Self, TableError> {
        let mut interner = Interner::new();
        for (row, key) in keys.into_iter().enumerate() {
            let id = interner.intern(&key) as usize;
            if id != row {
                return Err(TableError::DuplicateKey { key, first: id, second: row });
            }
        }
        for (i, (name, column)) in columns.iter().enumerate() {
            if column.len() != interner.len() {
                return Err(TableError::Length { name: name.clone(), expected: interner.len(), found: column.len() });
            }
            if columns[..i].iter().any(|(n, _)| n == name) {
                return Err(TableError::DuplicateColumn(name.clone()));
            }
        }
        Ok(Self { keys: interner, columns })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.keys.len()
    }

    /// The row holding `key`.
    pub fn row_of(&self, key: &str) -> Option<u32> {
        self.keys.get(key)
    }

    /// The key of row `row`.
    ///
    /// # Panics
    /// If `row` is out of range.
    pub fn key(&self, row: u32) -> &str {
        self.keys.resolve(row)
    }

    /// Every key, in row order.
    pub fn keys(&self) -> &[String] {
        self.keys.strings()
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Every column, in order.
    pub fn columns(&self) -> &[(String, Column)] {
        &self.columns
    }

    /// Column names, for messages.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }
}
