//! Loading interactions and tables from delimited text with a header (CSV, TSV, `::`-free
//! formats), with a real CSV parser (`csv`: quoting, embedded delimiters and newlines) in UTF-8
//! or latin-1.
//!
//! Column types of a table are inferred (every value an integer → integer, every value a number
//! → float, else string) unless given; list columns (`genres` = `Action|Comedy`) are declared
//! with their separator. Every bad value is a [`LoadError`] naming the file, the 1-based line and
//! the column.

use std::path::{Path, PathBuf};

use crate::{Column, ColumnType, Interner, Table};

/// Text encoding of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8; invalid bytes are an error.
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
}

/// How a delimited file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFormat {
    /// Field separator (`,` for CSV, `\t` for TSV).
    pub delimiter: u8,
    /// Text encoding.
    pub encoding: Encoding,
}

impl Default for CsvFormat {
    fn default() -> Self {
        Self { delimiter: b',', encoding: Encoding::Utf8 }
    }
}

impl CsvFormat {
    /// `,` for `.csv`, tab for `.tsv` and `.tab`, UTF-8.
    pub fn for_path(path: &Path) -> Self {
        let tab = matches!(path.extension().and_then(|e| e.to_str()), Some("tsv" | "tab"));
        Self { delimiter: if tab { b'\t' } else { b',' }, encoding: Encoding::Utf8 }
    }
}

/// Which columns of an interactions file hold what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionColumns {
    /// The query (user) key.
    pub query_key: String,
    /// The candidate (item) key, joined to the candidate table's key.
    pub candidate_key: String,
    /// Unix seconds (integers), if any.
    pub timestamp: Option<String>,
    /// A numeric weight (e.g. a rating), if any.
    pub weight: Option<String>,
}

/// How to read a table's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableColumns {
    /// The key column.
    pub key: String,
    /// Columns holding lists, with their separator (e.g. `("genres", "|")`).
    pub lists: Vec<(String, String)>,
    /// Types to use instead of inferring.
    pub types: Vec<(String, ColumnType)>,
    /// Values that mean an empty list (MovieLens: `(no genres listed)`).
    pub empty_list_markers: Vec<String>,
}

/// A bad file or value.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A value of a Parquet file is malformed.
    #[error("{}: row group {row_group}, row {row}: {}{problem}", path.display(), column.as_ref().map(|c| format!("column `{c}`: ")).unwrap_or_default())]
    Row {
        /// The file.
        path: PathBuf,
        /// 0-based row group.
        row_group: usize,
        /// 0-based row within the row group.
        row: usize,
        /// The column, when the problem is in one.
        column: Option<String>,
        /// What was wrong and what was expected.
        problem: String,
    },
    /// A value, record or header is malformed.
    #[error("{}:{line}: {}{problem}", path.display(), column.as_ref().map(|c| format!("column `{c}`: ")).unwrap_or_default())]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// The column, when the problem is in one.
        column: Option<String>,
        /// What was wrong and what was expected.
        problem: String,
    },
}

/// A reader of one file that turns its problems into [`LoadError`]s.
pub(crate) struct Records {
    pub(crate) path: PathBuf,
    pub(crate) reader: csv::Reader<std::fs::File>,
    pub(crate) header: Vec<String>,
    pub(crate) encoding: Encoding,
}

impl Records {
    pub(crate) fn open(path: &Path, format: &CsvFormat) -> Result<Self, LoadError> {
        let file = std::fs::File::open(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
        let reader = csv::ReaderBuilder::new().delimiter(format.delimiter).has_headers(true).from_reader(file);
        let mut records = Self { path: path.to_path_buf(), reader, header: Vec::new(), encoding: format.encoding };
        let header = records.reader.byte_headers().cloned().map_err(|e| records.csv_error(e))?;
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(records.fail(1, None, "the file is empty; expected a header line naming the columns".into()));
        }
        let mut names = Vec::with_capacity(header.len());
        for field in &header {
            names.push(records.text(field, 1, None)?.trim_start_matches('\u{feff}').to_owned());
        }
        records.header = names;
        Ok(records)
    }

    pub(crate) fn fail(&self, line: u64, column: Option<&str>, problem: String) -> LoadError {
        LoadError::Value { path: self.path.clone(), line, column: column.map(str::to_owned), problem }
    }

    pub(crate) fn csv_error(&self, error: csv::Error) -> LoadError {
        let line = error.position().map_or(0, |p| p.line());
        match error.into_kind() {
            csv::ErrorKind::Io(source) => LoadError::Io { path: self.path.clone(), source },
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                self.fail(line, None, format!("expected {expected_len} fields as in the header, found {len}"))
            }
            other => self.fail(line, None, format!("{other:?}")),
        }
    }

    /// The index of a named column.
    pub(crate) fn index(&self, name: &str) -> Result<usize, LoadError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            self.fail(1, Some(name), format!("no such column; the header has {}", self.header.join(", ")))
        })
    }

    /// A field as text, decoded.
    pub(crate) fn text<'a>(
        &self,
        bytes: &'a [u8],
        line: u64,
        column: Option<&str>,
    ) -> Result<std::borrow::Cow<'a, str>, LoadError> {
        decode(bytes, self.encoding).map_err(|problem| self.fail(line, column, problem))
    }
}

/// A field's bytes as text in `encoding` (borrowed when they are already valid UTF-8), or the
/// problem in words.
pub(crate) fn decode(bytes: &[u8], encoding: Encoding) -> Result<std::borrow::Cow<'_, str>, String> {
    match (encoding, std::str::from_utf8(bytes)) {
        (Encoding::Utf8, Ok(text)) => Ok(std::borrow::Cow::Borrowed(text)),
        (Encoding::Utf8, Err(e)) => {
            Err(format!("invalid UTF-8 at byte {} of the field (is the file latin-1?)", e.valid_up_to()))
        }
        (Encoding::Latin1, Ok(text)) if bytes.is_ascii() => Ok(std::borrow::Cow::Borrowed(text)),
        (Encoding::Latin1, _) => Ok(std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())),
    }
}

pub(crate) fn parse_i64(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

pub(crate) fn parse_f64(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Reads a table keyed by `columns.key`, every other column typed as declared or inferred.
///
/// # Errors
/// [`LoadError`] for a missing column, a repeated or empty key, or a value of the wrong type.
pub fn load_table(path: &Path, format: &CsvFormat, columns: &TableColumns) -> Result<Table, LoadError> {
    let mut records = Records::open(path, format)?;
    let key_at = records.index(&columns.key)?;
    for (name, _) in columns.lists.iter().map(|(n, s)| (n, s)).chain(columns.types.iter().map(|(n, _)| (n, n))) {
        records.index(name)?;
    }
    let n_fields = records.header.len();
    let mut keys = Interner::new();
    let mut raw: Vec<Vec<String>> = vec![Vec::new(); n_fields];
    let mut lines: Vec<u64> = Vec::new();
    let mut record = csv::ByteRecord::new();
    while records.reader.read_byte_record(&mut record).map_err(|e| records.csv_error(e))? {
        let line = record.position().map_or(0, |p| p.line());
        for (i, field) in record.iter().enumerate() {
            let text = records.text(field, line, Some(&records.header[i]))?.into_owned();
            if i == key_at {
                if text.is_empty() {
                    return Err(records.fail(line, Some(&columns.key), "empty key".into()));
                }
                let before = keys.len();
                if keys.intern(&text) as usize != before {
                    let first = lines[keys.get(&text).expect("interned") as usize];
                    return Err(records.fail(
                        line,
                        Some(&columns.key),
                        format!("key {text:?} repeats line {first}; keys must be unique"),
                    ));
                }
            }
            raw[i].push(text);
        }
        lines.push(line);
    }
    if keys.is_empty() {
        return Err(records.fail(2, None, "no rows after the header; expected one row per key".into()));
    }
    let mut table_columns = Vec::new();
    for (i, values) in raw.into_iter().enumerate() {
        if i == key_at {
            continue;
        }
        let name = records.header[i].clone();
        let list = columns.lists.iter().find(|(n, _)| *n == name).map(|(_, sep)| sep.as_str());
        let declared = columns.types.iter().find(|(n, _)| *n == name).map(|&(_, t)| t);
        let column = build_column(&values, list, declared, &columns.empty_list_markers)
            .map_err(|(row, problem)| records.fail(lines[row], Some(&name), problem))?;
        table_columns.push((name, column));
    }
    Table::new(keys.strings().iter().cloned(), table_columns).map_err(|e| records.fail(1, None, e.to_string()))
}

/// One column from its text values; `Err((row, problem))` for a value of the wrong type.
fn build_column(
    values: &[String],
    list_separator: Option<&str>,
    declared: Option<ColumnType>,
    empty_markers: &[String],
) -> Result<Column, (usize, String)> {
    if let Some(sep) = list_separator {
        let mut column = Column::empty(ColumnType::StringList);
        for value in values {
            if value.is_empty() || empty_markers.iter().any(|m| m == value) {
                column.push_list(std::iter::empty());
            } else {
                column.push_list(value.split(sep));
            }
        }
        return Ok(column);
    }
    let kind = declared.unwrap_or_else(|| {
        if values.iter().all(|v| parse_i64(v).is_some()) {
            ColumnType::Integer
        } else if values.iter().all(|v| parse_f64(v).is_some()) {
            ColumnType::Float
        } else {
            ColumnType::String
        }
    });
    let bad = |row: usize, expected: &str| (row, format!("expected {expected}, found {:?}", values[row]));
    Ok(match kind {
        ColumnType::Integer | ColumnType::Timestamp => {
            let parsed: Vec<i64> = values
                .iter()
                .enumerate()
                .map(|(row, v)| parse_i64(v).ok_or_else(|| bad(row, "an integer")))
                .collect::<Result<_, _>>()?;
            if kind == ColumnType::Integer {
                Column::Integer(parsed)
            } else {
                Column::Timestamp(parsed)
            }
        }
        ColumnType::Float => Column::Float(
            values
                .iter()
                .enumerate()
                .map(|(row, v)| parse_f64(v).ok_or_else(|| bad(row, "a finite number")))
                .collect::<Result<_, _>>()?,
        ),
        ColumnType::String => {
            let mut column = Column::empty(ColumnType::String);
            for v in values {
                column.push_string(v);
            }
            column
        }
        ColumnType::StringList => {
            let mut column = Column::empty(ColumnType::StringList);
            for v in values {
                column.push_list(v.split('|').filter(|s| !s.is_empty()));
            }
            column
        }
    })
}
