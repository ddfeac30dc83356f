//! Integration tests of the movielens crate: parsing committed fixtures (latin-1 bytes, trailing
//! spaces, duplicate titles), every malformed-line error, the three split sources, and the whole
//! download path against a small HTTP server on 127.0.0.1.

#[cfg(feature = "download")]
mod download;
mod parsing;
mod releases;
mod splits;

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
