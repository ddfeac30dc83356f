//! Fetching a MovieLens release by name: download, verify the MD5 GroupLens publishes, unpack,
//! and move into place atomically.
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
/// The files a usable 100k directory must contain.
pub const REQUIRED_FILES: [&str; 2] = ["u.data", "u.item"];
/// Where GroupLens serves every release.
pub const GROUPLENS: &str = "https://files.grouplens.org/datasets/movielens";

/// The releases [`Source::named`] knows: name, archive folder, published MD5 (`None`: the
/// release is updated in place, so its MD5 is read from the `.md5` file GroupLens publishes
/// beside it), and the files the unpacked folder must hold.
const RELEASES: [(&str, &str, Option<&str>, &[&str]); 7] = [
    ("ml-100k", "ml-100k", Some(ML_100K_MD5), &["u.data", "u.item"]),
    ("ml-1m", "ml-1m", Some("c4d9eecfca2ab87c1945afe126590906"), &["ratings.dat", "movies.dat"]),
    ("ml-10m", "ml-10M100K", Some("ce571fd55effeba0271552578f2648bd"), &["ratings.dat", "movies.dat"]),
    ("ml-20m", "ml-20m", Some("cd245b17a1ae2cc31bb14903e1204af3"), &["ratings.csv", "movies.csv"]),
    ("ml-25m", "ml-25m", Some("6b51fb2759a8657d3bfcbfc42b592ada"), &["ratings.csv", "movies.csv"]),
    ("ml-latest-small", "ml-latest-small", None, &["ratings.csv", "movies.csv"]),
    ("ml-latest", "ml-latest", None, &["ratings.csv", "movies.csv"]),
];

/// The names [`Source::named`] accepts, for messages.
pub fn release_names() -> Vec<&'static str> {
    RELEASES.iter().map(|r| r.0).collect()
}

/// The checksum a download must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// A fixed MD5, lowercase hex.
    Md5(String),
    /// The MD5 in a published sidecar file at this address (`MD5 (file) = hex` or `hex  file`).
    Md5At(String),
}

/// What to fetch and what it must hash to.
#[derive(Debug, Clone)]
pub struct Source {
    /// The address of the zip archive.
    pub url: String,
    /// What the archive must hash to.
    pub checksum: Checksum,
    /// The folder inside the archive that holds the files (its contents become the destination).
    pub folder: String,
    /// Files the unpacked folder must contain.
    pub required: Vec<String>,
}

impl Source {
    /// The official MovieLens 100k archive.
    pub fn ml_100k() -> Self {
        Self::named("ml-100k").expect("a known release")
    }

    /// A release by name (`ml-100k`, `ml-1m`, `ml-10m`, `ml-20m`, `ml-25m`, `ml-latest-small`,
    /// `ml-latest`), from GroupLens.
    pub fn named(name: &str) -> Option<Self> {
        Self::named_at(name, GROUPLENS)
    }

    /// [`Source::named`] served from another base address (a mirror, or a test server).
    pub fn named_at(name: &str, base: &str) -> Option<Self> {
        let &(name, folder, md5, required) = RELEASES.iter().find(|r| r.0 == name)?;
        let url = format!("{}/{name}.zip", base.trim_end_matches('/'));
        let checksum = match md5 {
            Some(md5) => Checksum::Md5(md5.to_string()),
            None => Checksum::Md5At(format!("{url}.md5")),
        };
        Some(Self {
            url,
            checksum,
            folder: folder.to_string(),
            required: required.iter().map(|s| s.to_string()).collect(),
        })
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

    let expected = match &source.checksum {
        Checksum::Md5(md5) => md5.clone(),
        Checksum::Md5At(url) => published_md5(url)?,
    };
    let actual = stream_to_file(&source.url, &archive.0, on_progress)?;
    if !actual.eq_ignore_ascii_case(&expected) {
        return Err(Error::Checksum { url: source.url.clone(), expected, actual });
    }
    unpack(&archive.0, &unpacked.0, source)?;
    std::fs::rename(&unpacked.0, dest).map_err(|source| Error::Io { path: dest.to_path_buf(), source })?;
    Ok(dest.to_path_buf())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// The MD5 in a published `.md5` sidecar: the first 32-digit hex word.
fn published_md5(url: &str) -> Result<String, Error> {
    let failure = |message: String| Error::Download { url: url.to_string(), message: DownloadFailure(message) };
    let response = agent().get(url).call().map_err(|e| failure(e.to_string()))?;
    let text = response.into_body().with_config().limit(4096).read_to_string().map_err(|e| failure(e.to_string()))?;
    text.split(|c: char| !c.is_ascii_hexdigit()).find(|word| word.len() == 32).map(str::to_ascii_lowercase).ok_or_else(
        || failure(format!("no MD5 in the published checksum file: {:?}", text.chars().take(80).collect::<String>())),
    )
}

/// Streams the body at `url` into `path`, returning its MD5 in lowercase hex.
fn stream_to_file(url: &str, path: &Path, on_progress: &mut dyn FnMut(Progress)) -> Result<String, Error> {
    let failure = |message: String| Error::Download { url: url.to_string(), message: DownloadFailure(message) };
    let response = agent().get(url).call().map_err(|e| failure(e.to_string()))?;
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

/// Unpacks the entries under the archive's release folder (or its root) into `dir`.
fn unpack(archive_path: &Path, dir: &Path, source: &Source) -> Result<(), Error> {
    let zip_error = |source| Error::Zip { path: archive_path.to_path_buf(), source };
    let file = File::open(archive_path).map_err(|source| Error::Io { path: archive_path.to_path_buf(), source })?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(zip_error)?;
        let Some(name) = entry.enclosed_name() else { continue };
        let relative = name.strip_prefix(&source.folder).unwrap_or(&name).to_path_buf();
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
    for required in &source.required {
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
