//! Writing files and directories so that a reader never sees half of them.
//!
//! * [`write_atomic`]: a file is written to a unique temporary name beside its destination,
//!   fsynced, renamed over the destination, and the directory fsynced: a crash leaves the old
//!   file or the new one, never a mix, and no temporary file survives an error.
//! * [`RunDir`]: a directory of files that belong together (a run's `metrics.json` and
//!   `model.bin`) is filled under a temporary name and swapped into place as a whole, so a
//!   reader never sees a metrics file and a model file from different runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name for a temporary sibling of `path`, unique within this process and across processes.
fn temporary_sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}.{}.{n}", std::process::id()))
}

/// Writes `bytes` to `path` atomically (see the module docs).
///
/// # Errors
/// The I/O error; the temporary file is removed and the destination untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_sibling(path, "tmp");
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs the directory holding `path`, so that a rename in it is durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

/// Fsyncs every file under `dir`, then each directory.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// A directory being filled under a temporary name, then published as a whole.
#[derive(Debug)]
pub struct RunDir {
    /// The final location.
    target: PathBuf,
    /// Where the files are written meanwhile.
    staging: PathBuf,
    published: bool,
}

impl RunDir {
    /// Starts a directory that will replace `target` (creating `target`'s parents).
    ///
    /// # Errors
    /// If the parent or the staging directory cannot be created.
    pub fn create(target: &Path) -> std::io::Result<Self> {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let staging = temporary_sibling(target, "staging");
        std::fs::create_dir(&staging)?;
        Ok(Self { target: target.to_path_buf(), staging, published: false })
    }

    /// Where to write a file (or subdirectory) that will appear as `target/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// The staging directory itself (what becomes `target`).
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The final location.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fsyncs every file written, then swaps the directory into place: an old `target` is
    /// renamed aside, the staging directory renamed to `target`, and the old one removed.
    /// Between the two renames `target` does not exist; at no time does it hold a mix.
    ///
    /// # Errors
    /// If a file cannot be synced or a rename fails; the old `target` is then put back.
    pub fn publish(mut self) -> std::io::Result<PathBuf> {
        sync_tree(&self.staging)?;
        let old = temporary_sibling(&self.target, "old");
        let had_old = match std::fs::rename(&self.target, &old) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if let Err(e) = std::fs::rename(&self.staging, &self.target) {
            if had_old {
                let _ = std::fs::rename(&old, &self.target);
            }
            return Err(e);
        }
        self.published = true;
        sync_parent(&self.target)?;
        if had_old {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("train-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_run_directory_replaces_the_old_one_as_a_whole() {
        let root = scratch("run");
        let target = root.join("run");
        for generation in ["old", "new"] {
            let dir = RunDir::create(&target).unwrap();
            for file in ["metrics.json", "model.bin"] {
                std::fs::write(dir.path(file), generation).unwrap();
            }
            assert!(!target.join("metrics.json").exists() || generation == "new", "nothing visible before publish");
            dir.publish().unwrap();
        }
        for file in ["metrics.json", "model.bin"] {
            assert_eq!(std::fs::read_to_string(target.join(file)).unwrap(), "new");
        }
        let names: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["run"], "no staging or old directory left");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_abandoned_run_directory_leaves_the_old_one_untouched() {
        let root = scratch("abandon");
        let target = root.join("run");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("metrics.json"), "old").unwrap();
        {
            let dir = RunDir::create(&target).unwrap();
            std::fs::write(dir.path("metrics.json"), "new").unwrap();
            // Dropped without publish, as when training fails halfway.
        }
        assert_eq!(std::fs::read_to_string(target.join("metrics.json")).unwrap(), "old");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn atomic_writes_leave_no_temporary_and_fail_cleanly() {
        let root = scratch("atomic");
        let path = root.join("summary.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        // A directory in the way: the rename fails, the temporary file goes.
        let blocked = root.join("blocked");
        std::fs::create_dir_all(blocked.join("inner")).unwrap();
        assert!(write_atomic(&blocked, b"x").is_err());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
        std::fs::remove_dir_all(root).unwrap();
    }
}
