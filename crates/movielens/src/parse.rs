//! Line parsers for `u.data` and `u.item`, following TFDS's `movielens_parsing.py`.
//!
//! TFDS decodes each line as latin-1 and strips the *line* (Python `str.strip()`), then splits;
//! fields themselves are never trimmed. `u.data` is plain ASCII here, so any other byte is an
//! error; in `u.item` every byte is a valid latin-1 character.

use std::path::Path;

use crate::{Error, Movie, ParseIssue, Rating};

/// Number of `|`-separated fields in a `u.item` row: id, title, release date, video release
/// date, IMDb URL and 19 genre flags.
const ITEM_FIELDS: usize = 24;

/// Parses the contents of `u.data`; `path` is only used in error messages.
///
/// # Errors
/// [`Error::Parse`] for a line that is not four tab-separated non-negative integers with a
/// rating in 1..=5, that contains a non-ASCII or control byte, or that is empty (other than
/// after the final newline).
pub fn parse_ratings(bytes: &[u8], path: &Path) -> Result<Vec<Rating>, Error> {
    let mut ratings = Vec::with_capacity(bytes.len() / 20);
    for (line_idx, line) in lines(bytes).enumerate() {
        let fail = |issue| Error::Parse { path: path.to_path_buf(), line: line_idx + 1, issue };
        check_ascii(line).map_err(fail)?;
        let text = python_strip_latin1(line);
        let fields: Vec<&[u8]> = text.split(|&b| b == b'\t').collect();
        if fields.len() != 4 {
            return Err(fail(ParseIssue::FieldCount { expected: 4, found: fields.len(), separator: '\t' }));
        }
        let user_id = parse_u32(fields[0], "user_id").map_err(fail)?;
        let movie_id = parse_u32(fields[1], "item_id").map_err(fail)?;
        let rating = parse_u32(fields[2], "rating").map_err(fail)?;
        let timestamp = parse_u32(fields[3], "timestamp").map_err(fail)?;
        if !(1..=5).contains(&rating) {
            return Err(fail(ParseIssue::RatingOutOfRange { rating }));
        }
        ratings.push(Rating { user_id, movie_id, rating: rating as u8, timestamp: i64::from(timestamp) });
    }
    Ok(ratings)
}

/// Parses the contents of `u.item` (latin-1); `path` is only used in error messages.
///
/// Titles are decoded from latin-1 to `String` and kept byte for byte, including the
/// trailing spaces of three ML-100k titles.
///
/// # Errors
/// [`Error::Parse`] for a row without 24 `|`-separated fields, a non-numeric movie id, an id
/// listed twice, or an empty line.
pub fn parse_movies(bytes: &[u8], path: &Path) -> Result<Vec<Movie>, Error> {
    let mut movies: Vec<Movie> = Vec::with_capacity(2048);
    let mut seen = std::collections::HashSet::new();
    for (line_idx, line) in lines(bytes).enumerate() {
        let fail = |issue| Error::Parse { path: path.to_path_buf(), line: line_idx + 1, issue };
        let text = python_strip_latin1(line);
        let fields: Vec<&[u8]> = text.split(|&b| b == b'|').collect();
        if fields.len() != ITEM_FIELDS {
            return Err(fail(ParseIssue::FieldCount { expected: ITEM_FIELDS, found: fields.len(), separator: '|' }));
        }
        let movie_id = parse_u32(fields[0], "movie_id").map_err(fail)?;
        if !seen.insert(movie_id) {
            return Err(fail(ParseIssue::DuplicateMovieId { movie_id }));
        }
        movies.push(Movie { movie_id, title: decode_latin1(fields[1]) });
    }
    Ok(movies)
}

/// The 19 genres of `u.item`'s flag columns, in the order of the 100k README (and `u.genre`).
pub const GENRES_100K: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// One `u.item` row with every attribute the neutral dataset keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemRow {
    pub(crate) movie_id: u32,
    pub(crate) title: String,
    /// As written (`01-Jan-1995`), possibly empty.
    pub(crate) release_date: String,
    pub(crate) genres: Vec<&'static str>,
}

/// `u.item` with release dates and genre flags (the rules of [`parse_movies`], plus: each flag
/// is 0 or 1).
pub(crate) fn parse_item_rows(bytes: &[u8], path: &Path) -> Result<Vec<ItemRow>, Error> {
    let movies = parse_movies(bytes, path)?;
    let mut rows = Vec::with_capacity(movies.len());
    for ((line_idx, line), movie) in lines(bytes).enumerate().zip(movies) {
        let fail = |issue| Error::Parse { path: path.to_path_buf(), line: line_idx + 1, issue };
        let text = python_strip_latin1(line);
        let fields: Vec<&[u8]> = text.split(|&b| b == b'|').collect();
        let mut genres = Vec::new();
        for (genre, flag) in GENRES_100K.iter().zip(&fields[5..]) {
            match *flag {
                b"1" => genres.push(*genre),
                b"0" => {}
                other => return Err(fail(ParseIssue::NotAFlag { genre, text: decode_latin1(other) })),
            }
        }
        rows.push(ItemRow {
            movie_id: movie.movie_id,
            title: movie.title,
            release_date: decode_latin1(fields[2]),
            genres,
        });
    }
    Ok(rows)
}

/// `u.user`: `user id | age | gender | occupation | zip code`, as a table keyed by user id.
pub(crate) fn parse_users_100k(bytes: &[u8], path: &Path) -> Result<dataset::Table, Error> {
    use dataset::{Column, ColumnType};
    let (mut keys, mut age) = (Vec::new(), Vec::new());
    let (mut gender, mut occupation, mut zip) =
        (Column::empty(ColumnType::String), Column::empty(ColumnType::String), Column::empty(ColumnType::String));
    for (line_idx, line) in lines(bytes).enumerate() {
        let fail = |issue| Error::Parse { path: path.to_path_buf(), line: line_idx + 1, issue };
        check_ascii(line).map_err(fail)?;
        let text = python_strip_latin1(line);
        let fields: Vec<&[u8]> = text.split(|&b| b == b'|').collect();
        if fields.len() != 5 {
            return Err(fail(ParseIssue::FieldCount { expected: 5, found: fields.len(), separator: '|' }));
        }
        keys.push(parse_u32(fields[0], "user_id").map_err(fail)?.to_string());
        age.push(i64::from(parse_u32(fields[1], "age").map_err(fail)?));
        gender.push_string(&decode_latin1(fields[2]));
        occupation.push_string(&decode_latin1(fields[3]));
        zip.push_string(&decode_latin1(fields[4]));
    }
    let columns = vec![
        ("age".to_string(), Column::Integer(age)),
        ("gender".to_string(), gender),
        ("occupation".to_string(), occupation),
        ("zip".to_string(), zip),
    ];
    dataset::Table::new(keys, columns)
        .map_err(|e| Error::Inconsistent { dir: path.to_path_buf(), problem: e.to_string() })
}

/// Splits on `\n`, dropping only the empty piece after a final newline.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = body.is_empty() && bytes.is_empty();
    body.split(|&b| b == b'\n').filter(move |_| !empty)
}

/// Every byte of latin-1 is the Unicode code point of the same value.
pub(crate) fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Python's `str.strip()` on a latin-1 decoded line: the whitespace characters of U+0000..=U+00FF
/// are `\t \n \v \f \r`, `\x1c`..=`\x1f`, space, `\x85` and `\xa0`.
pub(crate) fn python_strip_latin1(line: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b'\t'..=b'\r' | 0x1c..=0x20 | 0x85 | 0xa0);
    let start = line.iter().position(|b| !is_space(b)).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &line[start..end]
}

/// Rejects bytes outside printable ASCII (tab and the trailing `\r` of CRLF files allowed).
pub(crate) fn check_ascii(line: &[u8]) -> Result<(), ParseIssue> {
    match line.iter().position(|&b| !(b == b'\t' || b == b'\r' || (0x20..0x7f).contains(&b))) {
        Some(i) => Err(ParseIssue::InvalidByte { byte: line[i], column: i + 1 }),
        None => Ok(()),
    }
}

pub(crate) fn parse_u32(field: &[u8], name: &'static str) -> Result<u32, ParseIssue> {
    let not_a_number = || ParseIssue::NotANumber { field: name, text: decode_latin1(field) };
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return Err(not_a_number());
    }
    field
        .iter()
        .try_fold(0u32, |acc, &d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
        .ok_or_else(not_a_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_matches_python_on_latin1_whitespace() {
        assert_eq!(python_strip_latin1(b"\xa0 a b \x85\r"), b"a b");
        assert_eq!(python_strip_latin1(b"   "), b"");
        assert_eq!(python_strip_latin1(b"x\x1f"), b"x");
    }

    #[test]
    fn numbers_reject_signs_blanks_and_overflow() {
        assert_eq!(parse_u32(b"42", "f"), Ok(42));
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1.0", b"99999999999"] {
            assert!(parse_u32(bad, "f").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lines_keep_inner_empty_lines_and_drop_the_final_newline() {
        assert_eq!(lines(b"a\n\nb\n").collect::<Vec<_>>(), vec![&b"a"[..], b"", b"b"]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"a").count(), 1);
    }
}
