//! `cargo xtask tidy`: every Rust file of the project opens with a `//!` doc comment.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub fn check(root: &Path) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for dir in ["crates", "xtask", "benches"] {
        for file in rust_files(&root.join(dir))? {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            if !text.trim_start().starts_with("//!") {
                missing.push(file.strip_prefix(root).unwrap_or(&file).display().to_string());
            }
        }
    }
    if !missing.is_empty() {
        bail!("these files do not open with a //! doc comment saying what they are for:\n  {}", missing.join("\n  "));
    }
    Ok(())
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() && !path.ends_with("target") {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
