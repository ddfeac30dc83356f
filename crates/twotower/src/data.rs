//! Where the data comes from and how it is split, as flags shared by `train` and `bench`.
//!
//! Sources, in order: generic files (`--interactions FILE --candidates FILE [--queries FILE]`
//! with `--query-key`, `--candidate-key`, `--timestamp`, `--weight`), else a MovieLens release:
//! `--data DIR` (any release, auto-detected), then `MOVIELENS_DIR`, then `data/ml-100k/`, then a
//! verified download of MovieLens 100k.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use dataset::{CsvFormat, Dataset, InteractionColumns, Split, TableColumns, Validation};
use indicatif::{ProgressBar, ProgressStyle};
use movielens::download::{fetch, Source};
use train::spec::{FeatureKind, ModelSpec, KEY};

/// Where the data lives when nothing else is given (downloads land here).
const DEFAULT_DIR: &str = "data/ml-100k";

/// Data and split flags.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// A MovieLens directory, any release (100k, 1M, 10M, latest, 20M, 25M; detected from its files).
    #[arg(long, conflicts_with_all = ["interactions", "dataset"])]
    pub data: Option<PathBuf>,
    /// A MovieLens release by name, downloaded into data/NAME/ (checksum-verified) unless already
    /// there: ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-latest-small, ml-latest.
    #[arg(long, conflicts_with = "interactions")]
    pub dataset: Option<String>,
    /// Interactions file (CSV, or TSV by extension) with a header.
    #[arg(long, requires_all = ["candidates", "query_key", "candidate_key"])]
    pub interactions: Option<PathBuf>,
    /// Candidate (item) table with a header, keyed by --candidate-key.
    #[arg(long, requires = "interactions")]
    pub candidates: Option<PathBuf>,
    /// Query (user) table with a header, keyed by --query-key.
    #[arg(long, requires = "interactions")]
    pub queries: Option<PathBuf>,
    /// Column of the query (user) key in the interactions (and the query table).
    #[arg(long, requires = "interactions")]
    pub query_key: Option<String>,
    /// Column of the candidate (item) key in the interactions and the candidate table.
    #[arg(long, requires = "interactions")]
    pub candidate_key: Option<String>,
    /// Column of Unix-second timestamps in the interactions.
    #[arg(long, requires = "interactions")]
    pub timestamp: Option<String>,
    /// Column of a numeric weight (e.g. a rating) in the interactions.
    #[arg(long, requires = "interactions")]
    pub weight: Option<String>,
    /// Text encoding of the --interactions/--candidates/--queries CSV files.
    #[arg(long, default_value = "utf-8", value_parser = ["utf-8", "latin-1"])]
    pub encoding: String,
    /// A list column of the candidate or query table and its separator, e.g. genres=| (repeatable).
    #[arg(long, value_name = "COL=SEP")]
    pub list_column: Vec<String>,
    /// Keep only interactions whose weight is at least this (e.g. 4 to keep 4- and 5-star ratings).
    #[arg(long, allow_negative_numbers = true)]
    pub min_weight: Option<f32>,
    /// Column of the spec's candidate id feature (default for your own files: the key; MovieLens: as the spec, title).
    #[arg(long)]
    pub candidate_id: Option<String>,
    /// Column of the spec's candidate text features (MovieLens: as the spec, title).
    #[arg(long)]
    pub candidate_text: Option<String>,
    /// A split file (user_id item_id rating timestamp split, tab-separated, with header).
    #[arg(long, conflicts_with_all = ["tutorial_rows", "split_by"])]
    pub split: Option<PathBuf>,
    /// The TFRS tutorial row list (0-based interaction index per line; first 80% train).
    #[arg(long, conflicts_with = "split_by")]
    pub tutorial_rows: Option<PathBuf>,
    /// How to split when no file is given: random (seeded), time (a global cut), last-n (per user).
    #[arg(long, value_parser = ["random", "time", "last-n"])]
    pub split_by: Option<String>,
    /// Share of interactions that test (random and time splits).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Interactions per user that test (last-n split).
    #[arg(long, default_value_t = 1)]
    pub test_last_n: usize,
    /// Seed of the random split.
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
    /// Carve this share of the training rows out as a validation block (per-epoch validation and
    /// model selection then use it, never test).
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Adapt the query-side preprocessing (user vocabulary, time buckets and normalisation) on
    /// all interactions (the tutorials) or on the training rows only (nothing leaks from test).
    #[arg(long, default_value = "all", value_parser = ["all", "train"])]
    pub fit_features_on: String,
    /// How to carve validation: random (seeded by --split-seed) or time (the latest training rows).
    #[arg(long, default_value = "random", value_parser = ["random", "time"])]
    pub validation_by: String,
}

/// A loaded, split dataset and how to describe it.
pub struct Prepared {
    pub data: Dataset,
    pub split: Split,
    pub split_name: String,
    pub columns: ColumnChoice,
}

/// Columns chosen by flags for the spec's candidate id and text features.
#[derive(Debug, Clone, Default)]
pub struct ColumnChoice {
    pub candidate_id: Option<String>,
    pub candidate_text: Option<String>,
}

impl ColumnChoice {
    /// Points the spec's first candidate `id` feature and every candidate `text` feature at the
    /// chosen columns.
    pub fn apply(&self, model: &mut ModelSpec) {
        if let Some(column) = &self.candidate_id {
            if let Some(feature) = model.candidate.features.iter_mut().find(|f| f.kind == FeatureKind::Id) {
                feature.column = Some(column.clone());
            }
        }
        if let Some(column) = &self.candidate_text {
            for feature in model.candidate.features.iter_mut().filter(|f| f.kind == FeatureKind::Text) {
                feature.column = Some(column.clone());
            }
        }
    }
}

impl DataArgs {
    /// Loads, filters and splits.
    pub fn prepare(&self) -> anyhow::Result<Prepared> {
        let (mut data, movielens) = match &self.interactions {
            Some(path) => (self.load_generic(path)?, false),
            None => {
                let dir = match &self.dataset {
                    Some(name) => fetch_named(name)?,
                    None => resolve_data_dir(self.data.as_deref())?,
                };
                let spinner = loading_spinner(&dir);
                let data =
                    movielens::load(&dir).with_context(|| format!("loading MovieLens from {}", dir.display()))?;
                spinner.finish_and_clear();
                (data, true)
            }
        };
        if let Some(min) = self.min_weight {
            filter_by_weight(&mut data, min)?;
        }
        let (split, split_name) = self.split(&data)?;
        let columns = ColumnChoice {
            candidate_id: self.candidate_id.clone().or_else(|| (!movielens).then(|| KEY.to_string())),
            candidate_text: self.candidate_text.clone(),
        };
        Ok(Prepared { data, split, split_name, columns })
    }

    fn lists(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.list_column
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((col, sep)) if !col.is_empty() && !sep.is_empty() => Ok((col.to_string(), sep.to_string())),
                _ => bail!("--list-column {spec:?}: expected COL=SEP, e.g. genres=|"),
            })
            .collect()
    }

    fn load_generic(&self, interactions: &Path) -> anyhow::Result<Dataset> {
        let candidates = self.candidates.as_deref().expect("clap requires --candidates");
        let candidate_key = self.candidate_key.clone().expect("clap requires --candidate-key");
        let query_key = self.query_key.clone().expect("clap requires --query-key");
        let lists = self.lists()?;
        let encoding = if self.encoding == "latin-1" { dataset::Encoding::Latin1 } else { dataset::Encoding::Utf8 };
        let format = |path: &Path| CsvFormat { encoding, ..CsvFormat::for_path(path) };
        let table = |path: &Path, key: &str| -> anyhow::Result<dataset::Table> {
            let columns = TableColumns { key: key.to_string(), lists: lists.clone(), ..TableColumns::default() };
            if is_parquet(path)? {
                #[cfg(feature = "parquet")]
                return Ok(dataset::load_table_parquet(path, &columns)?);
            }
            Ok(dataset::load_table(path, &format(path), &columns)?)
        };
        let candidate_table = table(candidates, &candidate_key)?;
        let columns = InteractionColumns {
            query_key: query_key.clone(),
            candidate_key,
            timestamp: self.timestamp.clone(),
            weight: self.weight.clone(),
        };
        let loaded = dataset::load_interactions(interactions, &format(interactions), &columns, &candidate_table)?;
        let queries = self.queries.as_deref().map(|path| table(path, &query_key)).transpose()?;
        let data = Dataset {
            source: format!("{} with {}", interactions.display(), candidates.display()),
            interactions: loaded,
            candidates: candidate_table,
            queries,
        };
        data.validate().context("the loaded data")?;
        Ok(data)
    }

    fn split(&self, data: &Dataset) -> anyhow::Result<(Split, String)> {
        let n = data.interactions.len();
        let timestamps = data.interactions.timestamp.as_deref();
        let (split, name) = match (&self.split, &self.tutorial_rows, self.split_by.as_deref()) {
            (Some(file), _, _) => {
                let ratings = movielens::split::ratings_of(data)?;
                let split = movielens::split::from_split_file(file, &ratings).context("reading the split file")?;
                (split, format!("file {}", file.display()))
            }
            (None, Some(file), _) => {
                let split = movielens::split::from_tutorial_rows(file, n).context("reading the tutorial rows")?;
                (split, format!("tutorial rows {}", file.display()))
            }
            (None, None, None | Some("random")) => {
                let split =
                    Split::try_seeded(n, self.split_seed, 1.0 - self.test_fraction).context("--test-fraction")?;
                (
                    split,
                    format!(
                        "seeded {:.0}/{:.0} shuffle, seed {}",
                        100.0 * (1.0 - self.test_fraction),
                        100.0 * self.test_fraction,
                        self.split_seed
                    ),
                )
            }
            (None, None, Some("time")) => {
                let split = Split::temporal(timestamps, self.test_fraction).context("--split-by time")?;
                (split, format!("time cut, latest {:.0}% test", 100.0 * self.test_fraction))
            }
            (None, None, Some(_)) => {
                let split = Split::last_per_query(&data.interactions.query, timestamps, self.test_last_n)
                    .context("--split-by last-n")?;
                (split, format!("latest {} per user test", self.test_last_n))
            }
        };
        match self.validation_fraction {
            None => Ok((split, name)),
            Some(fraction) => {
                let how = match self.validation_by.as_str() {
                    "time" => Validation::Latest { fraction },
                    _ => Validation::Random { fraction, seed: self.split_seed },
                };
                let split = split.carve_validation(how, timestamps).context("--validation-fraction")?;
                let name = format!("{name}; validation: {} {:.0}% of train", self.validation_by, 100.0 * fraction);
                Ok((split, name))
            }
        }
    }
}

/// Whether `path` is a Parquet file (by extension), and an error if this build cannot read it.
fn is_parquet(path: &Path) -> anyhow::Result<bool> {
    let parquet = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if parquet && !cfg!(feature = "parquet") {
        bail!("{}: this build reads no Parquet; rebuild twotower with its default feature `parquet`", path.display());
    }
    Ok(parquet)
}

/// Keeps the interactions whose weight is at least `min`.
fn filter_by_weight(data: &mut Dataset, min: f32) -> anyhow::Result<()> {
    let interactions = &mut data.interactions;
    let Some(weights) = &interactions.weight else {
        bail!("--min-weight: the interactions have no weight column (give --weight COL)");
    };
    let keep: Vec<bool> = weights.iter().map(|&w| w >= min).collect();
    interactions.retain(&keep);
    if interactions.is_empty() {
        bail!("--min-weight {min}: no interaction has a weight that high");
    }
    Ok(())
}

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

/// `data/NAME/`, downloaded first if it does not hold the release yet.
fn fetch_named(name: &str) -> anyhow::Result<PathBuf> {
    let Some(source) = Source::named(name) else {
        bail!("--dataset {name:?}: expected one of {}", movielens::download::release_names().join(", "));
    };
    let dest = PathBuf::from("data").join(name);
    if source.required.iter().all(|f| dest.join(f).is_file()) {
        return Ok(dest);
    }
    if dest.exists() {
        bail!(
            "--dataset {name}: {} exists but lacks {}; remove it to download again",
            dest.display(),
            source.required.join(" or ")
        );
    }
    eprintln!("downloading {name} from {} into {}", source.url, dest.display());
    download(&source, &dest).with_context(|| format!("--dataset {name}"))
}

/// A spinner with the elapsed time while a release loads (seconds for ML-25M; the parser reads
/// whole files, so there is no byte position to show an ETA from).
fn loading_spinner(dir: &Path) -> ProgressBar {
    let spinner = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"));
    spinner.set_message(format!("loading {}", dir.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
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
