//! The `twotower` binary as a user runs it, on a small seeded MovieLens-format dataset written
//! to a temporary directory: careless and hostile flags and files must give a clear error, a
//! non-zero exit and nothing written; good runs write whole, consistent run directories.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{stderr, twotower, write_dataset, Scratch};

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
    assert_refused(
        &train(&scratch.0, &out, &["--embedding-dim", "100000"]),
        "embedding_dim 100000: expected 1 to 4096",
        &out,
    );
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
    // The approximate index searching wider than the 30-item catalogue finds the exact list.
    let exact = recommend(&["-k", "8"]);
    let approximate = recommend(&["-k", "8", "--ann", "64"]);
    assert!(approximate.status.success(), "{}", stderr(&approximate));
    assert_eq!(String::from_utf8_lossy(&approximate.stdout), String::from_utf8_lossy(&exact.stdout));
    assert!(!recommend(&["--ann", "0"]).status.success(), "a search width of 0 is refused");
    // The IVF index scanning all of its lists finds the exact list too.
    let ivf = recommend(&["-k", "8", "--ivf", "1000"]);
    assert!(ivf.status.success(), "{}", stderr(&ivf));
    assert_eq!(String::from_utf8_lossy(&ivf.stdout), String::from_utf8_lossy(&exact.stdout));
    assert!(!recommend(&["--ivf", "0"]).status.success(), "scanning no list is refused");
    let both = recommend(&["--ivf", "4", "--ann", "64"]);
    assert!(!both.status.success() && stderr(&both).contains("cannot be used with"), "{}", stderr(&both));

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

/// `plot-scale` draws every panel from bench-scale reports, and names the file and the field
/// of a report it cannot read.
#[test]
fn plot_scale_draws_reports_and_names_what_is_missing() {
    let scratch = Scratch::new("plot-scale");
    let report = |name: &str, ratings: u64, items: u64, items_given: bool, batches: &[(u64, f64)]| {
        let epochs: Vec<String> =
            batches.iter().map(|(b, s)| format!("{{\"batch_size\": {b}, \"epoch_seconds\": {s}}}")).collect();
        let text = format!(
            "{{\"ratings\": {ratings}, \"items\": {items}, \"items_given\": {items_given}, \"peak_resident_bytes\": 1.5e9, \"epochs\": [{}]}}",
            epochs.join(", ")
        );
        let path = scratch.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let small = report("small.json", 1_000_000, 12_484, false, &[(1024, 9.0), (2048, 11.0), (8192, 30.0)]);
    let large = report("large.json", 5_000_000, 27_916, false, &[(2048, 60.0)]);
    let items = report("items.json", 5_000_000, 1_000_000, true, &[(2048, 80.0)]);
    let svg = scratch.0.join("cost.svg");
    let output = twotower(&["plot-scale", &small, &large, &items, "--out", svg.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in
        ["epoch seconds vs interactions", "peak memory GB vs catalogue items", "batch size (1.0M interactions)"]
    {
        assert!(text.contains(label), "no {label:?} in the plot");
    }
    let broken = scratch.0.join("broken.json");
    std::fs::write(
        &broken,
        r#"{"ratings": 5, "items": 3, "peak_resident_bytes": 1, "epochs": [{"batch_size": 2048}]}"#,
    )
    .unwrap();
    let output = twotower(&["plot-scale", broken.to_str().unwrap(), "--out", svg.to_str().unwrap()]);
    let message = stderr(&output);
    assert!(
        !output.status.success() && message.contains("broken.json") && message.contains("epoch_seconds"),
        "{message}"
    );
}

fn movielens_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../movielens/tests/fixtures").join(name)
}

#[test]
fn every_movielens_layout_trains_from_data_dir() {
    for release in ["good", "ml-1m", "ml-10m", "ml-latest-small"] {
        let scratch = Scratch::new(&format!("layout-{release}"));
        let out = scratch.0.join("run");
        let output = train(
            &movielens_fixture(release),
            &out,
            &["--epochs", "1", "--batch-size", "2", "--split-by", "time", "--test-fraction", "0.25"],
        );
        assert!(output.status.success(), "{release}: {}", stderr(&output));
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        assert!(metrics["test"]["top_100"].as_f64().is_some(), "{release}");
    }
}

/// A generic interaction log with an item table: 60 users, 40 items in 4 groups, with genres.
fn write_generic(dir: &Path) {
    let mut items = String::from("sku,name,genres,price\n");
    for i in 0..40 {
        items.push_str(&format!("item-{i},\"Item {i}, group {}\",g{}|all,{}.5\n", i % 4, i % 4, i));
    }
    let mut log = String::from("customer,sku,when,stars\n");
    let mut state = 7u64;
    for n in 0..3000u64 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let user = (state >> 33) % 60;
        let item = (user % 4) + 4 * ((state >> 40) % 10);
        log.push_str(&format!("user-{user},item-{item},{},{}\n", 1_600_000_000 + n * 60, 1 + (state >> 50) % 5));
    }
    std::fs::write(dir.join("items.csv"), items).unwrap();
    std::fs::write(dir.join("log.csv"), log).unwrap();
}

#[test]
fn a_generic_csv_pair_trains_with_a_validation_block() {
    let scratch = Scratch::new("generic");
    write_generic(&scratch.0);
    let out = scratch.0.join("run");
    let (log, items) = (scratch.0.join("log.csv"), scratch.0.join("items.csv"));
    let mut args = vec![
        "train",
        "--interactions",
        log.to_str().unwrap(),
        "--candidates",
        items.to_str().unwrap(),
        "--query-key",
        "customer",
        "--candidate-key",
        "sku",
        "--timestamp",
        "when",
        "--weight",
        "stars",
        "--candidate-text",
        "name",
        "--list-column",
        "genres=|",
        "--validation-fraction",
        "0.1",
        "--epochs",
        "3",
        "--batch-size",
        "256",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = twotower(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("3000 interactions, 60 users, 40 candidate rows"), "{stdout}");
    assert!(stdout.contains("validation: random 10% of train"), "{stdout}");
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let validation = metrics["validation"]["all"]["top_10"].as_f64().unwrap();
    let test = metrics["test"]["top_10"].as_f64().unwrap();
    assert!(validation > 0.2 && test > 0.2, "the groups are learnable: validation {validation}, test {test}");
    // The recommendation names come from the text column, keys from the key column.
    let model = out.join("model.bin");
    let rec = twotower(&["recommend", "--model", model.to_str().unwrap(), "--user", "user-3", "-k", "3"]);
    let listing = String::from_utf8_lossy(&rec.stdout);
    assert!(rec.status.success() && listing.contains("(key item-"), "{listing}{}", stderr(&rec));

    // A missing column and a bad value are errors naming the file, line and column.
    args[6] = "customer_id";
    let output = twotower(&args);
    assert!(stderr(&output).contains("log.csv:1: column `customer_id`: no such column"), "{}", stderr(&output));
    let mut bad_log = std::fs::read_to_string(&log).unwrap();
    bad_log.push_str("user-1,item-2,yesterday,3\n");
    std::fs::write(&log, bad_log).unwrap();
    args[6] = "customer";
    let output = twotower(&args);
    assert!(stderr(&output).contains("log.csv:3002: column `when`: expected Unix seconds"), "{}", stderr(&output));
    // Without a text column the context experiments say what is missing; basic trains.
    let no_text: Vec<&str> = args.iter().copied().filter(|a| *a != "--candidate-text" && *a != "name").collect();
    std::fs::write(&log, std::fs::read_to_string(&log).unwrap().replace("user-1,item-2,yesterday,3\n", "")).unwrap();
    let output = twotower(&no_text);
    assert!(
        stderr(&output).contains("column \"title\": no such column; the candidate table has name"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn latin1_files_need_and_get_their_encoding() {
    let scratch = Scratch::new("latin1");
    write_generic(&scratch.0);
    let items = std::fs::read(scratch.0.join("items.csv")).unwrap();
    // Item 5's name gets an é (0xe9 in latin-1, invalid on its own in UTF-8).
    let text = String::from_utf8(items).unwrap().replace("\"Item 5,", "\"Caf\u{e9} 5,");
    let latin1: Vec<u8> = text.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    std::fs::write(scratch.0.join("items.csv"), latin1).unwrap();
    let (log, items) = (scratch.0.join("log.csv"), scratch.0.join("items.csv"));
    let out = scratch.0.join("run");
    let mut args = vec![
        "train",
        "--interactions",
        log.to_str().unwrap(),
        "--candidates",
        items.to_str().unwrap(),
        "--query-key",
        "customer",
        "--candidate-key",
        "sku",
        "--experiment",
        "basic",
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = twotower(&args);
    assert!(stderr(&output).contains("items.csv:7: column `name`: invalid UTF-8"), "{}", stderr(&output));
    args.extend(["--encoding", "latin-1"]);
    let output = twotower(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let model = train::ModelFile::load(&out.join("model.bin")).unwrap();
    assert_eq!(model.catalogue.keys[5], "item-5");
}

#[test]
fn min_weight_filters_interactions_and_says_when_nothing_is_left() {
    let scratch = Scratch::new("min-weight");
    write_generic(&scratch.0);
    let (log, items) = (scratch.0.join("log.csv"), scratch.0.join("items.csv"));
    let out = scratch.0.join("run");
    let args = |min: &'static str| -> Vec<String> {
        [
            "train",
            "--interactions",
            log.to_str().unwrap(),
            "--candidates",
            items.to_str().unwrap(),
            "--query-key",
            "customer",
            "--candidate-key",
            "sku",
            "--weight",
            "stars",
            "--experiment",
            "basic",
            "--epochs",
            "1",
            "--batch-size",
            "256",
            "--out",
            out.to_str().unwrap(),
            "--min-weight",
            min,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |min| twotower(&args(min).iter().map(String::as_str).collect::<Vec<_>>());
    let output = run("6");
    assert!(stderr(&output).contains("--min-weight 6: no interaction has a weight that high"), "{}", stderr(&output));
    let output = run("4");
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let kept: usize = stdout.split(" interactions").next().unwrap().rsplit(' ').next().unwrap().trim().parse().unwrap();
    assert!(kept > 900 && kept < 1500, "about 2 in 5 of 3000 interactions have 4 or 5 stars: {kept}");
}

#[test]
fn a_resumed_run_writes_the_model_an_uninterrupted_run_writes() {
    let scratch = Scratch::new("resume");
    write_dataset(&scratch.0, 2400);
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["--experiment", "context-timestamps", "--batch-size", "256", "--validation-sample", "100"];
        args.extend_from_slice(extra);
        let output = train(&scratch.0, &scratch.0.join(out), &args);
        assert!(output.status.success(), "{}", stderr(&output));
        output
    };
    let checkpoints = scratch.0.join("checkpoints");
    let checkpoints = checkpoints.to_str().unwrap();
    run("whole", &["--epochs", "4"]);
    // "Interrupted" after epoch 2 of a run that checkpoints every epoch, then resumed to 4.
    run("first-half", &["--epochs", "3", "--checkpoint", checkpoints, "--checkpoint-every", "2"]);
    let resumed = run("resumed", &["--epochs", "4", "--checkpoint", checkpoints, "--resume"]);
    assert!(stderr(&resumed).contains("resuming after epoch 2"), "{}", stderr(&resumed));
    let whole = std::fs::read(scratch.0.join("whole/model.bin")).unwrap();
    let continued = std::fs::read(scratch.0.join("resumed/model.bin")).unwrap();
    assert!(whole == continued, "the resumed run's model file differs from the uninterrupted run's");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.0.join("resumed/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["history"].as_array().unwrap().len(), 4, "the history covers every epoch");
    assert_eq!(metrics["history"][3]["validation_rows"], 100, "per-epoch validation ranked the sample");
    // Another seed does not continue this checkpoint (the default seed is 42).
    let other = train(
        &scratch.0,
        &scratch.0.join("other"),
        &[
            "--experiment",
            "context-timestamps",
            "--batch-size",
            "256",
            "--validation-sample",
            "100",
            "--epochs",
            "4",
            "--checkpoint",
            checkpoints,
            "--resume",
            "--seed",
            "7",
        ],
    );
    assert!(other.status.success(), "seed 7 has no checkpoint of its own, so it starts afresh: {}", stderr(&other));
    assert!(!stderr(&other).contains("resuming"), "{}", stderr(&other));
}
