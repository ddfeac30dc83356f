//! `cargo xtask`: the project's task runner (the cargo-xtask convention; the alias lives in
//! `.cargo/config.toml`).
//!
//! xtask itself depends on nothing heavy and links no system library, so it builds in seconds and
//! can check prerequisites (OpenBLAS, rustfmt, clippy, the data) before anything fails with a
//! linker error. The real work runs in the `twotower` binary, which xtask builds in release mode.
//!
//! ```text
//! cargo xtask train [twotower train flags]   train and evaluate (default experiment: context-timestamps)
//! cargo xtask recommend [flags]              top titles for a user from a saved model
//! cargo xtask bench [flags]                  fixed benchmark workload → bench.json
//! cargo xtask bench-ann [flags]              IVF and HNSW against exact search, 1M synthetic items → ann.json
//! cargo xtask bench-scale [flags]            the preset on 25M synthetic ratings → scale.json
//! cargo xtask plot-scale FILES --out F.svg    cost curves of several scale.json reports
//! cargo xtask export --model F --out DIR     embeddings as .npy + keys, and Qdrant points
//! cargo xtask serve --model F --addr H:P     the HTTP recommender
//! cargo xtask test                           fmt, clippy, tidy, every test with and without BLAS
//! ```
//! Add `--no-blas` to train/recommend/bench to use the pure-Rust matmul instead of OpenBLAS.

mod prerequisites;
mod run;
mod test;
mod tidy;

use std::path::PathBuf;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let command = if args.is_empty() { String::from("help") } else { args.remove(0) };
    let result = match command.as_str() {
        "train" | "recommend" | "bench" | "bench-ann" | "bench-scale" | "plot-scale" | "export" | "serve" => {
            run::twotower(&command, args)
        }
        "test" => test::run(args),
        "tidy" => tidy::check(&project_root()),
        "help" | "--help" | "-h" => {
            println!("{}", HELP);
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown command {other:?}\n{HELP}")),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

const HELP: &str = "usage: cargo xtask <command> [flags]
  train      train and evaluate an experiment (cargo xtask train --help for flags)
  recommend  top titles for a user from a saved model
  bench      fixed benchmark of the deep [64, 32] model, writes bench.json
  bench-ann  the approximate indexes (IVF, HNSW) against exact search on 1M synthetic items, writes ann.json
  bench-scale  the MovieLens 100k preset on 25M synthetic ratings (epoch, evaluation, memory), writes scale.json
  plot-scale   epoch time and memory of several scale.json reports against interactions, items, batch size (SVG)
  export     a model's embeddings as .npy with keys, and as Qdrant points (--model FILE --out DIR)
  serve      recommendations over HTTP (--model FILE --addr HOST:PORT)
  test       fmt, clippy, tidy and every test, with and without BLAS
  tidy       check that every Rust file opens with a //! doc comment
flags for train/recommend/bench/export/serve: --no-blas uses the pure-Rust matmul instead of OpenBLAS";

/// The workspace root (the parent of xtask/).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// The cargo that runs us.
pub fn cargo() -> std::process::Command {
    let mut command = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(project_root());
    command
}
