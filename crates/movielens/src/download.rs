//! Fetching `ml-100k.zip`: download, verify the MD5, unpack, and move into place atomically.
//!
//! Nothing half-written is ever left at the destination: the archive is streamed to a temporary
//! file beside it, checked, unpacked into a temporary directory, and only then renamed to the
//! destination. On any failure the temporaries are removed (a drop guard does it).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::DownloadFailure;
use crate::Error;

/// The official GroupLens address of MovieLens 100k.
pub const ML_100K_URL: &str = "https://files.grouplens.org/datasets/movielens/ml-100k.zip";
/// The MD5 GroupLens publishes for it (`ml-100k.zip.md5`).
pub const ML_100K_MD5: &str = "0e33842e24a9c977be4e0107933c0723";
/// The files a usable directory must contain.
pub const REQUIRED_FILES: [&str; 2] = ["u.data", "u.item"];

/// What to fetch and what it must hash to.
#[derive(Debug, Clone)]
pub struct Source {
    /// The address of the zip archive.
    pub url: String,
    /// The expected MD5 of the archive, lowercase hex.
    pub md5: String,
}

impl Source {
    /// The official MovieLens 100k archive.
    pub fn ml_100k() -> Self {
        Self { url: ML_100K_URL.to_string(), md5: ML_100K_MD5.to_string() }
    }
}

/// Progress of a transfer, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes received so far.
    pub received: u64,
    /// The announced size, when the server sent one.
    pub total: Option<u64>,
}

/// Downloads `source`, checks its MD5, and unpacks the archive's `ml-100k/` folder into `dest`
/// (which must not exist yet), calling `on_progress` as bytes arrive.
///
/// # Errors
/// [`Error::Download`] when the transfer fails or ends early, [`Error::Checksum`] when the bytes
/// do not hash to `source.md5`, [`Error::Zip`] for a bad archive or one without `u.data` and
/// `u.item`, [`Error::Io`] for the file system. In every case `dest` is left untouched.
pub fn fetch(source: &Source, dest: &Path, on_progress: &mut dyn FnMut(Progress)) -> Result<PathBuf, Error> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_path_buf(), source })?;
    let stem = dest.file_name().map_or("ml-100k".into(), |n| n.to_string_lossy().into_owned());
    let tag = std::process::id();
    let archive = Temporary(parent.join(format!(".{stem}.{tag}.zip.partial")));
    let unpacked = Temporary(parent.join(format!(".{stem}.{tag}.unpacking")));

    let actual = stream_to_file(&source.url, &archive.0, on_progress)?;
    if !actual.eq_ignore_ascii_case(&source.md5) {
        return Err(Error::Checksum { url: source.url.clone(), expected: source.md5.clone(), actual });
    }
    unpack(&archive.0, &unpacked.0)?;
    std::fs::rename(&unpacked.0, dest).map_err(|source| Error::Io { path: dest.to_path_buf(), source })?;
    Ok(dest.to_path_buf())
}

/// Streams the body at `url` into `path`, returning its MD5 in lowercase hex.
fn stream_to_file(url: &str, path: &Path, on_progress: &mut dyn FnMut(Progress)) -> Result<String, Error> {
    let failure = |message: String| Error::Download { url: url.to_string(), message: DownloadFailure(message) };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| failure(e.to_string()))?;
    let total = response.body().content_length();
    let mut body = response.into_body().into_reader();
    let io_error = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file = File::create(path).map_err(io_error)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    loop {
        let n =
            body.read(&mut buffer).map_err(|e| failure(format!("connection failed after {received} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n]).map_err(io_error)?;
        received += n as u64;
        on_progress(Progress { received, total });
    }
    if let Some(total) = total.filter(|&t| t != received) {
        return Err(failure(format!("connection closed after {received} of {total} bytes")));
    }
    file.sync_all().map_err(io_error)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Unpacks the entries under the archive's `ml-100k/` folder (or its root) into `dir`.
fn unpack(archive_path: &Path, dir: &Path) -> Result<(), Error> {
    let zip_error = |source| Error::Zip { path: archive_path.to_path_buf(), source };
    let file = File::open(archive_path).map_err(|source| Error::Io { path: archive_path.to_path_buf(), source })?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(zip_error)?;
        let Some(name) = entry.enclosed_name() else { continue };
        let relative = name.strip_prefix("ml-100k").unwrap_or(&name).to_path_buf();
        if entry.is_dir() || relative.as_os_str().is_empty() {
            continue;
        }
        let out_path = dir.join(&relative);
        if let Some(p) = out_path.parent() {
            std::fs::create_dir_all(p).map_err(|source| Error::Io { path: p.to_path_buf(), source })?;
        }
        let mut out = File::create(&out_path).map_err(|source| Error::Io { path: out_path.clone(), source })?;
        std::io::copy(&mut entry, &mut out).map_err(|source| Error::Io { path: out_path.clone(), source })?;
    }
    for required in REQUIRED_FILES {
        if !dir.join(required).is_file() {
            return Err(zip_error(zip::result::ZipError::FileNotFound));
        }
    }
    Ok(())
}

/// A path removed (file or directory) when dropped, unless it was renamed away first.
struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        // Best effort: the path may already be gone (renamed into place, or never created).
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
