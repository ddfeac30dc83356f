//! The MovieLens split sources: a split file (`user_id item_id rating timestamp split`, such as
//! `shared/data/splits/ml-100k-seed42.tsv`) and the TFRS tutorial row list. The seeded shuffle
//! and the temporal splits are in [`dataset::split`], re-exported here.

use std::collections::HashMap;
use std::path::Path;

pub use dataset::Split;

use crate::parse::{check_ascii, lines, parse_u32};
use crate::{Error, ParseIssue, Rating};

/// The header line of a split file.
pub const SPLIT_FILE_HEADER: &str = "user_id\titem_id\trating\ttimestamp\tsplit";

/// Reads a split file and matches each row to a rating with the same four values.
///
/// # Errors
/// [`Error::Parse`] for a wrong header, a malformed row, a row that matches no (unused)
/// rating, or a row count different from `ratings.len()`.
pub fn from_split_file(path: &Path, ratings: &[Rating]) -> Result<Split, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let fail = |line, issue| Error::Parse { path: path.to_path_buf(), line, issue };
    let mut unused: HashMap<Rating, Vec<usize>> = HashMap::new();
    for (idx, rating) in ratings.iter().enumerate().rev() {
        unused.entry(*rating).or_default().push(idx);
    }
    // Per rating value: the lines that used its copies, to tell a repeated row from a stray one.
    let mut used_at: HashMap<Rating, usize> = HashMap::new();
    let mut split = Split::default();
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
pub fn from_tutorial_rows(path: &Path, n_ratings: usize) -> Result<Split, Error> {
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
    Ok(Split { train: order, validation: Vec::new(), test })
}

/// The ratings of a neutral dataset loaded from MovieLens, for matching split files: user and
/// movie keys as numbers, the weight as the star rating.
///
/// # Errors
/// [`Error::Inconsistent`] when a key is not a number or there is no weight or time column.
pub fn ratings_of(data: &dataset::Dataset) -> Result<Vec<Rating>, Error> {
    let inconsistent = |problem: String| Error::Inconsistent { dir: data.source.clone().into(), problem };
    let (Some(timestamps), Some(weights)) = (&data.interactions.timestamp, &data.interactions.weight) else {
        return Err(inconsistent("a split file needs ratings with a time and a weight column".into()));
    };
    let number = |key: &str| key.parse::<u32>().map_err(|_| inconsistent(format!("key {key:?} is not a MovieLens id")));
    let movie_ids: Vec<u32> = data.candidates.keys().iter().map(|k| number(k)).collect::<Result<_, _>>()?;
    (0..data.interactions.len())
        .map(|i| {
            Ok(Rating {
                user_id: number(data.interactions.query_key(i))?,
                movie_id: movie_ids[data.interactions.candidate[i] as usize],
                rating: weights[i] as u8,
                timestamp: timestamps[i],
            })
        })
        .collect()
}
