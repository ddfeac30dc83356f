//! MovieLens, as one adapter to the neutral [`dataset::Dataset`]: every release ([`load`],
//! auto-detected by [`Release::detect`]), and typed access to the 100k files as TensorFlow
//! Datasets reads them.
//!
//! * [`parse_ratings`] reads `u.data` (tab-separated `user item rating timestamp`).
//! * [`parse_movies`] reads `u.item` (`|`-separated, **latin-1**); the title is field 1 and is
//!   kept exactly, trailing spaces included, and all 1682 rows are kept, duplicated titles too.
//! * [`split`] builds train/test splits: a seeded 80/20 shuffle, a split file, or the TFRS
//!   tutorial row list.
//! * [`download`] fetches `ml-100k.zip`, checks its MD5 and moves it into place atomically.
//!
//! Every malformed line is an [`Error::Parse`] naming the file, the 1-based line and what was
//! expected; nothing here panics on bad input.
//!
//! ```
//! use std::path::Path;
//! let ratings = movielens::parse_ratings(b"7\t42\t3\t800000000\n", Path::new("u.data")).unwrap();
//! assert_eq!(ratings[0].movie_id, 42);
//! let movies = movielens::parse_movies(
//!     b"1|Premi\xe8re Nuit (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n",
//!     Path::new("u.item"),
//! ).unwrap();
//! assert_eq!(movies[0].title, "Première Nuit (1995)");
//! ```
#![warn(missing_docs)]

mod dat;
mod dataset;
#[cfg(feature = "download")]
pub mod download;
mod error;
mod parse;
mod releases;
pub mod split;
pub mod synthetic;

pub use dataset::{Dataset, Movie, Rating};
pub use error::{Error, ParseIssue};
pub use parse::{parse_movies, parse_ratings, GENRES_100K};
pub use releases::{load, Release};
