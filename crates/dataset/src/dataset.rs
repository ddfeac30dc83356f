//! `Dataset`: interactions joined to a candidate table (and optionally a query table), checked
//! once so that everything above can index without checks.

use serde::{Deserialize, Serialize};

use crate::{Interactions, Table};

/// Interactions with the tables they refer to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// What was loaded, for reports (e.g. `MovieLens 100k from data/ml-100k`).
    pub source: String,
    /// Who interacted with which candidate row.
    pub interactions: Interactions,
    /// The catalogue: one row per candidate, keyed by the candidate key.
    pub candidates: Table,
    /// Attributes of queries (users), keyed by the query key, when the source has them.
    pub queries: Option<Table>,
}

/// Why a dataset's parts disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetError {
    /// No interactions.
    #[error("no interactions")]
    NoInteractions,
    /// An empty candidate table.
    #[error("the candidate table is empty")]
    NoCandidates,
    /// An interaction column has the wrong length.
    #[error("interaction column {column} has {found} rows, expected {expected}")]
    Length {
        /// The column.
        column: &'static str,
        /// Interactions.
        expected: usize,
        /// Its rows.
        found: usize,
    },
    /// An interaction names a candidate row past the table.
    #[error("interaction {index}: candidate row {row}, but the table has {n_rows} rows")]
    CandidateRow {
        /// 0-based interaction.
        index: usize,
        /// The row.
        row: u32,
        /// Rows of the candidate table.
        n_rows: usize,
    },
    /// An interaction names a query id past the interned keys.
    #[error("interaction {index}: query id {id}, but only {n_keys} query keys exist")]
    QueryId {
        /// 0-based interaction.
        index: usize,
        /// The id.
        id: u32,
        /// Interned query keys.
        n_keys: usize,
    },
}

impl Dataset {
    /// Checks that every column has one value per interaction and every id is in range.
    ///
    /// # Errors
    /// The first [`DatasetError`].
    pub fn validate(&self) -> Result<(), DatasetError> {
        let n = self.interactions.len();
        if n == 0 {
            return Err(DatasetError::NoInteractions);
        }
        if self.candidates.n_rows() == 0 {
            return Err(DatasetError::NoCandidates);
        }
        let lengths = [
            ("candidate", self.interactions.candidate.len()),
            ("timestamp", self.interactions.timestamp.as_ref().map_or(n, Vec::len)),
            ("weight", self.interactions.weight.as_ref().map_or(n, Vec::len)),
        ];
        if let Some(&(column, found)) = lengths.iter().find(|(_, len)| *len != n) {
            return Err(DatasetError::Length { column, expected: n, found });
        }
        let n_rows = self.candidates.n_rows();
        if let Some((index, &row)) = self.interactions.candidate.iter().enumerate().find(|(_, &r)| r as usize >= n_rows)
        {
            return Err(DatasetError::CandidateRow { index, row, n_rows });
        }
        let n_keys = self.interactions.query_keys.len();
        if let Some((index, &id)) = self.interactions.query.iter().enumerate().find(|(_, &q)| q as usize >= n_keys) {
            return Err(DatasetError::QueryId { index, id, n_keys });
        }
        Ok(())
    }
}
