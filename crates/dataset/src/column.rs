//! Typed columns of a table: strings (interned), integers, floats, timestamps and lists of
//! strings (genres, tags).

use serde::{Deserialize, Serialize};

use crate::Interner;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    /// Text, interned per column.
    String,
    /// Signed 64-bit integers.
    Integer,
    /// 64-bit floats.
    Float,
    /// Unix seconds.
    Timestamp,
    /// A list of strings per row (e.g. `Action|Comedy`), interned per column.
    StringList,
}

/// One column's values, one per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Column {
    /// Per row, an id into `values`.
    String {
        /// `(n_rows)` ids into `values`.
        ids: Vec<u32>,
        /// The distinct strings.
        values: Interner,
    },
    /// Per row, an integer.
    Integer(Vec<i64>),
    /// Per row, a float.
    Float(Vec<f64>),
    /// Per row, Unix seconds.
    Timestamp(Vec<i64>),
    /// Per row, a list of ids into `values`: row `i` holds `items[offsets[i]..offsets[i + 1]]`.
    StringList {
        /// `(n_rows + 1)` offsets into `items`, starting at 0.
        offsets: Vec<u32>,
        /// Every row's ids, concatenated.
        items: Vec<u32>,
        /// The distinct strings.
        values: Interner,
    },
}

impl Column {
    /// An empty column of type `kind`.
    pub fn empty(kind: ColumnType) -> Self {
        match kind {
            ColumnType::String => Self::String { ids: Vec::new(), values: Interner::new() },
            ColumnType::Integer => Self::Integer(Vec::new()),
            ColumnType::Float => Self::Float(Vec::new()),
            ColumnType::Timestamp => Self::Timestamp(Vec::new()),
            ColumnType::StringList => Self::StringList { offsets: vec![0], items: Vec::new(), values: Interner::new() },
        }
    }

    /// The column's type.
    pub fn kind(&self) -> ColumnType {
        match self {
            Self::String { .. } => ColumnType::String,
            Self::Integer(_) => ColumnType::Integer,
            Self::Float(_) => ColumnType::Float,
            Self::Timestamp(_) => ColumnType::Timestamp,
            Self::StringList { .. } => ColumnType::StringList,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::String { ids, .. } => ids.len(),
            Self::Integer(v) | Self::Timestamp(v) => v.len(),
            Self::Float(v) => v.len(),
            Self::StringList { offsets, .. } => offsets.len() - 1,
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `row` of a string column.
    pub fn string(&self, row: usize) -> Option<&str> {
        match self {
            Self::String { ids, values } => ids.get(row).map(|&id| values.resolve(id)),
            _ => None,
        }
    }

    /// Row `row` of a list column, as strings.
    pub fn list(&self, row: usize) -> Option<Vec<&str>> {
        match self {
            Self::StringList { offsets, items, values } if row + 1 < offsets.len() => {
                let range = offsets[row] as usize..offsets[row + 1] as usize;
                Some(items[range].iter().map(|&id| values.resolve(id)).collect())
            }
            _ => None,
        }
    }

    /// Appends a string to a string column.
    ///
    /// # Panics
    /// On another column type (a programmer error).
    pub fn push_string(&mut self, value: &str) {
        match self {
            Self::String { ids, values } => ids.push(values.intern(value)),
            other => panic!("push_string on a {:?} column", other.kind()),
        }
    }

    /// Appends a list to a list column.
    ///
    /// # Panics
    /// On another column type (a programmer error), or past `u32::MAX` items.
    pub fn push_list<'a>(&mut self, list: impl IntoIterator<Item = &'a str>) {
        match self {
            Self::StringList { offsets, items, values } => {
                items.extend(list.into_iter().map(|s| values.intern(s)));
                offsets.push(u32::try_from(items.len()).expect("more than u32::MAX list items"));
            }
            other => panic!("push_list on a {:?} column", other.kind()),
        }
    }

    /// Heap bytes held by the column's values (not counting interned strings).
    pub fn value_bytes(&self) -> usize {
        match self {
            Self::String { ids, .. } => ids.len() * 4,
            Self::Integer(v) | Self::Timestamp(v) => v.len() * 8,
            Self::Float(v) => v.len() * 8,
            Self::StringList { offsets, items, .. } => (offsets.len() + items.len()) * 4,
        }
    }
}
