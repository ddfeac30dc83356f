//! Exporting a model's embeddings for vector databases and numpy, as one directory written as a
//! unit (see `fs::RunDir`):
//!
//! | file | contents |
//! |---|---|
//! | `candidates.npy` | candidate embeddings, `(n_candidates, d)` little-endian f32, C order (NPY 1.0) |
//! | `candidate_keys.json` | `[{"row", "key", "name"}]`, one per row of `candidates.npy` |
//! | `queries.npy` | the query embedding of every known user at the training data's latest time |
//! | `query_keys.json` | the user key of each row of `queries.npy` |
//! | `qdrant_points.jsonl` | one Qdrant point per line: `{"id": row, "vector": […], "payload": {"key", "name"}}` |
//! | `export.json` | dimensions, counts, the distance to use (`Dot`), and the time the queries were embedded at |
//!
//! Scores are inner products (`Dot` in Qdrant); with `l2_normalize` on both towers they are
//! cosines, and `Dot` still ranks them exactly.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::ArrayView2;
use serde_json::json;

use crate::fs::RunDir;
use crate::Retriever;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The directory.
    pub dir: PathBuf,
    /// Candidate rows.
    pub n_candidates: usize,
    /// Users.
    pub n_queries: usize,
    /// Embedding width.
    pub dim: usize,
}

/// The NPY 1.0 encoding of a `(rows, cols)` f32 matrix: magic, header dict padded with spaces
/// to a multiple of 64 bytes (newline last), then the values little-endian in C order.
pub fn npy_bytes(matrix: ArrayView2<'_, f32>) -> Vec<u8> {
    let (rows, cols) = matrix.dim();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 6 + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + rows * cols * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in matrix.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Writes the export of `retriever` into `dir` (replacing an older export as a whole).
///
/// # Errors
/// The I/O error, naming the file.
pub fn export(retriever: &Retriever, dir: &Path) -> Result<ExportSummary, std::io::Error> {
    let file = retriever.file();
    let staged = RunDir::create(dir)?;
    let candidates = retriever.catalogue_embeddings();
    let at = file.features.latest_time();
    let queries = retriever
        .embed_known_users(None)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let path = staged.path(name);
        std::fs::write(&path, bytes).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    };
    write("candidates.npy", &npy_bytes(candidates))?;
    write("queries.npy", &npy_bytes(queries.view()))?;
    let catalogue = &file.catalogue;
    let keys: Vec<_> = (0..catalogue.len())
        .map(|row| json!({ "row": row, "key": catalogue.keys[row], "name": catalogue.names[row] }))
        .collect();
    write("candidate_keys.json", serde_json::to_string_pretty(&keys)?.as_bytes())?;
    let query_keys: Vec<&str> = file.users.iter().map(|u| u.key.as_str()).collect();
    write("query_keys.json", serde_json::to_string_pretty(&query_keys)?.as_bytes())?;
    let mut points = std::io::BufWriter::new(std::fs::File::create(staged.path("qdrant_points.jsonl"))?);
    for row in 0..catalogue.len() {
        let point = json!({
            "id": row,
            "vector": candidates.row(row).to_vec(),
            "payload": { "key": catalogue.keys[row], "name": catalogue.names[row] },
        });
        serde_json::to_writer(&mut points, &point)?;
        points.write_all(b"\n")?;
    }
    points.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
    let dim = candidates.ncols();
    let manifest = json!({
        "candidates": { "file": "candidates.npy", "keys": "candidate_keys.json", "rows": candidates.nrows(), "dim": dim },
        "queries": { "file": "queries.npy", "keys": "query_keys.json", "rows": queries.nrows(), "dim": dim, "embedded_at_unix_time": at },
        "qdrant": { "file": "qdrant_points.jsonl", "distance": "Dot", "size": dim },
        "score": "inner product of a query row and a candidate row; the model ranks candidates by it",
    });
    write("export.json", serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    let dir = staged.publish()?;
    Ok(ExportSummary { dir, n_candidates: candidates.nrows(), n_queries: queries.nrows(), dim })
}
