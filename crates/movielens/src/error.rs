//! The crate's error type: every variant names the file (and line) it is about.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while reading, splitting or downloading MovieLens.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: cannot read or write", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line did not have the expected shape.
    #[error("{}:{line}: {issue}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong and what was expected.
        issue: ParseIssue,
    },
    /// The data directory lacks a file the dataset needs.
    #[error("{}: missing; expected the MovieLens 100k file `{file}` there", dir.display())]
    MissingFile {
        /// The directory that was searched.
        dir: PathBuf,
        /// The missing file name.
        file: &'static str,
    },
    /// The directory holds no MovieLens release this crate knows.
    #[error("{}: no MovieLens files found; expected u.data (100k), ratings.dat (1M, 10M) or ratings.csv (latest, 20M, 25M)", dir.display())]
    UnknownLayout {
        /// The directory.
        dir: PathBuf,
    },
    /// Files that parse but disagree (e.g. a repeated key).
    #[error("{}: {problem}", dir.display())]
    Inconsistent {
        /// The file or directory.
        dir: PathBuf,
        /// What disagrees.
        problem: String,
    },
    /// A CSV release file is malformed.
    #[error(transparent)]
    Load(#[from] dataset::LoadError),
    /// A data file holds no rows.
    #[error("{}: the file is empty; expected {expected}", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
    },
    /// The HTTP transfer failed (connection refused, cut halfway, bad status).
    #[error("downloading {url}: {message}")]
    Download {
        /// The address.
        url: String,
        /// The transport's description of the failure.
        message: DownloadFailure,
    },
    /// The downloaded archive does not have the expected MD5.
    #[error("downloading {url}: MD5 checksum mismatch: expected {expected}, got {actual}; nothing was written")]
    Checksum {
        /// The address.
        url: String,
        /// The published checksum.
        expected: String,
        /// The checksum of what arrived.
        actual: String,
    },
    /// The archive could not be unpacked.
    #[cfg(feature = "download")]
    #[error("{}: not a valid ml-100k zip archive", path.display())]
    Zip {
        /// The archive.
        path: PathBuf,
        /// The zip reader's error.
        source: zip::result::ZipError,
    },
}

/// A transport failure while downloading, kept as the transport's own words.
#[derive(Debug)]
pub struct DownloadFailure(pub(crate) String);

impl fmt::Display for DownloadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What was wrong with one line of a MovieLens file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseIssue {
    /// The line had the wrong number of separated fields.
    FieldCount {
        /// How many fields the format has.
        expected: usize,
        /// How many the line had.
        found: usize,
        /// The separator, for the message.
        separator: char,
    },
    /// A field that must be a number was not.
    NotANumber {
        /// The field's name in the format.
        field: &'static str,
        /// The text found there.
        text: String,
    },
    /// A byte that the format does not allow (u.data and split files are ASCII).
    InvalidByte {
        /// The byte.
        byte: u8,
        /// 1-based column of the byte.
        column: usize,
    },
    /// A rating outside 1..=5.
    RatingOutOfRange {
        /// The value found.
        rating: u32,
    },
    /// A rating of a movie id that `u.item` does not list.
    UnknownMovie {
        /// The movie id.
        movie_id: u32,
    },
    /// A movie id listed twice in `u.item`.
    DuplicateMovieId {
        /// The movie id.
        movie_id: u32,
    },
    /// A split label other than `train` or `test`.
    UnknownSplitLabel {
        /// The text found.
        text: String,
    },
    /// A `.dat` line with the wrong number of `::`-separated fields.
    DatFieldCount {
        /// The fields of the format.
        expected: &'static [&'static str],
        /// How many the line had.
        found: usize,
    },
    /// A genre flag of `u.item` other than 0 or 1.
    NotAFlag {
        /// The genre.
        genre: &'static str,
        /// The text found.
        text: String,
    },
    /// A split-file row that does not match any rating of `u.data`.
    RowNotInRatings,
    /// A split-file row that repeats an earlier row beyond the number of equal ratings.
    RowRepeated {
        /// The 1-based line that used the (last) matching rating.
        first_line: usize,
    },
    /// A row index past the end of the ratings, or listed twice.
    BadRowIndex {
        /// The index found.
        index: usize,
        /// How many ratings there are.
        n_ratings: usize,
    },
    /// The file had a different number of rows than the ratings.
    RowCount {
        /// Rows expected (the number of ratings).
        expected: usize,
        /// Rows found.
        found: usize,
    },
    /// The header line was not the expected one.
    Header {
        /// The expected header.
        expected: &'static str,
    },
}

impl fmt::Display for ParseIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldCount { expected, found, separator } => {
                write!(f, "expected {expected} fields separated by {separator:?}, found {found}")
            }
            Self::NotANumber { field, text } => {
                write!(f, "field `{field}`: expected a non-negative integer, found {text:?}")
            }
            Self::InvalidByte { byte, column } => {
                write!(f, "invalid byte 0x{byte:02x} at column {column}: expected printable ASCII")
            }
            Self::RatingOutOfRange { rating } => {
                write!(f, "field `rating`: expected 1 to 5, found {rating}")
            }
            Self::UnknownMovie { movie_id } => {
                write!(f, "rating of movie id {movie_id}, which u.item does not list")
            }
            Self::DuplicateMovieId { movie_id } => write!(f, "movie id {movie_id} listed twice"),
            Self::UnknownSplitLabel { text } => {
                write!(f, "field `split`: expected `train` or `test`, found {text:?}")
            }
            Self::DatFieldCount { expected, found } => {
                write!(f, "expected {} fields ({}) separated by \"::\", found {found}", expected.len(), expected.join("::"))
            }
            Self::NotAFlag { genre, text } => write!(f, "genre flag `{genre}`: expected 0 or 1, found {text:?}"),
            Self::RowNotInRatings => write!(f, "row matches no rating in u.data"),
            Self::RowRepeated { first_line } => write!(
                f,
                "row repeats line {first_line}, which already used the matching rating of u.data; each rating is listed once"
            ),
            Self::BadRowIndex { index, n_ratings } => {
                write!(f, "row index {index}: expected each of 0..{n_ratings} exactly once")
            }
            Self::RowCount { expected, found } => {
                write!(f, "expected {expected} rows (one per rating), found {found}")
            }
            Self::Header { expected } => write!(f, "expected the header line {expected:?}"),
        }
    }
}
