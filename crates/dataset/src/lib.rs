//! A neutral interactions dataset, the one data model everything above it speaks.
//!
//! * [`Interactions`]: per interaction a query id (interned key), a candidate row, and
//!   optionally a timestamp and a weight, as columns (at most 20 bytes per interaction).
//! * [`Table`]: the candidate table (and optionally a query table): rows with unique keys and
//!   typed [`Column`]s (string, integer, float, timestamp, list of strings).
//! * [`Dataset`]: interactions joined to their tables, checked once ([`Dataset::validate`]).
//! * [`Split`]: train / validation / test as index lists: seeded, a given row order, a global
//!   time cut, the latest `n` per query, and a validation block carved from train.
//! * [`load_interactions`], [`load_table`]: CSV/TSV with a header, UTF-8 or latin-1, every bad
//!   value an error naming file, line and column.
//!
//! Nothing here knows about movies or users: MovieLens is one adapter (the `movielens` crate)
//! that produces a [`Dataset`].
//!
//! ```
//! use dataset::{Column, Dataset, Interactions, Interner, Table};
//! let mut genres = Column::empty(dataset::ColumnType::StringList);
//! genres.push_list(["Comedy", "Drama"]);
//! genres.push_list([]);
//! let candidates = Table::new(["a".to_string(), "b".to_string()], vec![("genres".into(), genres)]).unwrap();
//! let interactions = Interactions {
//!     query: vec![0, 0, 1],
//!     candidate: vec![1, 0, 1],
//!     timestamp: Some(vec![10, 20, 30]),
//!     weight: None,
//!     query_keys: Interner::from(vec!["u1".to_string(), "u2".to_string()]),
//! };
//! let data = Dataset { source: "example".into(), interactions, candidates, queries: None };
//! data.validate().unwrap();
//! assert_eq!(data.candidates.column("genres").unwrap().list(0).unwrap(), ["Comedy", "Drama"]);
//! ```
#![warn(missing_docs)]

mod column;
mod csv_files;
#[allow(clippy::module_inception)]
mod dataset;
mod interactions;
mod interactions_csv;
mod intern;
#[cfg(feature = "parquet")]
mod parquet_files;
pub mod split;
mod table;

pub use column::{Column, ColumnType};
pub use csv_files::{load_table, CsvFormat, Encoding, InteractionColumns, LoadError, TableColumns};
pub use dataset::{Dataset, DatasetError};
pub use interactions::Interactions;
pub use interactions_csv::load_interactions;
pub use intern::Interner;
#[cfg(feature = "parquet")]
pub use parquet_files::{load_interactions_parquet, load_table_parquet};
pub use split::{Split, SplitError, Validation};
pub use table::{Table, TableError};
