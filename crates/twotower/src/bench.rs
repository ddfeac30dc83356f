//! `twotower bench`: a short fixed workload of the deep [64, 32] model; writes `bench.json`.

use std::path::PathBuf;

use clap::Args;

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// MovieLens 100k directory (else MOVIELENS_DIR, else data/ml-100k, else download).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where to write the report.
    #[arg(long, default_value = "bench.json")]
    out: PathBuf,
}

impl BenchArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("bench: not built yet (issue 5); nothing written to {}", self.out.display())
    }
}
