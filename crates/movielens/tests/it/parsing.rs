//! Parsing the committed fixtures, good and bad.

use movielens::{parse_movies, parse_ratings, Dataset, Error, ParseIssue};

use crate::fixture;

#[test]
fn good_fixture_keeps_latin1_titles_trailing_spaces_and_duplicates() {
    let data = Dataset::load(&fixture("good")).unwrap();
    assert_eq!(data.ratings.len(), 5);
    assert_eq!(data.ratings[1].movie_id, 2);
    assert_eq!(data.ratings[4].timestamp, 800000005);
    let titles: Vec<&str> = data.movies.iter().map(|m| m.title.as_str()).collect();
    assert_eq!(titles, ["Paper Moons (1996)", "Première Nuit (1995)", "Quiet Harbour (1995) ", "Paper Moons (1996)"]);
    assert_eq!(data.title_of(2), Some("Première Nuit (1995)"));
}

/// Asserts that parsing `file` fails at `line` with `issue`, and that the message names the file.
fn check_error(file: &str, line: usize, issue: ParseIssue) {
    let path = fixture("bad").join(file);
    let bytes = std::fs::read(&path).unwrap();
    let result = if file.ends_with(".data") {
        parse_ratings(&bytes, &path).map(drop)
    } else {
        parse_movies(&bytes, &path).map(drop)
    };
    match result {
        Err(Error::Parse { path: p, line: l, issue: i }) => {
            assert_eq!((l, &i), (line, &issue), "{file}");
            let message = Error::Parse { path: p, line: l, issue: i }.to_string();
            assert!(message.contains(file) && message.contains(&format!(":{line}:")), "{message}");
        }
        other => panic!("{file}: expected a parse error at line {line}, got {other:?}"),
    }
}

#[test]
fn every_malformed_line_names_file_line_and_expectation() {
    check_error("wrong_field_count.data", 2, ParseIssue::FieldCount { expected: 4, found: 3, separator: '\t' });
    check_error("not_a_number.data", 2, ParseIssue::NotANumber { field: "item_id", text: "x2".into() });
    check_error("rating_out_of_range.data", 1, ParseIssue::RatingOutOfRange { rating: 6 });
    check_error("invalid_byte.data", 2, ParseIssue::InvalidByte { byte: 0xff, column: 12 });
    check_error("wrong_field_count.item", 2, ParseIssue::FieldCount { expected: 24, found: 3, separator: '|' });
    check_error("duplicate_id.item", 2, ParseIssue::DuplicateMovieId { movie_id: 1 });
    check_error("not_a_number.item", 1, ParseIssue::NotANumber { field: "movie_id", text: "x1".into() });
}

#[test]
fn a_rating_of_an_unknown_movie_is_an_error_at_its_line() {
    let dir = std::env::temp_dir().join(format!("movielens-unknown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("bad/unknown_movie.data"), dir.join("u.data")).unwrap();
    std::fs::copy(fixture("good/u.item"), dir.join("u.item")).unwrap();
    let error = Dataset::load(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let message = error.to_string();
    assert!(
        matches!(error, Error::Parse { line: 3, issue: ParseIssue::UnknownMovie { movie_id: 99 }, .. }),
        "{message}"
    );
    assert!(message.contains("u.data:3:") && message.contains("movie id 99"), "{message}");
}

#[test]
fn a_missing_directory_says_which_file_is_expected() {
    let error = Dataset::load(&fixture("nowhere")).unwrap_err();
    assert!(error.to_string().contains("u.data"), "{error}");
}

/// A directory holding `u.data` and `u.item` with the given contents.
fn data_dir(name: &str, ratings: &[u8], movies: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("movielens-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("u.data"), ratings).unwrap();
    std::fs::write(dir.join("u.item"), movies).unwrap();
    dir
}

#[test]
fn empty_files_are_errors_naming_the_empty_file() {
    let movies = std::fs::read(fixture("good/u.item")).unwrap();
    let ratings = std::fs::read(fixture("good/u.data")).unwrap();
    for (name, ratings, movies, file) in
        [("no-ratings", &b""[..], &movies[..], "u.data"), ("no-movies", &ratings[..], &b""[..], "u.item")]
    {
        let dir = data_dir(name, ratings, movies);
        let error = Dataset::load(&dir).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        let message = error.to_string();
        assert!(matches!(error, Error::EmptyFile { .. }), "{message}");
        assert!(message.contains(file) && message.contains("empty"), "{message}");
    }
}

#[test]
fn the_largest_movie_id_loads_without_a_table_sized_by_it() {
    let movies = std::fs::read(fixture("bad/huge_id.item")).unwrap();
    let dir = data_dir("huge-id", b"1\t4294967295\t3\t881250949\n", &movies);
    let data = Dataset::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(data.movies[0].movie_id, u32::MAX);
    assert_eq!(data.movie_row(u32::MAX), Some(0));
}

#[test]
fn an_io_error_is_reported_once() {
    // u.data is a directory: the OS error appears in the chain once, not twice in one message.
    let dir = std::env::temp_dir().join(format!("movielens-isdir-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("u.data")).unwrap();
    std::fs::copy(fixture("good/u.item"), dir.join("u.item")).unwrap();
    let error = Dataset::load(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let top = error.to_string();
    let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(top.contains("u.data") && !cause.is_empty(), "{top} / {cause}");
    assert!(!top.contains(&cause), "the cause is printed by the chain, not repeated in the message: {top}");
}
