//! `twotower recommend`: the top titles for a user from a saved model.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use eval::BruteForceIndex;
use tensor::Bags;
use towers::{CandidateBatch, CandidateCache, QueryBatch, QueryCache};
use train::ModelFile;

/// Flags of `recommend`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// A model.bin written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// The MovieLens user id (as in u.data).
    #[arg(long)]
    user: String,
    /// How many titles.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Keep movies the user rated in training.
    #[arg(long)]
    include_seen: bool,
    /// Unix time of the query, for models with timestamp features (default: the latest rating).
    #[arg(long)]
    at: Option<i64>,
}

impl RecommendArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let file = ModelFile::load(&self.model).context("loading the model")?;
        let user = file.features.users.lookup(&self.user);
        if user == features::OOV_INDEX {
            bail!(
                "--user {:?}: not a user of this model's training data ({} known user ids); an unknown user would only get the shared OOV embedding, so no personal recommendation exists",
                self.user,
                file.features.users.len() - 1,
            );
        }
        if self.k == 0 {
            bail!("-k must be at least 1");
        }
        let at = self.at.unwrap_or(file.features.max_timestamp);
        let query_batch = QueryBatch {
            users: &[user],
            buckets: &[file.features.buckets.bucketize(at)],
            normalized_timestamps: &[file.features.normalizer.normalize(at)],
        };
        let query = file.model.query.forward(&query_batch, &mut QueryCache::default()).to_owned();
        let titles: Vec<u32> = file.movies.iter().map(|(_, t)| file.features.titles.lookup(t)).collect();
        let mut bags = Bags::default();
        for (_, title) in &file.movies {
            bags.push(&file.features.text.encode(title));
        }
        let catalogue = file
            .model
            .candidate
            .forward(&CandidateBatch { titles: &titles, tokens: &bags }, &mut CandidateCache::default())
            .to_owned();
        let ids: Vec<u32> = file.movies.iter().map(|(id, _)| *id).collect();
        let index = BruteForceIndex::new(catalogue, ids);
        let seen = file.seen.get(user as usize).cloned().unwrap_or_default();
        let exclusions = (!self.include_seen)
            .then(|| vec![seen.iter().map(|&row| file.movies[row as usize].0).collect::<Vec<u32>>()]);
        let top = index.top_k(query.view(), self.k, exclusions.as_deref());
        println!(
            "Top {} for user {} ({}; {} rated in training):",
            self.k,
            self.user,
            if self.include_seen { "seen movies included" } else { "seen movies excluded" },
            seen.len()
        );
        for (rank, (&row, &score)) in top[0].rows.iter().zip(&top[0].scores).enumerate() {
            let (movie_id, title) = &file.movies[row as usize];
            println!("  {:>2}. {title}  (movie {movie_id}, score {score:.3})", rank + 1);
        }
        Ok(())
    }
}
