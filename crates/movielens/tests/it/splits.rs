//! The split file and the tutorial row list, against the good fixture.

use movielens::split::Split;
use movielens::{Dataset, Error, ParseIssue};

use crate::fixture;

#[test]
fn split_file_rows_map_to_their_ratings() {
    let data = Dataset::load(&fixture("good")).unwrap();
    let split = movielens::split::from_split_file(&fixture("good/split.tsv"), &data.ratings).unwrap();
    assert_eq!(split, Split { train: vec![0, 2, 3], validation: vec![], test: vec![1, 4] });
}

#[test]
fn split_file_errors_name_the_line() {
    let data = Dataset::load(&fixture("good")).unwrap();
    let label = movielens::split::from_split_file(&fixture("bad/split_bad_label.tsv"), &data.ratings).unwrap_err();
    assert!(matches!(&label, Error::Parse { line: 2, issue: ParseIssue::UnknownSplitLabel { .. }, .. }), "{label}");
    let unknown = movielens::split::from_split_file(&fixture("bad/split_unknown_row.tsv"), &data.ratings).unwrap_err();
    assert!(matches!(&unknown, Error::Parse { line: 2, issue: ParseIssue::RowNotInRatings, .. }), "{unknown}");
    let repeated =
        movielens::split::from_split_file(&fixture("bad/split_repeated_row.tsv"), &data.ratings).unwrap_err();
    assert!(
        matches!(&repeated, Error::Parse { line: 3, issue: ParseIssue::RowRepeated { first_line: 2 }, .. }),
        "{repeated}"
    );
    assert!(repeated.to_string().contains("repeats line 2"), "{repeated}");
    let short = movielens::split::from_split_file(
        &fixture("good/split.tsv"),
        &[data.ratings.clone(), data.ratings.clone()].concat(),
    )
    .unwrap_err();
    assert!(matches!(&short, Error::Parse { issue: ParseIssue::RowCount { expected: 10, found: 5 }, .. }), "{short}");
}

#[test]
fn tutorial_rows_take_the_first_80_percent_as_train() {
    let split = movielens::split::from_tutorial_rows(&fixture("good/rows.txt"), 5).unwrap();
    assert_eq!(split, Split { train: vec![4, 0, 2, 1], validation: vec![], test: vec![3] });
    let repeated = movielens::split::from_tutorial_rows(&fixture("bad/rows_repeated.txt"), 5).unwrap_err();
    assert!(
        matches!(&repeated, Error::Parse { line: 3, issue: ParseIssue::BadRowIndex { index: 4, .. }, .. }),
        "{repeated}"
    );
}
