//! Finding MovieLens 100k: `--data DIR`, then `MOVIELENS_DIR`, then `data/ml-100k/`, then download.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use movielens::download::{fetch, Source};
use movielens::split::Split;
use movielens::Dataset;

/// Where the data lives when nothing else is given (downloads land here).
const DEFAULT_DIR: &str = "data/ml-100k";

/// Resolves the data directory in the documented order, downloading as the last resort.
pub fn resolve_data_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("MOVIELENS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let default = PathBuf::from(DEFAULT_DIR);
    if default.join("u.data").is_file() {
        return Ok(default);
    }
    eprintln!(
        "MovieLens 100k not found (no --data, no MOVIELENS_DIR, nothing in {DEFAULT_DIR}/); downloading it from {}",
        movielens::download::ML_100K_URL
    );
    download(&Source::ml_100k(), &default)
        .with_context(|| format!("no MovieLens data: pass --data DIR or set MOVIELENS_DIR to a directory with u.data and u.item, or allow the download into {DEFAULT_DIR}/"))
}

/// Downloads with a progress bar.
pub fn download(source: &Source, dest: &Path) -> anyhow::Result<PathBuf> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bar:30} {eta}").expect("static template"),
    );
    let result = fetch(source, dest, &mut |p| {
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        bar.set_position(p.received);
    });
    bar.finish_and_clear();
    Ok(result?)
}

/// Loads the dataset, with the file named on error.
pub fn load(dir: &Path) -> anyhow::Result<Dataset> {
    Dataset::load(dir).with_context(|| format!("loading MovieLens 100k from {}", dir.display()))
}

/// The split: a split file, the tutorial row list, or a seeded 80/20 shuffle.
pub fn split(
    data: &Dataset,
    split_file: Option<&Path>,
    tutorial_rows: Option<&Path>,
    seed: u64,
) -> anyhow::Result<(Split, String)> {
    match (split_file, tutorial_rows) {
        (Some(file), _) => Ok((
            Split::from_split_file(file, &data.ratings).context("reading the split file")?,
            format!("file {}", file.display()),
        )),
        (None, Some(file)) => Ok((
            Split::from_tutorial_rows(file, data.ratings.len()).context("reading the tutorial rows")?,
            format!("tutorial rows {}", file.display()),
        )),
        (None, None) => {
            Ok((Split::seeded(data.ratings.len(), seed, 0.8), format!("seeded 80/20 shuffle, seed {seed}")))
        }
    }
}
