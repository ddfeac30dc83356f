//! The `twotower` binary as a user runs it, on a small seeded MovieLens-format dataset written
//! to a temporary directory: careless and hostile flags and files must give a clear error, a
//! non-zero exit and nothing written; good runs write whole, consistent run directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("twotower-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `u.data` and `u.item` with 40 users, 30 movies and 2400 ratings (a small LCG, seeded).
fn write_dataset(dir: &Path, n_ratings: usize) {
    let mut state = 42u64;
    let mut next = |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut ratings = String::new();
    for i in 0..n_ratings {
        let user = 1 + next(40);
        let movie = 1 + (user * 3 + next(8)) % 30;
        ratings.push_str(&format!("{user}\t{movie}\t{}\t{}\n", 1 + next(5), 880_000_000 + i as u64 * 600));
    }
    let mut movies = String::new();
    for m in 1..=30 {
        movies.push_str(&format!(
            "{m}|Film number {} (199{})|01-Jan-1995||http://example.invalid/|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
            m % 27,
            m % 10
        ));
    }
    std::fs::write(dir.join("u.data"), ratings).unwrap();
    std::fs::write(dir.join("u.item"), movies).unwrap();
}

fn twotower(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twotower")).args(args).env_remove("MOVIELENS_DIR").output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failed run whose message contains `needle`, and that `out` was not created.
fn assert_refused(output: &Output, needle: &str, out: &Path) {
    let message = stderr(output);
    assert!(!output.status.success(), "expected failure, got success; stderr: {message}");
    assert!(message.contains(needle), "expected {needle:?} in: {message}");
    assert!(!out.exists(), "{} was written by a failed run", out.display());
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    twotower(&args)
}

#[test]
fn diverging_or_impossible_runs_fail_and_write_nothing() {
    let scratch = Scratch::new("diverge");
    write_dataset(&scratch.0, 2400);
    let out = scratch.0.join("run");
    let cases: [(&[&str], &str); 6] = [
        (&["--lr", "1e30", "--epochs", "1"], "epoch 1, batch 1 of 1"),
        (&["--lr", "1e6", "--epochs", "3", "--batch-size", "128"], "training stopped and nothing was written"),
        (&["--temperature", "1e-30", "--epochs", "1", "--batch-size", "128"], "temperature"),
        (&["--batch-size", "1"], "at least 2 examples"),
        (&["--batch-size", "1000000"], "at most 16384"),
        (&["--seed", "1,1"], "listed twice"),
    ];
    for (flags, needle) in cases {
        eprintln!("case {flags:?}");
        assert_refused(&train(&scratch.0, &out, flags), needle, &out);
    }
    assert_refused(&train(&scratch.0, &out, &["--embedding-dim", "100000"]), "at most 4096", &out);
}

#[test]
fn empty_and_one_line_datasets_are_errors() {
    let scratch = Scratch::new("tiny");
    write_dataset(&scratch.0, 1);
    let out = scratch.0.join("run");
    assert_refused(&train(&scratch.0, &out, &[]), "training row", &out);
    std::fs::write(scratch.0.join("u.data"), "").unwrap();
    assert_refused(&train(&scratch.0, &out, &[]), "u.data: the file is empty", &out);
    std::fs::remove_file(scratch.0.join("u.data")).unwrap();
    std::fs::create_dir(scratch.0.join("u.data")).unwrap();
    let output = train(&scratch.0, &out, &[]);
    assert_refused(&output, "u.data", &out);
    let message = stderr(&output);
    assert_eq!(message.matches("os error").count(), 1, "each cause once: {message}");
}

#[test]
fn all_experiments_get_their_own_directories_under_out() {
    let scratch = Scratch::new("all");
    write_dataset(&scratch.0, 2400);
    let out = scratch.0.join("runs");
    let output = train(&scratch.0, &out, &["--experiment", "all", "--epochs", "2", "--batch-size", "256"]);
    assert!(output.status.success(), "{}", stderr(&output));
    for name in ["basic", "context", "context-timestamps", "deep-1", "deep-2", "deep-3"] {
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(name).join("metrics.json")).unwrap()).unwrap();
        assert_eq!(metrics["experiment"], name);
        let model = train::ModelFile::load(&out.join(name).join("model.bin")).unwrap();
        assert_eq!(model.config.name, metrics["config"]["name"].as_str().unwrap());
    }
    assert!(out.join("deep-comparison.svg").is_file());
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging directories left behind: {leftovers:?}");
}

#[test]
fn a_rerun_replaces_metrics_and_model_together_and_recommend_checks_its_flags() {
    let scratch = Scratch::new("rerun");
    write_dataset(&scratch.0, 2400);
    let out = scratch.0.join("run");
    for seed in ["7", "8"] {
        let output = train(&scratch.0, &out, &["--experiment", "basic", "--epochs", "1", "--seed", seed]);
        assert!(output.status.success(), "{}", stderr(&output));
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        let model = train::ModelFile::load(&out.join("model.bin")).unwrap();
        assert_eq!(metrics["config"]["seed"].as_u64(), Some(model.config.seed));
        assert_eq!(model.config.seed.to_string(), seed);
    }
    let model = out.join("model.bin");
    let model = model.to_str().unwrap();
    let recommend = |extra: &[&str]| {
        let mut args = vec!["recommend", "--model", model, "--user", "3"];
        args.extend_from_slice(extra);
        twotower(&args)
    };
    let all = recommend(&["-k", "1000000000000", "--include-seen"]);
    assert!(all.status.success(), "{}", stderr(&all));
    let listing = String::from_utf8_lossy(&all.stdout);
    assert!(listing.starts_with("Top 30 for user 3"), "{listing}");
    let far = recommend(&["--at", "1000000000000"]);
    assert!(!far.status.success() && stderr(&far).contains("expected a Unix time between"), "{}", stderr(&far));
    let negative = recommend(&["--at", "-5"]);
    assert!(!negative.status.success(), "{}", stderr(&negative));

    let mut bytes = std::fs::read(out.join("model.bin")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    let damaged = scratch.0.join("damaged.bin");
    std::fs::write(&damaged, &bytes).unwrap();
    let output = twotower(&["recommend", "--model", damaged.to_str().unwrap(), "--user", "3"]);
    let message = stderr(&output);
    assert!(!output.status.success() && message.contains("checksum mismatch"), "{message}");
    assert_eq!(message.matches("damaged.bin").count(), 1, "{message}");
}

#[test]
fn bench_epochs_are_range_checked() {
    let output = twotower(&["bench", "--epochs", "18446744073709551615"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--epochs"), "{}", stderr(&output));
}
