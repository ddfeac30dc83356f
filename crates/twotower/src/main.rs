//! `twotower`: train, evaluate, recommend from and export two-tower retrieval models.
//!
//! Usually run through `cargo xtask train` / `cargo xtask recommend`, which build it in release
//! mode with OpenBLAS. Each subcommand lives in its own module and implements `run`.

mod bench;
#[cfg(feature = "ann")]
mod bench_ann;
mod bench_scale;
mod data;
mod export;
mod plot;
mod plot_scale;
mod recommend;
mod report;
#[cfg(feature = "serve")]
mod serve;
mod train;

use clap::{Parser, Subcommand};

/// Two-tower retrieval (TensorFlow Recommenders semantics) in Rust.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train and evaluate an experiment of the TFRS tutorials (or a custom configuration).
    Train(Box<train::TrainArgs>),
    /// Top titles for a user from a saved model.
    Recommend(recommend::RecommendArgs),
    /// A short fixed benchmark of the deep [64, 32] model; writes bench.json.
    Bench(bench::BenchArgs),
    /// The preset on a synthetic ML-25M-shaped release: epoch time, evaluation, memory; writes scale.json.
    BenchScale(bench_scale::ScaleBenchArgs),
    /// The cost curves of several bench-scale reports (epoch time and memory) as one SVG.
    PlotScale(plot_scale::PlotScaleArgs),
    /// The approximate HNSW index against exact search on a synthetic catalogue; writes ann.json.
    #[cfg(feature = "ann")]
    BenchAnn(bench_ann::AnnBenchArgs),
    /// Candidate and user embeddings as .npy with keys, and as Qdrant points.
    Export(export::ExportArgs),
    /// Recommendations over HTTP (JSON), with reload on SIGHUP and graceful shutdown.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
}

fn main() {
    let cli = Cli::parse();
    // rayon owns the cores; OpenBLAS runs each (half-)product on the calling thread.
    tensor::matmul::set_blas_threads(1);
    let result = match cli.command {
        Command::Train(args) => args.run(),
        Command::Recommend(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::BenchScale(args) => args.run(),
        Command::PlotScale(args) => args.run(),
        #[cfg(feature = "ann")]
        Command::BenchAnn(args) => args.run(),
        Command::Export(args) => args.run(),
        #[cfg(feature = "serve")]
        Command::Serve(args) => args.run(),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
