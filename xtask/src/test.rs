//! `cargo xtask test`: everything CI checks, in the order that fails fastest.
//!
//! 1. `cargo fmt --check`, the tidy check, clippy with warnings denied (BLAS on).
//! 2. Every test of the workspace on the pure-Rust matmul (`--exclude benches`, whose crate
//!    always links OpenBLAS), with the optional Parquet reader on (`dataset/parquet`).
//! 3. Every test again with OpenBLAS (`--features tensor/blas,dataset/parquet`).
//! 4. Every crate's `examples/` program, run to completion (each asserts what it shows).
//!
//! Tests that need the real MovieLens data read `MOVIELENS_DIR`. When it is set, xtask makes them
//! mandatory (`REQUIRE_MOVIELENS=1`): a missing file then fails the run instead of skipping.
//! `--require-data` fails the run when `MOVIELENS_DIR` is not set at all.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::run::take_flag;
use crate::{cargo, prerequisites, project_root, tidy};

pub fn run(mut args: Vec<String>) -> anyhow::Result<()> {
    let require_data = take_flag(&mut args, "--require-data");
    let no_blas = take_flag(&mut args, "--no-blas");
    if let Some(unknown) = args.first() {
        bail!("cargo xtask test: unknown flag {unknown:?} (known: --require-data, --no-blas)");
    }
    prerequisites::lint_tools()?;
    if !no_blas {
        prerequisites::openblas().context("the BLAS test pass needs OpenBLAS (or pass --no-blas to skip that pass)")?;
    }
    let data_env = data_environment(require_data)?;

    step("cargo fmt --check", cargo().args(["fmt", "--all", "--check"]))?;
    tidy::check(&project_root())?;
    println!("xtask: tidy: every .rs file opens with a //! doc comment");
    let blas_features: &[&str] =
        if no_blas { &["--features", "dataset/parquet"] } else { &["--features", "tensor/blas,dataset/parquet"] };
    step(
        "clippy",
        cargo()
            .args(["clippy", "--workspace", "--all-targets", "--quiet"])
            .args(blas_features)
            .args(["--", "-D", "warnings"]),
    )?;
    let mut pure = cargo();
    pure.args(["test", "--workspace", "--exclude", "benches", "--release", "--features", "dataset/parquet"])
        .envs(data_env.iter().cloned());
    step("tests, pure-Rust matmul", &mut pure)?;
    if !no_blas {
        let mut blas = cargo();
        blas.args(["test", "--workspace", "--release", "--features", "tensor/blas,dataset/parquet"])
            .env("OPENBLAS_NUM_THREADS", "1")
            .envs(data_env.iter().cloned());
        step("tests, OpenBLAS", &mut blas)?;
    }
    for (package, example) in EXAMPLES {
        step(
            &format!("example {package}/{example}"),
            cargo().args(["run", "--quiet", "--release", "--package", package, "--example", example]),
        )?;
    }
    match data_env.is_empty() {
        true => println!(
            "xtask: all passed; golden parity against the real MovieLens data was SKIPPED (MOVIELENS_DIR not set)"
        ),
        false => println!("xtask: all passed, golden parity against the real MovieLens data included"),
    }
    Ok(())
}

/// The library crates' example programs: `(package, example)`.
const EXAMPLES: [(&str, &str); 4] =
    [("features", "vocabulary"), ("towers", "tower_backward"), ("retrieval", "loss"), ("eval", "index")];

/// `MOVIELENS_DIR` (made absolute, checked) and `REQUIRE_MOVIELENS=1`, or nothing when unset.
fn data_environment(require_data: bool) -> anyhow::Result<Vec<(String, String)>> {
    let Some(dir) = std::env::var_os("MOVIELENS_DIR").map(PathBuf::from) else {
        if require_data {
            bail!("--require-data: MOVIELENS_DIR is not set; point it at the MovieLens 100k directory (e.g. MOVIELENS_DIR=../shared/data/ml-100k)");
        }
        println!("xtask: MOVIELENS_DIR not set: the golden parity tests against the real data will be SKIPPED");
        return Ok(Vec::new());
    };
    let dir =
        std::fs::canonicalize(&dir).with_context(|| format!("MOVIELENS_DIR={}: no such directory", dir.display()))?;
    for file in ["u.data", "u.item"] {
        if !dir.join(file).is_file() {
            bail!("MOVIELENS_DIR={}: {file} is missing; expected the MovieLens 100k files there", dir.display());
        }
    }
    println!("xtask: MOVIELENS_DIR={}: golden parity tests against the real data are required", dir.display());
    let mut env = vec![
        ("MOVIELENS_DIR".to_string(), dir.display().to_string()),
        ("REQUIRE_MOVIELENS".to_string(), "1".to_string()),
    ];
    let shared = project_root().join("../shared");
    if shared.join("golden").is_dir() && std::env::var_os("SHARED_DIR").is_none() {
        env.push(("SHARED_DIR".to_string(), std::fs::canonicalize(&shared)?.display().to_string()));
    }
    Ok(env)
}

fn step(name: &str, command: &mut std::process::Command) -> anyhow::Result<()> {
    println!("xtask: {name}");
    let status = command.status().with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
