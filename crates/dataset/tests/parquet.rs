//! Parquet tables and interactions (feature `parquet`): files written here with the `parquet`
//! crate's own writer (two row groups, snappy), typed columns, and errors naming row group, row
//! and column.
#![cfg(feature = "parquet")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dataset::{load_interactions_parquet, load_table_parquet, Column, InteractionColumns, TableColumns};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// One column's values for every row group.
enum Values {
    Text(Vec<Vec<&'static str>>),
    Long(Vec<Vec<i64>>),
    Double(Vec<Vec<f64>>),
}

fn write(path: &Path, schema: &str, columns: &[Values]) {
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut writer = SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let n_groups = match &columns[0] {
        Values::Text(v) => v.len(),
        Values::Long(v) => v.len(),
        Values::Double(v) => v.len(),
    };
    for group in 0..n_groups {
        let mut row_group = writer.next_row_group().unwrap();
        for values in columns {
            let mut column = row_group.next_column().unwrap().unwrap();
            match values {
                Values::Text(v) => {
                    let bytes: Vec<ByteArray> = v[group].iter().map(|s| ByteArray::from(*s)).collect();
                    column.typed::<ByteArrayType>().write_batch(&bytes, None, None).unwrap();
                }
                Values::Long(v) => {
                    column.typed::<Int64Type>().write_batch(&v[group], None, None).unwrap();
                }
                Values::Double(v) => {
                    column.typed::<DoubleType>().write_batch(&v[group], None, None).unwrap();
                }
            }
            column.close().unwrap();
        }
        row_group.close().unwrap();
    }
    writer.close().unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dataset-parquet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn items(path: &Path) {
    write(
        path,
        "message items { required int64 item_id; required binary title (UTF8); required binary genres (UTF8); required double price; }",
        &[
            Values::Long(vec![vec![10, 20], vec![30]]),
            Values::Text(vec![vec!["Red, Green", "Naïve"], vec!["Blue"]]),
            Values::Text(vec![vec!["Drama|Comedy", ""], vec!["Action"]]),
            Values::Double(vec![vec![9.5, 12.0], vec![0.25]]),
        ],
    );
}

fn item_columns() -> TableColumns {
    TableColumns { key: "item_id".into(), lists: vec![("genres".into(), "|".into())], ..TableColumns::default() }
}

#[test]
fn a_parquet_pair_loads_with_schema_types_across_row_groups() {
    let (items_path, log_path) = (scratch("items.parquet"), scratch("log.parquet"));
    items(&items_path);
    write(
        &log_path,
        "message log { required binary user (UTF8); required int64 item; required int64 ts; required double rating; }",
        &[
            Values::Text(vec![vec!["u1", "u2"], vec!["u1"]]),
            Values::Long(vec![vec![30, 10], vec![20]]),
            Values::Long(vec![vec![100, 90], vec![110]]),
            Values::Double(vec![vec![4.0, 5.0], vec![3.5]]),
        ],
    );
    let table = load_table_parquet(&items_path, &item_columns()).unwrap();
    assert_eq!(table.keys(), ["10", "20", "30"]);
    assert_eq!(table.column("title").unwrap().string(1), Some("Naïve"));
    assert_eq!(table.column("genres").unwrap().list(0).unwrap(), ["Drama", "Comedy"]);
    assert!(table.column("genres").unwrap().list(1).unwrap().is_empty());
    assert_eq!(table.column("price"), Some(&Column::Float(vec![9.5, 12.0, 0.25])));
    let columns = InteractionColumns {
        query_key: "user".into(),
        candidate_key: "item".into(),
        timestamp: Some("ts".into()),
        weight: Some("rating".into()),
    };
    let log = load_interactions_parquet(&log_path, &columns, &table).unwrap();
    assert_eq!(log.candidate, [2, 0, 1]);
    assert_eq!(log.query, [0, 1, 0]);
    assert_eq!(log.timestamp.as_deref(), Some(&[100, 90, 110][..]));
    assert_eq!(log.weight.as_deref(), Some(&[4.0, 5.0, 3.5][..]));

    // A key the table lacks, in the second row group, is named there.
    write(
        &log_path,
        "message log { required binary user (UTF8); required int64 item; }",
        &[Values::Text(vec![vec!["u1"], vec!["u2"]]), Values::Long(vec![vec![10], vec![99]])],
    );
    let columns = InteractionColumns { timestamp: None, weight: None, ..columns };
    let error = load_interactions_parquet(&log_path, &columns, &table).unwrap_err().to_string();
    assert!(error.contains("log.parquet: row group 1, row 0: column `item`: \"99\" is not a key"), "{error}");
    let missing = InteractionColumns { query_key: "customer".into(), ..columns };
    let error = load_interactions_parquet(&log_path, &missing, &table).unwrap_err().to_string();
    assert!(error.contains("column `customer`: no such column; the schema has user, item"), "{error}");
    std::fs::write(&log_path, b"PAR1 not really").unwrap();
    let error = load_interactions_parquet(&log_path, &missing, &table).unwrap_err().to_string();
    assert!(error.contains("not a readable Parquet file"), "{error}");
}

#[test]
fn repeated_parquet_keys_are_errors() {
    let path = scratch("dup.parquet");
    write(
        &path,
        "message items { required int64 item_id; required binary title (UTF8); }",
        &[Values::Long(vec![vec![1, 2, 1]]), Values::Text(vec![vec!["a", "b", "c"]])],
    );
    let error = load_table_parquet(&path, &TableColumns { key: "item_id".into(), ..TableColumns::default() });
    let message = error.unwrap_err().to_string();
    assert!(message.contains("row group 0, row 2: column `item_id`: key \"1\" repeats row 0"), "{message}");
}
