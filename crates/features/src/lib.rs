//! Keras preprocessing layers, reproduced exactly as the TFRS tutorials use them.
//!
//! Each type follows "adapt, then freeze": build it from data once, then use it read-only.
//! Lookups are total (an unknown string maps to the OOV index), so they need no `Result`.
//!
//! | Keras layer | here |
//! |---|---|
//! | `StringLookup(vocabulary=…, mask_token=None)` | [`Vocabulary`] |
//! | `Discretization(bin_boundaries=…)` | [`Buckets`] ([`Buckets::bucketize_f32`] for floats) |
//! | `Discretization(num_bins=…, epsilon=…).adapt(…)` | [`Buckets::adapt_quantiles`] |
//! | `Normalization(axis=None)` | [`Normalizer`] |
//! | `TextVectorization(max_tokens=…)` | [`TextVectorizer`] |
//! | `Hashing(num_bins, salt)` | [`Hashing`] |
//! | `StringLookup(num_oov_indices=n, mask_token=…)` | [`StringLookup`] |
//! | `IntegerLookup(num_oov_indices=n, mask_token=…)` | [`IntegerLookup`] |
//! | `Normalization(axis=-1)` | [`Normalizer::adapt_columns`] |
//!
//! ```
//! use features::{Vocabulary, TextVectorizer};
//! let users = Vocabulary::from_sorted_unique(["1", "10", "2"]);
//! assert_eq!((users.lookup("10"), users.lookup("nobody")), (2, 0));
//! let text = TextVectorizer::adapt(["The Rock (1996)", "The Net (1995)"], 10_000);
//! assert_eq!(text.encode("the ROCK!"), vec![2, text.lookup("rock")]);
//! ```
#![warn(missing_docs)]

mod bucketing;
mod hashing;
mod lookup;
mod normalize;
mod quantiles;
mod tokenising;
mod vocab;

pub use bucketing::Buckets;
pub use hashing::{fingerprint64, Hashing, ZeroBins};
pub use lookup::{IntegerLookup, IntegerLookupParts, LookupError, StringLookup, StringLookupParts};
pub use normalize::Normalizer;
pub use tokenising::{standardize, TextVectorizer, PAD_INDEX, UNK_INDEX};
pub use vocab::{adapt_order, Vocabulary, OOV_INDEX};
