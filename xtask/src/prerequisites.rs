//! Checks for what the build needs from the system, with the exact fix when it is missing.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::bail;

/// Directories where Debian, Ubuntu, Fedora and source installs put `libopenblas.so`.
const LIBRARY_DIRS: [&str; 7] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/opt/OpenBLAS/lib",
];

/// OpenBLAS must be linkable: `pkg-config openblas` works, or `libopenblas.so` is in a
/// standard library directory.
pub fn openblas() -> anyhow::Result<()> {
    let pkg_config = Command::new("pkg-config")
        .args(["--exists", "openblas"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let library = LIBRARY_DIRS.iter().any(|dir| Path::new(dir).join("libopenblas.so").exists());
    if pkg_config || library {
        return Ok(());
    }
    bail!(
        "OpenBLAS was not found (no `pkg-config openblas`, no libopenblas.so in {}).\n\
         Install it:  sudo apt-get install -y libopenblas-dev   (Debian/Ubuntu; Fedora: sudo dnf install openblas-devel)\n\
         or run without BLAS (pure-Rust matmul, slower):  add --no-blas",
        LIBRARY_DIRS.join(", ")
    )
}

/// rustfmt and clippy, for `cargo xtask test`.
pub fn lint_tools() -> anyhow::Result<()> {
    for (tool, args) in [("rustfmt", ["fmt", "--version"]), ("clippy", ["clippy", "--version"])] {
        let ok =
            crate::cargo().args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        if !ok {
            bail!("`cargo {}` is not available. Install it:  rustup component add {tool}", args[0]);
        }
    }
    Ok(())
}
