//! Every MovieLens release as a neutral [`dataset::Dataset`], auto-detected from the files of a
//! directory, following each release's README:
//!
//! | release | files | separator, encoding |
//! |---|---|---|
//! | 100k | `u.data` (user, item, rating, time), `u.item` (id, title, release date, video date, URL, 19 genre flags), `u.user` (id, age, gender, occupation, zip) | tab / `\|`, latin-1 |
//! | 1M, 10M | `ratings.dat`, `movies.dat` (id, title, `\|` genres), `users.dat` (1M: id, gender, age, occupation code, zip), `tags.dat` (10M) | `::`, latin-1 |
//! | latest-small, latest, 20M, 25M | `ratings.csv`, `movies.csv` (quoted titles, `\|` genres, `(no genres listed)`), `tags.csv` | CSV with header, UTF-8 |
//!
//! Interactions: query key = user id, candidate row = the movie's row in the movie file (file
//! order), timestamp, weight = the rating. Candidate table keyed by movie id, with `title`,
//! `genres` (list) and, where the release has them, `release_date` and `tags` (list, distinct per
//! movie in order of first appearance). Query table keyed by user id, where the release has one.

use std::path::Path;

use dataset::{Column, ColumnType, CsvFormat, InteractionColumns, Interactions, Table, TableColumns};

use crate::dat::{parse_dat, DatFile};
use crate::parse::{parse_item_rows, parse_users_100k};
use crate::{Error, ParseIssue};

/// A MovieLens release layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// `u.data`, `u.item`, `u.user`.
    Ml100k,
    /// `ratings.dat`, `movies.dat`, `users.dat` / `tags.dat` (1M, 10M).
    Dat,
    /// `ratings.csv`, `movies.csv`, `tags.csv` (latest-small, latest, 20M, 25M).
    Csv,
}

impl Release {
    /// The layout of `dir`, from the files it holds.
    ///
    /// # Errors
    /// [`Error::UnknownLayout`] when none of `u.data`, `ratings.dat`, `ratings.csv` is there.
    pub fn detect(dir: &Path) -> Result<Self, Error> {
        for (file, release) in [("u.data", Self::Ml100k), ("ratings.dat", Self::Dat), ("ratings.csv", Self::Csv)] {
            if dir.join(file).exists() {
                return Ok(release);
            }
        }
        Err(Error::UnknownLayout { dir: dir.to_path_buf() })
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ml100k => "MovieLens 100k",
            Self::Dat => "MovieLens 1M/10M (.dat)",
            Self::Csv => "MovieLens CSV release",
        }
    }
}

/// Loads whichever release `dir` holds.
///
/// # Errors
/// [`Error`] naming the file and line of anything malformed, or a rating of an unknown movie.
pub fn load(dir: &Path) -> Result<dataset::Dataset, Error> {
    let release = Release::detect(dir)?;
    let mut data = match release {
        Release::Ml100k => load_100k(dir)?,
        Release::Dat => load_dat(dir)?,
        Release::Csv => load_csv(dir)?,
    };
    data.source = format!("{} from {}", release.name(), dir.display());
    data.validate().map_err(|e| Error::Inconsistent { dir: dir.to_path_buf(), problem: e.to_string() })?;
    Ok(data)
}

fn read(dir: &Path, file: &'static str) -> Result<Vec<u8>, Error> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile { dir: dir.to_path_buf(), file },
        _ => Error::Io { path, source },
    })
}

fn read_optional(dir: &Path, file: &'static str) -> Result<Option<Vec<u8>>, Error> {
    match read(dir, file) {
        Err(Error::MissingFile { .. }) => Ok(None),
        other => other.map(Some),
    }
}

/// `u.data` + `u.item` (+ `u.user`).
fn load_100k(dir: &Path) -> Result<dataset::Dataset, Error> {
    let raw = crate::Dataset::load(dir)?;
    let items = parse_item_rows(&read(dir, "u.item")?, &dir.join("u.item"))?;
    let mut title = Column::empty(ColumnType::String);
    let mut release_date = Column::empty(ColumnType::String);
    let mut genres = Column::empty(ColumnType::StringList);
    for item in &items {
        title.push_string(&item.title);
        release_date.push_string(&item.release_date);
        genres.push_list(item.genres.iter().copied());
    }
    let keys = items.iter().map(|m| m.movie_id.to_string());
    let columns = vec![("title".into(), title), ("release_date".into(), release_date), ("genres".into(), genres)];
    let candidates = table(dir, "u.item", keys, columns)?;
    let mut interactions =
        Interactions { timestamp: Some(Vec::new()), weight: Some(Vec::new()), ..Interactions::default() };
    for rating in &raw.ratings {
        let row = raw.movie_row(rating.movie_id).expect("Dataset::load checked every movie id");
        push(&mut interactions, &rating.user_id.to_string(), row as u32, rating.timestamp, f32::from(rating.rating));
    }
    let queries = match read_optional(dir, "u.user")? {
        Some(bytes) => Some(parse_users_100k(&bytes, &dir.join("u.user"))?),
        None => None,
    };
    Ok(dataset::Dataset { source: String::new(), interactions, candidates, queries })
}

fn push(interactions: &mut Interactions, user: &str, row: u32, timestamp: i64, weight: f32) {
    interactions.query.push(interactions.query_keys.intern(user));
    interactions.candidate.push(row);
    interactions.timestamp.as_mut().expect("with timestamps").push(timestamp);
    interactions.weight.as_mut().expect("with weights").push(weight);
}

fn table(
    dir: &Path,
    file: &'static str,
    keys: impl IntoIterator<Item = String>,
    columns: Vec<(String, Column)>,
) -> Result<Table, Error> {
    Table::new(keys, columns).map_err(|e| Error::Inconsistent { dir: dir.join(file), problem: e.to_string() })
}

/// `ratings.dat` + `movies.dat` (+ `users.dat`, `tags.dat`).
fn load_dat(dir: &Path) -> Result<dataset::Dataset, Error> {
    let movies_path = dir.join("movies.dat");
    let movies = parse_dat(&read(dir, "movies.dat")?, &DatFile::MOVIES, &movies_path)?;
    let mut title = Column::empty(ColumnType::String);
    let mut genres = Column::empty(ColumnType::StringList);
    let mut keys = Vec::with_capacity(movies.len());
    let mut row_of = std::collections::HashMap::new();
    for (line_idx, fields) in movies.iter().enumerate() {
        let id = crate::parse::parse_u32(fields[0].as_bytes(), "MovieID").map_err(|issue| Error::Parse {
            path: movies_path.clone(),
            line: line_idx + 1,
            issue,
        })?;
        if row_of.insert(id, keys.len() as u32).is_some() {
            let issue = ParseIssue::DuplicateMovieId { movie_id: id };
            return Err(Error::Parse { path: movies_path, line: line_idx + 1, issue });
        }
        keys.push(id.to_string());
        title.push_string(&fields[1]);
        genres.push_list(split_genres(&fields[2]));
    }
    let mut columns = vec![("title".to_string(), title), ("genres".to_string(), genres)];
    let ratings_path = dir.join("ratings.dat");
    let ratings = parse_dat(&read(dir, "ratings.dat")?, &DatFile::RATINGS, &ratings_path)?;
    let mut interactions =
        Interactions { timestamp: Some(Vec::new()), weight: Some(Vec::new()), ..Interactions::default() };
    for (line_idx, fields) in ratings.iter().enumerate() {
        let fail = |issue| Error::Parse { path: ratings_path.clone(), line: line_idx + 1, issue };
        let movie = crate::parse::parse_u32(fields[1].as_bytes(), "MovieID").map_err(fail)?;
        let row = *row_of.get(&movie).ok_or_else(|| fail(ParseIssue::UnknownMovie { movie_id: movie }))?;
        let rating: f32 = fields[2]
            .parse()
            .ok()
            .filter(|r: &f32| (0.5..=5.0).contains(r))
            .ok_or_else(|| fail(ParseIssue::NotANumber { field: "Rating", text: fields[2].clone() }))?;
        let timestamp = crate::parse::parse_u32(fields[3].as_bytes(), "Timestamp").map_err(fail)?;
        crate::parse::parse_u32(fields[0].as_bytes(), "UserID").map_err(fail)?;
        push(&mut interactions, &fields[0], row, i64::from(timestamp), rating);
    }
    if let Some(bytes) = read_optional(dir, "tags.dat")? {
        let tags_path = dir.join("tags.dat");
        let tags = parse_dat(&bytes, &DatFile::TAGS, &tags_path)?;
        columns.push((
            "tags".to_string(),
            tag_column(
                keys.len(),
                tags.iter().enumerate().map(|(i, f)| (i + 1, f[1].as_str(), f[2].as_str())),
                &row_of,
                &tags_path,
            )?,
        ));
    }
    let candidates = table(dir, "movies.dat", keys, columns)?;
    let queries = match read_optional(dir, "users.dat")? {
        Some(bytes) => {
            let users_path = dir.join("users.dat");
            let users = parse_dat(&bytes, &DatFile::USERS, &users_path)?;
            let mut gender = Column::empty(ColumnType::String);
            let (mut age, mut occupation) = (Vec::new(), Vec::new());
            let mut zip = Column::empty(ColumnType::String);
            for (line_idx, fields) in users.iter().enumerate() {
                let fail = |issue| Error::Parse { path: users_path.clone(), line: line_idx + 1, issue };
                gender.push_string(&fields[1]);
                age.push(i64::from(crate::parse::parse_u32(fields[2].as_bytes(), "Age").map_err(fail)?));
                occupation.push(i64::from(crate::parse::parse_u32(fields[3].as_bytes(), "Occupation").map_err(fail)?));
                zip.push_string(&fields[4]);
            }
            let columns = vec![
                ("gender".to_string(), gender),
                ("age".to_string(), Column::Integer(age)),
                ("occupation".to_string(), Column::Integer(occupation)),
                ("zip".to_string(), zip),
            ];
            Some(table(dir, "users.dat", users.iter().map(|f| f[0].clone()), columns)?)
        }
        None => None,
    };
    Ok(dataset::Dataset { source: String::new(), interactions, candidates, queries })
}

/// `Action|Comedy` → `["Action", "Comedy"]`; `(no genres listed)` → `[]`.
fn split_genres(text: &str) -> impl Iterator<Item = &str> {
    let none = text.is_empty() || text == NO_GENRES;
    text.split('|').filter(move |_| !none)
}

/// What the CSV releases write for a movie without genres.
const NO_GENRES: &str = "(no genres listed)";

/// Distinct tags per movie row, in order of first appearance; `(line, movie id, tag)` per tag.
fn tag_column<'a>(
    n_rows: usize,
    tags: impl Iterator<Item = (usize, &'a str, &'a str)>,
    row_of: &std::collections::HashMap<u32, u32>,
    path: &Path,
) -> Result<Column, Error> {
    let mut per_row: Vec<Vec<&str>> = vec![Vec::new(); n_rows];
    for (line, movie, tag) in tags {
        let fail = |issue| Error::Parse { path: path.to_path_buf(), line, issue };
        let id = crate::parse::parse_u32(movie.as_bytes(), "movieId").map_err(fail)?;
        let row = *row_of.get(&id).ok_or_else(|| fail(ParseIssue::UnknownMovie { movie_id: id }))?;
        if !per_row[row as usize].contains(&tag) {
            per_row[row as usize].push(tag);
        }
    }
    let mut column = Column::empty(ColumnType::StringList);
    for tags in per_row {
        column.push_list(tags);
    }
    Ok(column)
}

/// `ratings.csv` + `movies.csv` (+ `tags.csv`).
fn load_csv(dir: &Path) -> Result<dataset::Dataset, Error> {
    let format = CsvFormat::default();
    let movies_path = dir.join("movies.csv");
    if !movies_path.exists() {
        return Err(Error::MissingFile { dir: dir.to_path_buf(), file: "movies.csv" });
    }
    let table_columns = TableColumns {
        key: "movieId".into(),
        lists: vec![("genres".into(), "|".into())],
        types: vec![("title".into(), ColumnType::String)],
        empty_list_markers: vec![NO_GENRES.into()],
    };
    let mut candidates = dataset::load_table(&movies_path, &format, &table_columns)?;
    let columns = InteractionColumns {
        query_key: "userId".into(),
        candidate_key: "movieId".into(),
        timestamp: Some("timestamp".into()),
        weight: Some("rating".into()),
    };
    let interactions = dataset::load_interactions(&dir.join("ratings.csv"), &format, &columns, &candidates)?;
    let tags_path = dir.join("tags.csv");
    if tags_path.exists() {
        let rows = read_tags_csv(&tags_path)?;
        let row_of: std::collections::HashMap<u32, u32> = candidates
            .keys()
            .iter()
            .enumerate()
            .filter_map(|(row, key)| key.parse().ok().map(|id| (id, row as u32)))
            .collect();
        let tags = tag_column(
            candidates.n_rows(),
            rows.iter().map(|(l, m, t)| (*l, m.as_str(), t.as_str())),
            &row_of,
            &tags_path,
        )?;
        let mut columns = candidates.columns().to_vec();
        columns.push(("tags".into(), tags));
        candidates = table(dir, "movies.csv", candidates.keys().to_vec(), columns)?;
    }
    Ok(dataset::Dataset { source: String::new(), interactions, candidates, queries: None })
}

/// `(line, movieId, tag)` of every row of a `tags.csv` (`userId,movieId,tag,timestamp`).
fn read_tags_csv(path: &Path) -> Result<Vec<(usize, String, String)>, Error> {
    let table_error = |line: u64, problem: String| {
        Error::Load(dataset::LoadError::Value { path: path.to_path_buf(), line, column: None, problem })
    };
    let mut reader = csv::ReaderBuilder::new().from_path(path).map_err(|e| table_error(0, e.to_string()))?;
    let header = reader.headers().map_err(|e| table_error(1, e.to_string()))?.clone();
    let (Some(movie_at), Some(tag_at)) =
        (header.iter().position(|h| h == "movieId"), header.iter().position(|h| h == "tag"))
    else {
        return Err(table_error(1, "expected the header userId,movieId,tag,timestamp".into()));
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            table_error(line, describe_csv_error(&e))
        })?;
        let line = record.position().map_or(0, |p| p.line()) as usize;
        out.push((line, record[movie_at].to_string(), record[tag_at].to_string()));
    }
    Ok(out)
}

/// A csv error in words.
fn describe_csv_error(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".into(),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields as in the header, found {len}")
        }
        other => format!("{other:?}"),
    }
}
