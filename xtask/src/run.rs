//! `train`, `recommend`, `bench`, `export` and `serve`: build `twotower` in release mode and run it.

use std::process::ExitStatus;

use anyhow::{bail, Context};

use crate::{cargo, prerequisites};

/// Runs `twotower <command> <args>` (release build, OpenBLAS unless `--no-blas`).
pub fn twotower(command: &str, mut args: Vec<String>) -> anyhow::Result<()> {
    let no_blas = take_flag(&mut args, "--no-blas");
    let mut cargo = cargo();
    cargo.args(["run", "--release", "--package", "twotower"]);
    if no_blas {
        eprintln!("xtask: --no-blas: matrix products run on the pure-Rust matrixmultiply");
    } else {
        prerequisites::openblas()?;
        cargo.args(["--features", "blas"]);
        // twotower runs OpenBLAS on one thread (rayon owns the cores). Should anyone raise it
        // again, its idle workers must not spin for ~0.1 s after each call and compete with
        // rayon (shared/docs/blas-on-this-machine.md §1).
        if std::env::var_os("OPENBLAS_THREAD_TIMEOUT").is_none() {
            cargo.env("OPENBLAS_THREAD_TIMEOUT", "4");
        }
    }
    cargo.arg("--").arg(command).args(&args);
    let status: ExitStatus = cargo.status().context("running cargo")?;
    match status.code() {
        Some(0) => Ok(()),
        // twotower (or cargo) already printed why; pass its exit code on.
        Some(code) => std::process::exit(code),
        None => bail!("`twotower {command}` was terminated by a signal ({status})"),
    }
}

/// Removes `flag` from `args`, returning whether it was there.
pub fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}
