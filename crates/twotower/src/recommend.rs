//! `twotower recommend`: the top titles for a user from a saved model (see `train::Retriever`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use train::{ModelFile, Retriever, UserQuery};

/// Flags of `recommend`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// A model.bin written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// The user id (as in the training data).
    #[arg(long)]
    user: String,
    /// How many items (at most the catalogue).
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Keep items the user interacted with in training.
    #[arg(long)]
    include_seen: bool,
    /// Unix time of the query, for models with timestamp features (default: the latest rating).
    #[arg(long, allow_negative_numbers = true)]
    at: Option<i64>,
    /// Search an approximate HNSW index with this search width (ef) instead of the exact index.
    #[cfg(feature = "ann")]
    #[arg(long, value_name = "EF", value_parser = clap::value_parser!(u32).range(1..=100_000), conflicts_with = "ivf")]
    ann: Option<u32>,
    /// Search an approximate IVF index (k-means lists) scanning this many lists per query.
    #[arg(long, value_name = "N_PROBE", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    ivf: Option<u32>,
}

impl RecommendArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let file = ModelFile::load(&self.model).context("loading the model")?;
        #[allow(unused_mut)]
        let mut retriever = Retriever::new(file);
        #[cfg(feature = "ann")]
        if let Some(ef) = self.ann {
            retriever.use_ann(eval::AnnConfig { ef_search: ef as usize, ..eval::AnnConfig::default() });
        }
        if let Some(n_probe) = self.ivf {
            retriever.use_ivf(eval::IvfConfig { n_probe: n_probe as usize, ..eval::IvfConfig::default() });
        }
        let query = UserQuery { user: &self.user, at: self.at, k: self.k, include_seen: self.include_seen };
        let top = retriever.recommend(&query).context("recommend")?;
        let n_seen = retriever.seen(retriever.user_index(&self.user)?).len();
        println!(
            "Top {} for user {} ({}; {n_seen} rated in training):",
            top.len(),
            self.user,
            if self.include_seen { "seen items included" } else { "seen items excluded" },
        );
        for (rank, item) in top.iter().enumerate() {
            println!("  {:>2}. {}  (key {}, score {:.3})", rank + 1, item.name, item.key, item.score);
        }
        Ok(())
    }
}
