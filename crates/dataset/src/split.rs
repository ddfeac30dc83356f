//! Train / validation / test splits as lists of indices into the interactions.
//!
//! Sources:
//! * [`Split::seeded`]: a shuffle with a documented, portable RNG; the first fraction trains.
//! * [`Split::from_row_list`]: a given order of every row (the TFRS tutorial list); the first
//!   80 % trains.
//! * [`Split::temporal`]: a global time cut; the latest fraction of interactions tests.
//! * [`Split::last_per_query`]: each query's (user's) latest `n` interactions test.
//!
//! Any of them can then set aside a validation block from its training rows
//! ([`Split::carve_validation`], seeded or by time), so that model selection never looks at test.

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Which interactions train, validate and test the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Indices into the interactions, in the order the source gives them.
    pub train: Vec<usize>,
    /// Indices held out of `train` for model selection (empty unless carved).
    pub validation: Vec<usize>,
    /// Indices into the interactions, in the order the source gives them.
    pub test: Vec<usize>,
}

/// How to carve a validation block out of the training rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validation {
    /// A seeded random `fraction` of the training rows.
    Random {
        /// Share of the training rows, in `(0, 1)`.
        fraction: f64,
        /// Seed of the shuffle.
        seed: u64,
    },
    /// The latest `fraction` of the training rows by time (ties by index).
    Latest {
        /// Share of the training rows, in `(0, 1)`.
        fraction: f64,
    },
}

/// Why a split cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// A fraction outside its range.
    #[error("{what} {value}: expected a number in {range}")]
    Fraction {
        /// Which fraction.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, for the message.
        range: &'static str,
    },
    /// A temporal split of interactions without timestamps.
    #[error("a temporal split needs timestamps, and these interactions have none (give --timestamp COL)")]
    NoTimestamps,
    /// A row list with an index out of range or repeated.
    #[error("line {line}: row index {index}: expected each of 0..{n_rows} exactly once")]
    BadRowIndex {
        /// 1-based line.
        line: usize,
        /// The index found.
        index: usize,
        /// Number of interactions.
        n_rows: usize,
    },
    /// A row list of the wrong length.
    #[error("expected {expected} rows (one per interaction), found {found}")]
    RowCount {
        /// Interactions.
        expected: usize,
        /// Rows listed.
        found: usize,
    },
}

fn check_fraction(what: &'static str, value: f64, open: bool) -> Result<(), SplitError> {
    let ok = if open { value > 0.0 && value < 1.0 } else { (0.0..=1.0).contains(&value) };
    if ok {
        Ok(())
    } else {
        Err(SplitError::Fraction { what, value, range: if open { "(0, 1)" } else { "[0, 1]" } })
    }
}

/// Fisher-Yates from the end with ChaCha8 and Lemire's multiply-shift (see [`Split::seeded`]).
fn shuffle(order: &mut [usize], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..order.len()).rev() {
        let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
}

impl Split {
    /// A seeded shuffle of `0..n`; the first `round(train_fraction · n)` go to train.
    ///
    /// The RNG is `ChaCha8Rng::seed_from_u64(seed)` (rand_chacha, whose output is stable across
    /// versions and platforms), and the shuffle is Fisher-Yates from the end:
    /// for `i` from `n − 1` down to 1, swap `i` with `j = ⌊u64 · (i + 1) / 2⁶⁴⌋` (Lemire's
    /// multiply-shift on one `next_u64`). The same seed always gives the same split.
    ///
    /// # Panics
    /// If `train_fraction` is not within `0..=1` ([`Split::try_seeded`] returns an error instead).
    pub fn seeded(n: usize, seed: u64, train_fraction: f64) -> Self {
        Self::try_seeded(n, seed, train_fraction).expect("train_fraction in [0, 1]")
    }

    /// [`Split::seeded`], with an error for a fraction outside `[0, 1]`.
    ///
    /// # Errors
    /// [`SplitError::Fraction`].
    pub fn try_seeded(n: usize, seed: u64, train_fraction: f64) -> Result<Self, SplitError> {
        check_fraction("train fraction", train_fraction, false)?;
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, seed);
        let n_train = (train_fraction * n as f64).round() as usize;
        let test = order.split_off(n_train);
        Ok(Self { train: order, validation: Vec::new(), test })
    }

    /// A given order of every index `0..n` (one per line of `text`); the first 80 % train
    /// (`n · 4 / 5`, as the TFRS tutorials' `take(80_000)` of 100 000).
    ///
    /// # Errors
    /// [`SplitError`] for a non-numeric line, an index out of range or repeated, or a wrong count.
    pub fn from_row_list(order: &[usize], n: usize) -> Result<Self, SplitError> {
        let mut seen = vec![false; n];
        for (line, &index) in order.iter().enumerate() {
            match seen.get_mut(index) {
                Some(slot) if !*slot => *slot = true,
                _ => return Err(SplitError::BadRowIndex { line: line + 1, index, n_rows: n }),
            }
        }
        if order.len() != n {
            return Err(SplitError::RowCount { expected: n, found: order.len() });
        }
        let mut train = order.to_vec();
        let test = train.split_off(n * 4 / 5);
        Ok(Self { train, validation: Vec::new(), test })
    }

    /// A global time cut: the latest `round(test_fraction · n)` interactions (by timestamp, ties
    /// by index) test, the rest train; both lists in index order.
    ///
    /// # Errors
    /// [`SplitError`] for a fraction outside `[0, 1]` or missing timestamps.
    pub fn temporal(timestamps: Option<&[i64]>, test_fraction: f64) -> Result<Self, SplitError> {
        check_fraction("test fraction", test_fraction, false)?;
        let timestamps = timestamps.ok_or(SplitError::NoTimestamps)?;
        let n_test = (test_fraction * timestamps.len() as f64).round() as usize;
        let mut is_test = vec![false; timestamps.len()];
        for &i in latest(timestamps, (0..timestamps.len()).collect(), n_test).iter() {
            is_test[i] = true;
        }
        Ok(Self::from_flags(&is_test))
    }

    /// Each query's latest `n` interactions test (ties by index), keeping at least one of its
    /// interactions in train; both lists in index order.
    ///
    /// # Errors
    /// [`SplitError::NoTimestamps`].
    pub fn last_per_query(queries: &[u32], timestamps: Option<&[i64]>, n: usize) -> Result<Self, SplitError> {
        let timestamps = timestamps.ok_or(SplitError::NoTimestamps)?;
        let n_queries = queries.iter().copied().max().map_or(0, |m| m as usize + 1);
        let mut per_query: Vec<Vec<usize>> = vec![Vec::new(); n_queries];
        for (i, &q) in queries.iter().enumerate() {
            per_query[q as usize].push(i);
        }
        let mut is_test = vec![false; queries.len()];
        for rows in per_query {
            let take = n.min(rows.len().saturating_sub(1));
            for i in latest(timestamps, rows, take) {
                is_test[i] = true;
            }
        }
        Ok(Self::from_flags(&is_test))
    }

    fn from_flags(is_test: &[bool]) -> Self {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, &t) in is_test.iter().enumerate() {
            if t {
                test.push(i);
            } else {
                train.push(i);
            }
        }
        Self { train, validation: Vec::new(), test }
    }

    /// Moves a validation block out of `train` (train keeps its order; validation is in index
    /// order). `timestamps` is needed for [`Validation::Latest`].
    ///
    /// # Errors
    /// [`SplitError`] for a fraction outside `(0, 1)` or missing timestamps.
    pub fn carve_validation(mut self, how: Validation, timestamps: Option<&[i64]>) -> Result<Self, SplitError> {
        let mut held = match how {
            Validation::Random { fraction, seed } => {
                check_fraction("validation fraction", fraction, true)?;
                let mut order = self.train.clone();
                shuffle(&mut order, seed);
                let n = (fraction * order.len() as f64).round() as usize;
                order.split_off(order.len() - n)
            }
            Validation::Latest { fraction } => {
                check_fraction("validation fraction", fraction, true)?;
                let timestamps = timestamps.ok_or(SplitError::NoTimestamps)?;
                let n = (fraction * self.train.len() as f64).round() as usize;
                latest(timestamps, self.train.clone(), n)
            }
        };
        held.sort_unstable();
        self.train.retain(|i| held.binary_search(i).is_err());
        self.validation = held;
        Ok(self)
    }
}

/// The `n` latest of `rows` by timestamp (ties: the higher index is later).
fn latest(timestamps: &[i64], mut rows: Vec<usize>, n: usize) -> Vec<usize> {
    rows.sort_unstable_by_key(|&i| (timestamps[i], i));
    rows.split_off(rows.len() - n.min(rows.len()))
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

    #[test]
    fn seeded_split_is_stable_across_releases() {
        // Pinned so that a change of RNG or shuffle algorithm cannot go unnoticed.
        let split = Split::seeded(10, 42, 0.8);
        assert_eq!(split.train, [9, 7, 2, 5, 0, 1, 4, 3]);
        assert_eq!(split.test, [8, 6]);
    }

    #[test]
    fn temporal_split_puts_the_latest_in_test_with_ties_by_index() {
        let ts = [5, 1, 9, 9, 3, 7];
        let split = Split::temporal(Some(&ts), 0.5).unwrap();
        assert_eq!((split.train, split.test), (vec![0, 1, 4], vec![2, 3, 5]));
        let split = Split::temporal(Some(&ts), 1.0 / 6.0).unwrap();
        assert_eq!(split.test, [3], "of the tied 9s, the later index is later");
        assert_eq!(Split::temporal(None, 0.2), Err(SplitError::NoTimestamps));
        assert!(Split::temporal(Some(&ts), 1.5).is_err());
    }

    #[test]
    fn last_per_query_keeps_one_training_row_per_query() {
        let queries = [0, 0, 0, 1, 1, 2];
        let ts = [3, 1, 2, 10, 20, 5];
        let split = Split::last_per_query(&queries, Some(&ts), 1).unwrap();
        assert_eq!((split.train, split.test), (vec![1, 2, 3, 5], vec![0, 4]));
        let two = Split::last_per_query(&queries, Some(&ts), 2).unwrap();
        assert_eq!(two.test, [0, 2, 4], "query 0 keeps one, query 1 keeps one, query 2 has one");
    }

    #[test]
    fn validation_is_carved_from_train_only() {
        let ts: Vec<i64> = (0..100).map(|i| (i * 37) % 100).collect();
        let base = Split::seeded(100, 1, 0.8);
        let random = base.clone().carve_validation(Validation::Random { fraction: 0.25, seed: 3 }, None).unwrap();
        assert_eq!((random.train.len(), random.validation.len(), random.test), (60, 20, base.test.clone()));
        assert!(random.validation.iter().all(|i| base.train.contains(i) && !random.train.contains(i)));
        let latest = base.clone().carve_validation(Validation::Latest { fraction: 0.25 }, Some(&ts)).unwrap();
        let newest_train = latest.train.iter().map(|&i| ts[i]).max().unwrap();
        assert!(latest.validation.iter().all(|&i| ts[i] >= newest_train));
        assert!(base.carve_validation(Validation::Random { fraction: 0.0, seed: 1 }, None).is_err());
    }
}
