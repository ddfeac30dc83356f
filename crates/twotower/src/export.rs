//! `twotower export`: a model's candidate and user embeddings as `.npy` with key files, and as
//! Qdrant points (see `train::export`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use train::{ModelFile, Retriever};

/// Flags of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A model.bin written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// The directory to write (replaced as a whole if it exists).
    #[arg(long)]
    out: PathBuf,
}

impl ExportArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let file = ModelFile::load(&self.model).context("loading the model")?;
        let retriever = Retriever::new(file);
        let summary = train::export::export(&retriever, &self.out)
            .with_context(|| format!("exporting to {}", self.out.display()))?;
        println!(
            "wrote {}/: {} candidates and {} users, {} dimensions (candidates.npy, queries.npy, *_keys.json, qdrant_points.jsonl, export.json)",
            summary.dir.display(),
            summary.n_candidates,
            summary.n_queries,
            summary.dim
        );
        Ok(())
    }
}
