//! Loading interactions from a delimited file, in parallel where the file allows it.
//!
//! A file without any `"` cannot have quoted delimiters or newlines, so its records are exactly
//! its lines: the body is cut at newlines into chunks that rayon parses concurrently (each with
//! its own key caches), and the chunks are merged in file order, so query ids are numbered in
//! order of first appearance exactly as a sequential pass numbers them. A file with quotes is
//! parsed sequentially. Either way every bad value is a [`LoadError`] naming file, line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::csv_files::{decode, parse_f64, Records};
use crate::{CsvFormat, Encoding, InteractionColumns, Interactions, LoadError, Table};

/// Bytes per parallel chunk (about 16 MB: many chunks per core, few merges).
const CHUNK_BYTES: usize = 16 << 20;

/// What a worker needs to read fields and report errors.
#[derive(Debug, Clone)]
struct Context<'a> {
    path: PathBuf,
    encoding: Encoding,
    delimiter: u8,
    n_fields: usize,
    columns: &'a InteractionColumns,
    query_at: usize,
    candidate_at: usize,
    timestamp_at: Option<usize>,
    weight_at: Option<usize>,
    candidates: &'a Table,
}

impl Context<'_> {
    fn fail(&self, line: u64, column: Option<&str>, problem: String) -> LoadError {
        LoadError::Value { path: self.path.clone(), line, column: column.map(str::to_owned), problem }
    }

    fn text<'b>(&self, bytes: &'b [u8], line: u64, column: &str) -> Result<std::borrow::Cow<'b, str>, LoadError> {
        decode(bytes, self.encoding).map_err(|problem| self.fail(line, Some(column), problem))
    }
}

/// FNV-1a: keys here are short ids (`"27349"`), for which SipHash's setup dominates; nothing
/// untrusted can choose them to collide on purpose in a local file load.
#[derive(Debug, Clone, Copy, Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, word: u64) {
        // One multiply-xorshift round for packed keys (see `pack`).
        let mixed = (self.0 ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = mixed ^ (mixed >> 29);
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type FnvMap<V> = HashMap<Box<[u8]>, V, std::hash::BuildHasherDefault<Fnv>>;

/// A key of at most 7 bytes packed into a `u64` (its length in the top byte, so `"1"` and
/// `"1\0"` differ): most keys are short ids, and comparing a `u64` beats a `memcmp` call.
fn pack(bytes: &[u8]) -> Option<u64> {
    (bytes.len() <= 7).then(|| {
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        word[7] = bytes.len() as u8;
        u64::from_le_bytes(word)
    })
}

/// The canonical decimal number a key spells (`"0"`, `"27349"`; not `"007"`, `"+1"`, `" 1"`),
/// if below 10⁷: such keys index a dense table instead of a hash map.
fn small_number(key: &[u8]) -> Option<usize> {
    let canonical =
        !key.is_empty() && key.len() <= 7 && key.iter().all(u8::is_ascii_digit) && (key[0] != b'0' || key.len() == 1);
    canonical.then(|| key.iter().fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')))
}

/// Key → id: numeric keys in a dense table, other short keys packed (see [`pack`]), the rest
/// hashed. All three are exact: a key maps to the id it was inserted with, byte for byte.
#[derive(Debug, Default)]
struct KeyMap {
    /// Indexed by [`small_number`]; `u32::MAX` is absent.
    dense: Vec<u32>,
    short: HashMap<u64, u32, std::hash::BuildHasherDefault<Fnv>>,
    long: FnvMap<u32>,
}

impl KeyMap {
    fn get(&self, key: &[u8]) -> Option<u32> {
        if let Some(n) = small_number(key) {
            return self.dense.get(n).copied().filter(|&id| id != u32::MAX);
        }
        match pack(key) {
            Some(word) => self.short.get(&word).copied(),
            None => self.long.get(key).copied(),
        }
    }

    fn insert(&mut self, key: &[u8], id: u32) {
        if let Some(n) = small_number(key) {
            if self.dense.len() <= n {
                self.dense.resize(n + 1, u32::MAX);
            }
            self.dense[n] = id;
            return;
        }
        match pack(key) {
            Some(word) => self.short.insert(word, id),
            None => self.long.insert(key.into(), id),
        };
    }
}

/// One chunk's interactions, with query ids local to the chunk.
#[derive(Debug, Default)]
struct Part {
    /// Per interaction, an index into `keys`.
    query: Vec<u32>,
    /// Distinct query keys in order of first appearance in this chunk.
    keys: Vec<String>,
    candidate: Vec<u32>,
    timestamp: Vec<i64>,
    weight: Vec<f32>,
}

/// Integer from ASCII digits with an optional sign and surrounding spaces.
fn parse_i64_bytes(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.trim().parse().ok()
}

/// Parses records (each from `reader`) into a [`Part`]; `first_line` is the file line of the
/// reader's first record.
fn parse_part<R: std::io::Read>(
    context: &Context<'_>,
    mut reader: csv::Reader<R>,
    first_line: u64,
    expected_rows: usize,
) -> Result<Part, LoadError> {
    let mut part = Part {
        query: Vec::with_capacity(expected_rows),
        candidate: Vec::with_capacity(expected_rows),
        timestamp: Vec::with_capacity(if context.timestamp_at.is_some() { expected_rows } else { 0 }),
        weight: Vec::with_capacity(if context.weight_at.is_some() { expected_rows } else { 0 }),
        keys: Vec::new(),
    };
    let mut local_ids = KeyMap::default();
    let mut candidate_rows = KeyMap::default();
    let mut last_query: (Vec<u8>, u32) = (Vec::new(), u32::MAX);
    let mut record = csv::ByteRecord::new();
    let columns = context.columns;
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            let line = first_line + e.position().map_or(1, |p| p.line()) - 1;
            context.fail(line, None, format!("{:?}", e.kind()))
        })?;
        if !more {
            break;
        }
        let line = first_line + record.position().map_or(1, |p| p.line()) - 1;
        if record.len() != context.n_fields {
            let problem = format!("expected {} fields as in the header, found {}", context.n_fields, record.len());
            return Err(context.fail(line, None, problem));
        }
        let query = &record[context.query_at];
        let query_id = if last_query.1 != u32::MAX && last_query.0 == query {
            last_query.1
        } else {
            let id = match local_ids.get(query) {
                Some(id) => id,
                None => {
                    let key = context.text(query, line, &columns.query_key)?;
                    if key.trim().is_empty() {
                        return Err(context.fail(line, Some(&columns.query_key), "empty key".into()));
                    }
                    let id = part.keys.len() as u32;
                    part.keys.push(key.into_owned());
                    local_ids.insert(query, id);
                    id
                }
            };
            last_query.0.clear();
            last_query.0.extend_from_slice(query);
            last_query.1 = id;
            id
        };
        let candidate = &record[context.candidate_at];
        let row = match candidate_rows.get(candidate) {
            Some(row) => row,
            None => {
                let key = context.text(candidate, line, &columns.candidate_key)?;
                let row = context.candidates.row_of(&key).ok_or_else(|| {
                    context.fail(
                        line,
                        Some(&columns.candidate_key),
                        format!("{key:?} is not a key of the candidate table"),
                    )
                })?;
                candidate_rows.insert(candidate, row);
                row
            }
        };
        part.query.push(query_id);
        part.candidate.push(row);
        if let (Some(at), Some(name)) = (context.timestamp_at, &columns.timestamp) {
            let value = parse_i64_bytes(&record[at]).ok_or_else(|| {
                let text = String::from_utf8_lossy(&record[at]);
                context.fail(line, Some(name), format!("expected Unix seconds (an integer), found {text:?}"))
            })?;
            part.timestamp.push(value);
        }
        if let (Some(at), Some(name)) = (context.weight_at, &columns.weight) {
            let text = context.text(&record[at], line, name)?;
            let value = parse_f64(&text)
                .ok_or_else(|| context.fail(line, Some(name), format!("expected a finite number, found {text:?}")))?;
            part.weight.push(value as f32);
        }
    }
    Ok(part)
}

/// Cuts `body` at newlines into chunks of about `chunk_bytes`: `(first line, lines, bytes)`.
fn chunks(body: &[u8], first_line: u64, chunk_bytes: usize) -> Vec<(u64, usize, &[u8])> {
    let mut out = Vec::new();
    let (mut start, mut line) = (0, first_line);
    while start < body.len() {
        let mut end = start.saturating_add(chunk_bytes.max(1)).min(body.len());
        while end < body.len() && body[end - 1] != b'\n' {
            end += 1;
        }
        let chunk = &body[start..end];
        let n_lines = chunk.iter().filter(|&&b| b == b'\n').count();
        out.push((line, n_lines + 1, chunk));
        line += n_lines as u64;
        start = end;
    }
    out
}

/// Reads interactions, joining each candidate key to a row of `candidates`.
///
/// # Errors
/// [`LoadError`] naming the line and column of a missing column, a malformed value, or a
/// candidate key the table lacks.
pub fn load_interactions(
    path: &Path,
    format: &CsvFormat,
    columns: &InteractionColumns,
    candidates: &Table,
) -> Result<Interactions, LoadError> {
    load_in_chunks(path, format, columns, candidates, CHUNK_BYTES)
}

/// [`load_interactions`] with chunks of about `chunk_bytes`.
fn load_in_chunks(
    path: &Path,
    format: &CsvFormat,
    columns: &InteractionColumns,
    candidates: &Table,
    chunk_bytes: usize,
) -> Result<Interactions, LoadError> {
    let records = Records::open(path, format)?;
    let context = Context {
        path: path.to_path_buf(),
        encoding: format.encoding,
        delimiter: format.delimiter,
        n_fields: records.header.len(),
        columns,
        query_at: records.index(&columns.query_key)?,
        candidate_at: records.index(&columns.candidate_key)?,
        timestamp_at: columns.timestamp.as_deref().map(|c| records.index(c)).transpose()?,
        weight_at: columns.weight.as_deref().map(|c| records.index(c)).transpose()?,
        candidates,
    };
    let body_start = records.reader.position().byte() as usize;
    let body_line = records.reader.position().line();
    drop(records);
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    let body = bytes.get(body_start..).unwrap_or_default();
    let parts: Vec<Part> = if body.contains(&b'"') {
        let reader =
            csv::ReaderBuilder::new().delimiter(context.delimiter).has_headers(false).flexible(true).from_reader(body);
        vec![parse_part(&context, reader, body_line, 0)?]
    } else {
        chunks(body, body_line, chunk_bytes)
            .into_par_iter()
            .map(|(line, n_lines, chunk)| {
                let reader = csv::ReaderBuilder::new()
                    .delimiter(context.delimiter)
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(chunk);
                parse_part(&context, reader, line, n_lines)
            })
            .collect::<Result<_, _>>()?
    };
    let mut out = Interactions {
        timestamp: context.timestamp_at.map(|_| Vec::new()),
        weight: context.weight_at.map(|_| Vec::new()),
        ..Interactions::default()
    };
    let n: usize = parts.iter().map(|p| p.query.len()).sum();
    out.query.reserve_exact(n);
    out.candidate.reserve_exact(n);
    for part in parts {
        let global: Vec<u32> = part.keys.iter().map(|k| out.query_keys.intern(k)).collect();
        out.query.extend(part.query.iter().map(|&local| global[local as usize]));
        out.candidate.extend_from_slice(&part.candidate);
        if let Some(t) = &mut out.timestamp {
            t.extend_from_slice(&part.timestamp);
        }
        if let Some(w) = &mut out.weight {
            w.extend_from_slice(&part.weight);
        }
    }
    if out.is_empty() {
        return Err(context.fail(
            body_line,
            None,
            "no rows after the header; expected one interaction per line".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, ColumnType};

    fn setup(name: &str, body: &str) -> (PathBuf, Table, InteractionColumns) {
        let dir = std::env::temp_dir().join(format!("dataset-chunks-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.csv");
        std::fs::write(&path, format!("u,i,t,w\n{body}")).unwrap();
        let mut dummy = Column::empty(ColumnType::String);
        (0..50).for_each(|_| dummy.push_string("x"));
        let table = Table::new((0..50).map(|i| format!("i{i}")), vec![("x".into(), dummy)]).unwrap();
        let columns = InteractionColumns {
            query_key: "u".into(),
            candidate_key: "i".into(),
            timestamp: Some("t".into()),
            weight: Some("w".into()),
        };
        (path, table, columns)
    }

    fn body(n: usize) -> String {
        (0..n).map(|k| format!("user{},i{},{},{}.5\n", (k * 7) % 97, k % 50, 1000 + k, k % 5)).collect()
    }

    #[test]
    fn key_maps_keep_every_key_distinct() {
        let keys: [&[u8]; 9] = [b"1", b"01", b"001", b"0", b"1234567", b"12345678", b"a", b"a\0", b"x y"];
        let mut map = KeyMap::default();
        for (id, key) in keys.iter().enumerate() {
            assert_eq!(map.get(key), None);
            map.insert(key, id as u32);
        }
        for (id, key) in keys.iter().enumerate() {
            assert_eq!(map.get(key), Some(id as u32), "{:?}", String::from_utf8_lossy(key));
        }
        assert_eq!(map.get(b"2"), None);
        assert_eq!(map.get(b"10"), None);
    }

    #[test]
    fn many_chunks_give_exactly_what_one_pass_gives() {
        let (path, table, columns) = setup("same", &body(5000));
        let format = CsvFormat::default();
        let one = load_in_chunks(&path, &format, &columns, &table, usize::MAX).unwrap();
        for chunk_bytes in [1, 100, 4096, 60_000] {
            let many = load_in_chunks(&path, &format, &columns, &table, chunk_bytes).unwrap();
            assert_eq!(many, one, "chunks of {chunk_bytes} bytes");
        }
        assert_eq!(one.len(), 5000);
        assert_eq!(one.query_key(0), "user0");
        assert_eq!(one.query_key(1), "user7");
    }

    #[test]
    fn errors_in_late_chunks_name_their_file_line() {
        let mut text = body(3000);
        text.push_str("user1,i1,soon,1\n");
        text.push_str(&body(10));
        let (path, table, columns) = setup("late", &text);
        for chunk_bytes in [usize::MAX, 500] {
            let error = load_in_chunks(&path, &CsvFormat::default(), &columns, &table, chunk_bytes).unwrap_err();
            assert!(error.to_string().contains("log.csv:3002: column `t`"), "{error}");
        }
        let (path, table, columns) = setup("short", &format!("{}user1,i1\n", body(2000)));
        let error = load_in_chunks(&path, &CsvFormat::default(), &columns, &table, 300).unwrap_err();
        assert!(error.to_string().contains("log.csv:2002: expected 4 fields as in the header, found 2"), "{error}");
    }
}
