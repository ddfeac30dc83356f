//! What a run reports: the data summary, the metrics table, `metrics.json` and `summary.json`.

use std::path::Path;

use anyhow::Context;
use dataset::{Dataset, Split};
use serde_json::{json, Value};
use train::{EpochRecord, FittedFeatures, Metrics, SplitReport, TrainConfig};

/// One trained and evaluated run.
pub struct RunReport {
    pub experiment: String,
    pub config: TrainConfig,
    pub split: String,
    /// Which interactions the query-side preprocessing was adapted on.
    pub features_fitted_on: train::FitScope,
    pub test: SplitReport,
    /// On the validation block, when one was carved.
    pub validation: Option<SplitReport>,
    pub train: SplitReport,
    pub popularity_test: SplitReport,
    pub popularity_train: SplitReport,
    /// The EASE baseline on test, or why it was not fitted.
    pub ease_test: Result<SplitReport, String>,
    /// EASE's ridge λ.
    pub ease_lambda: f64,
    pub history: Vec<EpochRecord>,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub wall_seconds: f64,
}

impl RunReport {
    /// The `metrics.json` document.
    pub fn to_json(&self) -> Value {
        json!({
            "experiment": self.experiment,
            "config": self.config,
            "split": self.split,
            "features_fitted_on": self.features_fitted_on,
            "test": self.test.all,
            "test_seen_filtered": self.test.seen_filtered,
            "validation": self.validation.as_ref().map(|v| json!({ "all": v.all, "seen_filtered": v.seen_filtered })),
            "train": self.train.all,
            "train_seen_filtered": self.train.seen_filtered,
            "popularity": {
                "test": self.popularity_test.all,
                "test_seen_filtered": self.popularity_test.seen_filtered,
                "train": self.popularity_train.all,
            },
            "ease": match &self.ease_test {
                Ok(r) => json!({ "lambda": self.ease_lambda, "test": r.all, "test_seen_filtered": r.seen_filtered }),
                Err(why) => json!({ "skipped": why }),
            },
            "history": self.history,
            "seconds": { "train": self.train_seconds, "eval": self.eval_seconds, "wall": self.wall_seconds },
        })
    }
}

pub fn print_data_summary(data: &Dataset, split: &Split, split_name: &str) {
    let interactions = &data.interactions;
    println!("{}", data.source);
    let time = match &interactions.timestamp {
        Some(ts) => format!(
            ", timestamps {} .. {}",
            ts.iter().copied().min().unwrap_or(0),
            ts.iter().copied().max().unwrap_or(0)
        ),
        None => String::new(),
    };
    println!(
        "  {} interactions, {} users, {} candidate rows{time}",
        interactions.len(),
        interactions.query_keys.len(),
        data.candidates.n_rows(),
    );
    let validation =
        if split.validation.is_empty() { String::new() } else { format!(", {} validation", split.validation.len()) };
    println!("  split: {split_name}: {} train{validation}, {} test", split.train.len(), split.test.len());
}

/// One line per tower: each feature with its kind and table size.
pub fn print_features(name: &str, features: &FittedFeatures) {
    let scope = match features.fitted_on {
        train::FitScope::AllInteractions => "query side fitted on all interactions, as the tutorials",
        train::FitScope::TrainingRows => "query side fitted on the training rows only",
    };
    println!("  {name} features ({scope}):");
    for (tower, inputs) in [("query", &features.query), ("candidate", &features.candidate)] {
        let listed: Vec<String> = inputs
            .iter()
            .map(|f| match f.fitted.rows() {
                0 => format!("{} (1 column)", f.name),
                rows => format!("{} ({rows} rows)", f.name),
            })
            .collect();
        println!("    {tower}: {}", listed.join(", "));
    }
}

/// Picks one split's metrics out of a run.
type MetricsOf = dyn Fn(&RunReport) -> &Metrics;

pub fn print_table(runs: &[RunReport]) {
    let Some(first) = runs.first() else { return };
    let mean =
        |f: &MetricsOf, k: usize| runs.iter().map(|r| f(r).at(k).unwrap_or(0.0)).sum::<f64>() / runs.len() as f64;
    let mut rows: Vec<(&str, &MetricsOf)> = vec![
        ("model, test", &|r| &r.test.all),
        ("model, test, seen-filtered", &|r| &r.test.seen_filtered),
        ("model, train", &|r| &r.train.all),
        ("popularity, test", &|r| &r.popularity_test.all),
        ("popularity, test, seen-filtered", &|r| &r.popularity_test.seen_filtered),
        ("popularity, train", &|r| &r.popularity_train.all),
    ];
    if first.validation.is_some() {
        rows.insert(2, ("model, validation", &|r| &r.validation.as_ref().expect("checked").all));
    }
    if first.ease_test.is_ok() {
        rows.push(("EASE, test", &|r| &r.ease_test.as_ref().expect("checked").all));
        rows.push(("EASE, test, seen-filtered", &|r| &r.ease_test.as_ref().expect("checked").seen_filtered));
    }
    println!();
    println!(
        "{} ({} seed{}; {}):",
        first.experiment,
        runs.len(),
        if runs.len() == 1 { "" } else { "s, mean" },
        first.split
    );
    println!(
        "  {:<34} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "factorized top-k accuracy", "top-1", "top-5", "top-10", "top-50", "top-100"
    );
    for (label, metrics) in rows {
        print!("  {label:<34}");
        for k in eval::TFRS_KS {
            print!(" {:>7.4}", mean(metrics, k));
        }
        println!();
    }
    if let Err(why) = &first.ease_test {
        println!("  EASE baseline: {why}");
    }
    let train_s = runs.iter().map(|r| r.train_seconds).sum::<f64>() / runs.len() as f64;
    let eval_s = runs.iter().map(|r| r.eval_seconds).sum::<f64>() / runs.len() as f64;
    println!("  seconds per run: train {train_s:.2}, eval {eval_s:.2}");
}

/// Mean and standard deviation over seeds, per split and k.
pub fn write_summary(runs: &[RunReport], path: &Path) -> anyhow::Result<()> {
    let stats = |f: &MetricsOf| {
        let mut out = serde_json::Map::new();
        for k in eval::TFRS_KS {
            let values: Vec<f64> = runs.iter().map(|r| f(r).at(k).unwrap_or(0.0)).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
            out.insert(format!("top_{k}"), json!({ "mean": mean, "std": std, "runs": values }));
        }
        Value::Object(out)
    };
    let doc = json!({
        "experiment": runs[0].experiment,
        "seeds": runs.iter().map(|r| r.config.seed).collect::<Vec<_>>(),
        "split": runs[0].split,
        "test": stats(&|r| &r.test.all),
        "test_seen_filtered": stats(&|r| &r.test.seen_filtered),
        "train": stats(&|r| &r.train.all),
        "popularity": { "test": runs[0].popularity_test.all, "test_seen_filtered": runs[0].popularity_test.seen_filtered },
    });
    train::fs::write_atomic(path, serde_json::to_string_pretty(&doc)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
