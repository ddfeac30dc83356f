//! Loading interactions and tables from Parquet (feature `parquet`, arrow-rs `parquet` crate).
//!
//! Column types come from the file's schema: strings (`BYTE_ARRAY` UTF-8) are strings, integers
//! are integers, floats and doubles are floats, `TIMESTAMP` columns are Unix seconds. Keys may be
//! strings or integers (joined as their decimal text). A string column declared as a list is
//! split by its separator, as in CSV; native Parquet `LIST` columns are refused with that advice.
//! Every bad value is a [`LoadError::Row`] naming file, row group, row and column.
//!
//! Reading uses the row API, which is simple and exact but allocates per row: use CSV (parallel)
//! for the largest logs.

use std::collections::HashMap;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::{Column, ColumnType, InteractionColumns, Interactions, Interner, LoadError, Table, TableColumns};

/// Every row of the file as `(row group, row within it, fields by column name)`.
struct Rows {
    path: std::path::PathBuf,
    header: Vec<String>,
    rows: Vec<(usize, usize, Vec<Field>)>,
}

impl Rows {
    fn read(path: &Path) -> Result<Self, LoadError> {
        let fail =
            |problem: String| LoadError::Row { path: path.to_path_buf(), row_group: 0, row: 0, column: None, problem };
        let file = std::fs::File::open(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
        let reader = SerializedFileReader::new(file).map_err(|e| fail(format!("not a readable Parquet file: {e}")))?;
        let metadata = reader.metadata();
        let header: Vec<String> = metadata
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let mut rows = Vec::new();
        for group in 0..metadata.num_row_groups() {
            let group_reader = reader.get_row_group(group).map_err(|e| fail(format!("row group {group}: {e}")))?;
            let iter = group_reader.get_row_iter(None).map_err(|e| fail(format!("row group {group}: {e}")))?;
            for (row, result) in iter.enumerate() {
                let record = result.map_err(|e| LoadError::Row {
                    path: path.to_path_buf(),
                    row_group: group,
                    row,
                    column: None,
                    problem: e.to_string(),
                })?;
                rows.push((group, row, record.get_column_iter().map(|(_, f)| f.clone()).collect()));
            }
        }
        Ok(Self { path: path.to_path_buf(), header, rows })
    }

    fn fail(&self, index: usize, column: Option<&str>, problem: String) -> LoadError {
        let (row_group, row) = self.rows.get(index).map_or((0, 0), |r| (r.0, r.1));
        LoadError::Row { path: self.path.clone(), row_group, row, column: column.map(str::to_owned), problem }
    }

    fn index(&self, name: &str) -> Result<usize, LoadError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| LoadError::Row {
            path: self.path.clone(),
            row_group: 0,
            row: 0,
            column: Some(name.to_string()),
            problem: format!("no such column; the schema has {}", self.header.join(", ")),
        })
    }
}

/// A key: text, or an integer as its decimal text.
fn key_text(field: &Field) -> Option<String> {
    match field {
        Field::Str(s) => Some(s.clone()),
        Field::Int(v) => Some(v.to_string()),
        Field::Long(v) => Some(v.to_string()),
        Field::UInt(v) => Some(v.to_string()),
        Field::ULong(v) => Some(v.to_string()),
        Field::Short(v) => Some(v.to_string()),
        _ => None,
    }
}

fn as_i64(field: &Field) -> Option<i64> {
    match *field {
        Field::Byte(v) => Some(i64::from(v)),
        Field::Short(v) => Some(i64::from(v)),
        Field::Int(v) => Some(i64::from(v)),
        Field::Long(v) => Some(v),
        Field::UByte(v) => Some(i64::from(v)),
        Field::UShort(v) => Some(i64::from(v)),
        Field::UInt(v) => Some(i64::from(v)),
        Field::ULong(v) => i64::try_from(v).ok(),
        _ => None,
    }
}

/// Unix seconds from an integer or a Parquet timestamp.
fn as_seconds(field: &Field) -> Option<i64> {
    match *field {
        Field::TimestampMillis(ms) => Some(ms.div_euclid(1000)),
        Field::TimestampMicros(us) => Some(us.div_euclid(1_000_000)),
        _ => as_i64(field),
    }
}

fn as_f64(field: &Field) -> Option<f64> {
    match *field {
        Field::Float(v) => Some(f64::from(v)),
        Field::Double(v) => Some(v),
        _ => as_i64(field).map(|v| v as f64),
    }
    .filter(|v| v.is_finite())
}

/// Reads interactions from Parquet, joining each candidate key to a row of `candidates`.
///
/// # Errors
/// [`LoadError`] naming row group, row and column of a missing column or a bad value.
pub fn load_interactions_parquet(
    path: &Path,
    columns: &InteractionColumns,
    candidates: &Table,
) -> Result<Interactions, LoadError> {
    let rows = Rows::read(path)?;
    let query_at = rows.index(&columns.query_key)?;
    let candidate_at = rows.index(&columns.candidate_key)?;
    let timestamp_at = columns.timestamp.as_deref().map(|c| rows.index(c)).transpose()?;
    let weight_at = columns.weight.as_deref().map(|c| rows.index(c)).transpose()?;
    let mut out = Interactions {
        timestamp: timestamp_at.map(|_| Vec::new()),
        weight: weight_at.map(|_| Vec::new()),
        ..Interactions::default()
    };
    let mut candidate_rows: HashMap<String, u32> = HashMap::new();
    for (i, (_, _, fields)) in rows.rows.iter().enumerate() {
        let query = key_text(&fields[query_at]).filter(|k| !k.is_empty()).ok_or_else(|| {
            rows.fail(i, Some(&columns.query_key), format!("expected a key, found {}", fields[query_at]))
        })?;
        out.query.push(out.query_keys.intern(&query));
        let key = key_text(&fields[candidate_at]).ok_or_else(|| {
            rows.fail(i, Some(&columns.candidate_key), format!("expected a key, found {}", fields[candidate_at]))
        })?;
        let row = match candidate_rows.get(&key) {
            Some(&row) => row,
            None => {
                let row = candidates.row_of(&key).ok_or_else(|| {
                    rows.fail(i, Some(&columns.candidate_key), format!("{key:?} is not a key of the candidate table"))
                })?;
                candidate_rows.insert(key, row);
                row
            }
        };
        out.candidate.push(row);
        if let (Some(at), Some(values), Some(name)) = (timestamp_at, &mut out.timestamp, &columns.timestamp) {
            let value = as_seconds(&fields[at]).ok_or_else(|| {
                rows.fail(i, Some(name), format!("expected Unix seconds or a timestamp, found {}", fields[at]))
            })?;
            values.push(value);
        }
        if let (Some(at), Some(values), Some(name)) = (weight_at, &mut out.weight, &columns.weight) {
            let value = as_f64(&fields[at])
                .ok_or_else(|| rows.fail(i, Some(name), format!("expected a finite number, found {}", fields[at])))?;
            values.push(value as f32);
        }
    }
    if out.is_empty() {
        return Err(rows.fail(0, None, "no rows; expected one interaction per row".into()));
    }
    Ok(out)
}

/// Reads a table keyed by `columns.key` from Parquet, typed by the file's schema.
///
/// # Errors
/// [`LoadError`] for a missing column, a repeated or empty key, or a value of another type than
/// its column's first non-null value.
pub fn load_table_parquet(path: &Path, columns: &TableColumns) -> Result<Table, LoadError> {
    let rows = Rows::read(path)?;
    let key_at = rows.index(&columns.key)?;
    let mut keys = Interner::new();
    for (i, (_, _, fields)) in rows.rows.iter().enumerate() {
        let key = key_text(&fields[key_at])
            .filter(|k| !k.is_empty())
            .ok_or_else(|| rows.fail(i, Some(&columns.key), format!("expected a key, found {}", fields[key_at])))?;
        if keys.intern(&key) as usize != i {
            return Err(rows.fail(
                i,
                Some(&columns.key),
                format!("key {key:?} repeats row {}", keys.get(&key).unwrap_or(0)),
            ));
        }
    }
    if keys.is_empty() {
        return Err(rows.fail(0, None, "no rows; expected one row per key".into()));
    }
    let mut table_columns = Vec::new();
    for (at, name) in rows.header.iter().enumerate() {
        if at == key_at {
            continue;
        }
        let separator = columns.lists.iter().find(|(n, _)| n == name).map(|(_, s)| s.as_str());
        let first = rows.rows.iter().map(|r| &r.2[at]).find(|f| !matches!(f, Field::Null));
        let kind = match (separator, first) {
            (Some(_), _) => ColumnType::StringList,
            (None, Some(Field::ListInternal(_))) => {
                return Err(rows.fail(0, Some(name), "Parquet LIST columns are not supported; store the list as one string with a separator and declare it as a list column".into()));
            }
            (None, Some(Field::Str(_)) | None) => ColumnType::String,
            (None, Some(Field::TimestampMillis(_) | Field::TimestampMicros(_))) => ColumnType::Timestamp,
            (None, Some(Field::Float(_) | Field::Double(_))) => ColumnType::Float,
            (None, Some(other)) if as_i64(other).is_some() => ColumnType::Integer,
            (None, Some(other)) => {
                return Err(rows.fail(0, Some(name), format!("unsupported value type {other}")));
            }
        };
        let mut column = Column::empty(kind);
        let mut integers = Vec::new();
        let mut floats = Vec::new();
        for (i, (_, _, fields)) in rows.rows.iter().enumerate() {
            let field = &fields[at];
            let bad = |expected: &str| rows.fail(i, Some(name), format!("expected {expected}, found {field}"));
            match kind {
                ColumnType::String => match field {
                    Field::Str(s) => column.push_string(s),
                    Field::Null => column.push_string(""),
                    _ => return Err(bad("a string")),
                },
                ColumnType::StringList => match field {
                    Field::Str(s) if !s.is_empty() && !columns.empty_list_markers.contains(s) => {
                        column.push_list(s.split(separator.unwrap_or("|")))
                    }
                    Field::Str(_) | Field::Null => column.push_list(std::iter::empty()),
                    _ => return Err(bad("a string")),
                },
                ColumnType::Integer => integers.push(as_i64(field).ok_or_else(|| bad("an integer"))?),
                ColumnType::Timestamp => integers.push(as_seconds(field).ok_or_else(|| bad("a timestamp"))?),
                ColumnType::Float => floats.push(as_f64(field).ok_or_else(|| bad("a finite number"))?),
            }
        }
        let column = match kind {
            ColumnType::Integer => Column::Integer(integers),
            ColumnType::Timestamp => Column::Timestamp(integers),
            ColumnType::Float => Column::Float(floats),
            _ => column,
        };
        table_columns.push((name.clone(), column));
    }
    Table::new(keys.strings().iter().cloned(), table_columns).map_err(|e| rows.fail(0, None, e.to_string()))
}
