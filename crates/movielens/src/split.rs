//! Train/test splits as lists of indices into [`Dataset::ratings`](crate::Dataset).
//!
//! Three sources:
//! * [`Split::seeded`]: an 80/20 (or any fraction) shuffle with a documented, portable RNG.
//! * [`Split::from_split_file`]: a `user_id item_id rating timestamp split` TSV, such as
//!   `shared/data/splits/ml-100k-seed42.tsv`.
//! * [`Split::from_tutorial_rows`]: the TFRS tutorial order (one 0-based `u.data` line index per
//!   line; the first 80% are train).

use std::collections::HashMap;
use std::path::Path;

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::parse::{check_ascii, lines, parse_u32};
use crate::{Error, ParseIssue, Rating};

/// The header line of a split file.
pub const SPLIT_FILE_HEADER: &str = "user_id\titem_id\trating\ttimestamp\tsplit";

/// Which ratings train the model and which test it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Indices into the ratings, in the order the source gives them.
    pub train: Vec<usize>,
    /// Indices into the ratings, in the order the source gives them.
    pub test: Vec<usize>,
}

impl Split {
    /// A seeded shuffle of `0..n_ratings`; the first `round(train_fraction · n)` go to train.
    ///
    /// The RNG is `ChaCha8Rng::seed_from_u64(seed)` (rand_chacha, whose output is stable across
    /// versions and platforms), and the shuffle is Fisher-Yates from the end:
    /// for `i` from `n − 1` down to 1, swap `i` with `j = ⌊u64 · (i + 1) / 2⁶⁴⌋` (Lemire's
    /// multiply-shift on one `next_u64`). The same seed always gives the same split.
    ///
    /// # Panics
    /// If `train_fraction` is not within `0..=1`.
    pub fn seeded(n_ratings: usize, seed: u64, train_fraction: f64) -> Self {
        assert!((0.0..=1.0).contains(&train_fraction), "train_fraction {train_fraction} not in [0, 1]");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n_ratings).collect();
        for i in (1..n_ratings).rev() {
            let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
            order.swap(i, j);
        }
        let n_train = (train_fraction * n_ratings as f64).round() as usize;
        let test = order.split_off(n_train);
        Self { train: order, test }
    }

    /// Reads a split file and matches each row to a rating with the same four values.
    ///
    /// # Errors
    /// [`Error::Parse`] for a wrong header, a malformed row, a row that matches no (unused)
    /// rating, or a row count different from `ratings.len()`.
    pub fn from_split_file(path: &Path, ratings: &[Rating]) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let fail = |line, issue| Error::Parse { path: path.to_path_buf(), line, issue };
        let mut unused: HashMap<Rating, Vec<usize>> = HashMap::new();
        for (idx, rating) in ratings.iter().enumerate().rev() {
            unused.entry(*rating).or_default().push(idx);
        }
        // Per rating value: the lines that used its copies, to tell a repeated row from a stray one.
        let mut used_at: HashMap<Rating, usize> = HashMap::new();
        let mut split = Self { train: Vec::new(), test: Vec::new() };
        let mut rows = lines(&bytes);
        let header = rows.next().unwrap_or_default();
        if header.strip_suffix(b"\r").unwrap_or(header) != SPLIT_FILE_HEADER.as_bytes() {
            return Err(fail(1, ParseIssue::Header { expected: SPLIT_FILE_HEADER }));
        }
        let mut n_rows = 0;
        for (row_idx, row) in rows.enumerate() {
            let line = row_idx + 2;
            check_ascii(row).map_err(|issue| fail(line, issue))?;
            let row = row.strip_suffix(b"\r").unwrap_or(row);
            let fields: Vec<&[u8]> = row.split(|&b| b == b'\t').collect();
            if fields.len() != 5 {
                return Err(fail(line, ParseIssue::FieldCount { expected: 5, found: fields.len(), separator: '\t' }));
            }
            let number = |i, name| parse_u32(fields[i], name).map_err(|issue| fail(line, issue));
            let rating = Rating {
                user_id: number(0, "user_id")?,
                movie_id: number(1, "item_id")?,
                rating: u8::try_from(number(2, "rating")?).unwrap_or(u8::MAX),
                timestamp: i64::from(number(3, "timestamp")?),
            };
            let idx = match unused.get_mut(&rating).and_then(Vec::pop) {
                Some(idx) => idx,
                None => match used_at.get(&rating) {
                    Some(&first_line) => return Err(fail(line, ParseIssue::RowRepeated { first_line })),
                    None => return Err(fail(line, ParseIssue::RowNotInRatings)),
                },
            };
            used_at.insert(rating, line);
            match fields[4] {
                b"train" => split.train.push(idx),
                b"test" => split.test.push(idx),
                other => {
                    let text = String::from_utf8_lossy(other).into_owned();
                    return Err(fail(line, ParseIssue::UnknownSplitLabel { text }));
                }
            }
            n_rows += 1;
        }
        if n_rows != ratings.len() {
            return Err(fail(n_rows + 1, ParseIssue::RowCount { expected: ratings.len(), found: n_rows }));
        }
        Ok(split)
    }

    /// Reads the TFRS tutorial row list: each line a 0-based index into `u.data`, every index
    /// exactly once; the first 80% of lines are train (80 000 of 100 000), the rest test.
    ///
    /// # Errors
    /// [`Error::Parse`] for a non-numeric line, an index out of range or repeated, or a line
    /// count different from `n_ratings`.
    pub fn from_tutorial_rows(path: &Path, n_ratings: usize) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let fail = |line, issue| Error::Parse { path: path.to_path_buf(), line, issue };
        let mut seen = vec![false; n_ratings];
        let mut order = Vec::with_capacity(n_ratings);
        for (row_idx, row) in lines(&bytes).enumerate() {
            let line = row_idx + 1;
            check_ascii(row).map_err(|issue| fail(line, issue))?;
            let row = row.strip_suffix(b"\r").unwrap_or(row);
            let index = parse_u32(row, "row_index").map_err(|issue| fail(line, issue))? as usize;
            match seen.get_mut(index) {
                Some(slot) if !*slot => *slot = true,
                _ => return Err(fail(line, ParseIssue::BadRowIndex { index, n_ratings })),
            }
            order.push(index);
        }
        if order.len() != n_ratings {
            return Err(fail(order.len() + 1, ParseIssue::RowCount { expected: n_ratings, found: order.len() }));
        }
        let test = order.split_off(n_ratings * 4 / 5);
        Ok(Self { train: order, test })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_split_is_a_partition_that_depends_on_the_seed_only() {
        let a = Split::seeded(1000, 7, 0.8);
        assert_eq!(a, Split::seeded(1000, 7, 0.8));
        assert_ne!(a, Split::seeded(1000, 8, 0.8));
        assert_eq!((a.train.len(), a.test.len()), (800, 200));
        let mut all: Vec<usize> = a.train.iter().chain(&a.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    const PINNED_TRAIN: [usize; 8] = [9, 7, 2, 5, 0, 1, 4, 3];
    const PINNED_TEST: [usize; 2] = [8, 6];

    #[test]
    fn seeded_split_is_stable_across_releases() {
        // Pinned so that a change of RNG or shuffle algorithm cannot go unnoticed.
        let split = Split::seeded(10, 42, 0.8);
        assert_eq!(split, Split { train: PINNED_TRAIN.to_vec(), test: PINNED_TEST.to_vec() });
    }
}
