//! The CSV loaders on small fixtures (quoting, embedded delimiters and newlines, latin-1), every
//! malformed case naming file, line and column, and a mutation loop that must never panic.

use std::path::{Path, PathBuf};

use dataset::{
    load_interactions, load_table, Column, CsvFormat, Encoding, InteractionColumns, LoadError, TableColumns,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn item_columns() -> TableColumns {
    TableColumns {
        key: "item_id".into(),
        lists: vec![("genres".into(), "|".into())],
        empty_list_markers: vec!["(no genres listed)".into()],
        ..TableColumns::default()
    }
}

fn interaction_columns() -> InteractionColumns {
    InteractionColumns {
        query_key: "user".into(),
        candidate_key: "item".into(),
        timestamp: Some("ts".into()),
        weight: Some("rating".into()),
    }
}

#[test]
fn a_quoted_csv_pair_loads_with_inferred_types() {
    let items = load_table(&fixture("items.csv"), &CsvFormat::default(), &item_columns()).unwrap();
    assert_eq!(items.keys(), ["i1", "i2", "i3"]);
    assert_eq!(items.column("title").unwrap().string(0), Some("Red, Green and Blue"));
    assert_eq!(items.column("title").unwrap().string(1), Some("The \"Quoted\" One"));
    assert_eq!(items.column("title").unwrap().string(2), Some("Two\nLines"));
    assert_eq!(items.column("genres").unwrap().list(0).unwrap(), ["Drama", "Comedy"]);
    assert!(items.column("genres").unwrap().list(1).unwrap().is_empty(), "(no genres listed) is an empty list");
    assert_eq!(items.column("price"), Some(&Column::Float(vec![9.5, 12.0, 0.25])));
    assert_eq!(items.column("year"), Some(&Column::Integer(vec![1999, 2001, 1987])));

    let interactions =
        load_interactions(&fixture("interactions.csv"), &CsvFormat::default(), &interaction_columns(), &items).unwrap();
    assert_eq!(interactions.query, [0, 1, 0, 2]);
    assert_eq!(interactions.candidate, [0, 2, 1, 0]);
    assert_eq!(interactions.timestamp.as_deref(), Some(&[100, 90, 110, 120][..]));
    assert_eq!(interactions.weight.as_deref(), Some(&[4.0, 5.0, 3.5, 1.0][..]));
    assert_eq!(interactions.query_key(3), "u3");
    assert_eq!(interactions.bytes_per_interaction(), 20);
}

#[test]
fn latin1_tables_decode_every_byte() {
    let format = CsvFormat { delimiter: b'\t', encoding: Encoding::Latin1 };
    let columns = TableColumns { key: "key".into(), ..TableColumns::default() };
    let users = load_table(&fixture("users-latin1.tsv"), &format, &columns).unwrap();
    assert_eq!(users.column("name").unwrap().string(0), Some("Café"));
    assert_eq!(users.column("name").unwrap().string(1), Some("Naïve"));
    let utf8 =
        load_table(&fixture("users-latin1.tsv"), &CsvFormat { delimiter: b'\t', ..CsvFormat::default() }, &columns);
    let message = utf8.unwrap_err().to_string();
    assert!(message.contains("users-latin1.tsv:2: column `name`: invalid UTF-8"), "{message}");
}

/// Writes `text` to a scratch file and returns its path.
fn scratch(name: &str, text: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dataset-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn interactions_error(text: &str) -> String {
    let items = load_table(&fixture("items.csv"), &CsvFormat::default(), &item_columns()).unwrap();
    let path = scratch("bad-interactions.csv", text.as_bytes());
    load_interactions(&path, &CsvFormat::default(), &interaction_columns(), &items).unwrap_err().to_string()
}

#[test]
fn every_malformed_value_names_file_line_and_column() {
    let cases = [
        ("user,item,ts,rating\nu1,i1,abc,4\n", ":2: column `ts`: expected Unix seconds"),
        ("user,item,ts,rating\nu1,i1,1,4\nu1,i9,2,4\n", ":3: column `item`: \"i9\" is not a key"),
        ("user,item,ts,rating\nu1,i1,1,NaN\n", ":2: column `rating`: expected a finite number"),
        ("user,item,ts,rating\nu1,i1,1\n", ":2: expected 4 fields"),
        ("user,item,ts\nu1,i1,1\n", ":1: column `rating`: no such column"),
        ("user,item,ts,rating\n,i1,1,3\n", ":2: column `user`: empty key"),
        ("user,item,ts,rating\n", ":2: no rows after the header"),
        ("", ":1: the file is empty"),
    ];
    for (text, needle) in cases {
        let message = interactions_error(text);
        assert!(message.contains("bad-interactions.csv") && message.contains(needle), "{needle}: {message}");
    }
    let repeated = scratch("repeated.csv", b"item_id,title,genres\ni1,a,x\ni1,b,y\n");
    let message = load_table(&repeated, &CsvFormat::default(), &item_columns()).unwrap_err().to_string();
    assert!(message.contains(":3: column `item_id`: key \"i1\" repeats line 2"), "{message}");
    let typed = TableColumns { types: vec![("year".into(), dataset::ColumnType::Integer)], ..item_columns() };
    let bad_year = scratch("bad-year.csv", b"item_id,title,genres,year\ni1,a,x,1999\ni2,b,y,soon\n");
    let message = load_table(&bad_year, &CsvFormat::default(), &typed).unwrap_err().to_string();
    assert!(message.contains(":3: column `year`: expected an integer, found \"soon\""), "{message}");
    let missing = load_table(Path::new("/nonexistent/items.csv"), &CsvFormat::default(), &item_columns()).unwrap_err();
    assert!(matches!(missing, LoadError::Io { .. }) && missing.to_string().contains("/nonexistent/items.csv"));
}

#[test]
fn mutated_files_load_or_fail_cleanly_never_panic() {
    let items_text = std::fs::read(fixture("items.csv")).unwrap();
    let interactions_text = std::fs::read(fixture("interactions.csv")).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let replacements = [b',', b'"', b'\n', b'|', 0xff, b'x', b'9', b'-', b'\r', 0];
    let (mut ok, mut errors) = (0, 0);
    for round in 0..3000 {
        let (source, is_table) = if round % 2 == 0 { (&items_text, true) } else { (&interactions_text, false) };
        let mut bytes = source.clone();
        match next() % 3 {
            0 => {
                let at = (next() as usize) % bytes.len();
                bytes[at] = replacements[(next() as usize) % replacements.len()];
            }
            1 => bytes.truncate((next() as usize) % bytes.len()),
            _ => {
                let at = (next() as usize) % bytes.len();
                bytes.insert(at, replacements[(next() as usize) % replacements.len()]);
            }
        }
        let path = scratch(if is_table { "mutated-items.csv" } else { "mutated-interactions.csv" }, &bytes);
        let result = if is_table {
            load_table(&path, &CsvFormat::default(), &item_columns()).map(drop)
        } else {
            let items = load_table(&fixture("items.csv"), &CsvFormat::default(), &item_columns()).unwrap();
            load_interactions(&path, &CsvFormat::default(), &interaction_columns(), &items).map(drop)
        };
        match result {
            Ok(()) => ok += 1,
            Err(error) => {
                assert!(error.to_string().contains("mutated-"), "{error}");
                errors += 1;
            }
        }
    }
    eprintln!("csv mutations: {ok} loaded, {errors} rejected");
    assert!(errors > 100 && ok > 100);
}
