//! The `::`-separated latin-1 files of MovieLens 1M and 10M (`ratings.dat`, `movies.dat`,
//! `users.dat`, `tags.dat`), as their READMEs describe them.

use std::path::Path;

use crate::parse::{decode_latin1, lines};
use crate::{Error, ParseIssue};

/// One `.dat` layout: its field names, and the one free-text field that may itself contain
/// `::` (the title of `movies.dat`, the tag of `tags.dat`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatFile {
    pub(crate) fields: &'static [&'static str],
    pub(crate) free_text: Option<usize>,
}

impl DatFile {
    /// `MovieID::Title::Genres`.
    pub(crate) const MOVIES: Self = Self { fields: &["MovieID", "Title", "Genres"], free_text: Some(1) };
    /// `UserID::MovieID::Rating::Timestamp`.
    pub(crate) const RATINGS: Self = Self { fields: &["UserID", "MovieID", "Rating", "Timestamp"], free_text: None };
    /// `UserID::Gender::Age::Occupation::Zip-code`.
    pub(crate) const USERS: Self =
        Self { fields: &["UserID", "Gender", "Age", "Occupation", "Zip-code"], free_text: None };
    /// `UserID::MovieID::Tag::Timestamp`.
    pub(crate) const TAGS: Self = Self { fields: &["UserID", "MovieID", "Tag", "Timestamp"], free_text: Some(2) };
}

/// Every line's fields, decoded from latin-1; a trailing `\r` is dropped.
///
/// # Errors
/// [`Error::Parse`] for a line with the wrong number of fields (or an empty line).
pub(crate) fn parse_dat(bytes: &[u8], layout: &DatFile, path: &Path) -> Result<Vec<Vec<String>>, Error> {
    let mut rows = Vec::with_capacity(bytes.len() / 24);
    for (line_idx, line) in lines(bytes).enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = decode_latin1(line);
        let parts: Vec<&str> = text.split("::").collect();
        let n = layout.fields.len();
        let fields: Vec<String> = match (layout.free_text, parts.len()) {
            (_, found) if found == n => parts.iter().map(|s| (*s).to_string()).collect(),
            (Some(free), found) if found > n => {
                let tail = n - free - 1;
                let mut fields: Vec<String> = parts[..free].iter().map(|s| (*s).to_string()).collect();
                fields.push(parts[free..found - tail].join("::"));
                fields.extend(parts[found - tail..].iter().map(|s| (*s).to_string()));
                fields
            }
            (_, found) => {
                let issue = ParseIssue::DatFieldCount { expected: layout.fields, found };
                return Err(Error::Parse { path: path.to_path_buf(), line: line_idx + 1, issue });
            }
        };
        rows.push(fields);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_fields_keep_their_own_separators() {
        let rows = parse_dat(b"1::Toy::Story (1995)::Animation|Comedy\r\n", &DatFile::MOVIES, Path::new("m")).unwrap();
        assert_eq!(rows[0], ["1", "Toy::Story (1995)", "Animation|Comedy"]);
        let error = parse_dat(b"1::2::3\n", &DatFile::RATINGS, Path::new("ratings.dat")).unwrap_err();
        assert!(error.to_string().contains("ratings.dat:1: expected 4 fields"), "{error}");
    }
}
