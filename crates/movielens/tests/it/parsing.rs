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
