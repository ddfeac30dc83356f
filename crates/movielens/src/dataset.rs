//! The parsed dataset: ratings, movies, and loading both from a directory.

use std::path::Path;

use crate::{parse_movies, parse_ratings, Error, ParseIssue};

/// One line of `u.data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rating {
    /// User id as written in the file (1..=943 in ML-100k).
    pub user_id: u32,
    /// Movie id as written in the file (1..=1682 in ML-100k).
    pub movie_id: u32,
    /// The star rating, 1 to 5.
    pub rating: u8,
    /// Unix seconds.
    pub timestamp: i64,
}

/// One row of `u.item`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movie {
    /// Movie id as written in the file.
    pub movie_id: u32,
    /// The title exactly as in the file, decoded from latin-1 (trailing spaces kept).
    pub title: String,
}

/// The ratings and movies of one MovieLens 100k directory, in file order.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Every line of `u.data`, in file order.
    pub ratings: Vec<Rating>,
    /// Every row of `u.item`, in file order (1682 rows, 1664 distinct titles).
    pub movies: Vec<Movie>,
}

impl Dataset {
    /// Reads `u.data` and `u.item` from `dir` and checks that every rating names a known movie.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let ratings_path = dir.join("u.data");
        let movies_path = dir.join("u.item");
        let ratings = parse_ratings(&read(dir, &ratings_path, "u.data")?, &ratings_path)?;
        let movies = parse_movies(&read(dir, &movies_path, "u.item")?, &movies_path)?;
        if movies.is_empty() {
            return Err(Error::EmptyFile { path: movies_path, expected: "one movie per line" });
        }
        if ratings.is_empty() {
            return Err(Error::EmptyFile { path: ratings_path, expected: "one rating per line" });
        }
        let dataset = Self { ratings, movies };
        dataset.check_movie_ids(&ratings_path)?;
        Ok(dataset)
    }

    /// The title of a movie id, if `u.item` lists it.
    pub fn title_of(&self, movie_id: u32) -> Option<&str> {
        self.movie_row(movie_id).map(|row| self.movies[row].title.as_str())
    }

    /// The row of `movies` holding a movie id.
    pub fn movie_row(&self, movie_id: u32) -> Option<usize> {
        // ML-100k ids are 1..=n in order; fall back to a scan for other layouts.
        let guess = (movie_id as usize).wrapping_sub(1);
        match self.movies.get(guess) {
            Some(m) if m.movie_id == movie_id => Some(guess),
            _ => self.movies.iter().position(|m| m.movie_id == movie_id),
        }
    }

    fn check_movie_ids(&self, ratings_path: &Path) -> Result<(), Error> {
        // A set, not a table indexed by id: ids are arbitrary u32s (4294967295 is a valid one).
        let known: std::collections::HashSet<u32> = self.movies.iter().map(|m| m.movie_id).collect();
        for (line_idx, rating) in self.ratings.iter().enumerate() {
            if !known.contains(&rating.movie_id) {
                return Err(Error::Parse {
                    path: ratings_path.to_path_buf(),
                    line: line_idx + 1,
                    issue: ParseIssue::UnknownMovie { movie_id: rating.movie_id },
                });
            }
        }
        Ok(())
    }
}

fn read(dir: &Path, path: &Path, file: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile { dir: dir.to_path_buf(), file },
        _ => Error::Io { path: path.to_path_buf(), source },
    })
}
