//! Seeded end-to-end training must reach accuracies far above chance, and be deterministic.

use std::path::PathBuf;

use dataset::Dataset;
use dataset::Split;
use train::{evaluate_split, Encoded, Experiment, FittedFeatures, SeenRows, TrainConfig, Trainer};

use crate::{small_config, small_data, small_synthetic, small_trainer, SMALL};

#[test]
fn synthetic_groups_are_learned_far_above_chance() {
    let (data, split) = small_data();
    let mut trainer = small_trainer(1, 6);
    let history = trainer.fit(&data, &split, &mut ()).unwrap();
    let seen = SeenRows::new(&data, &split.train);
    let report = evaluate_split(&trainer.model, &data, &split.test, &seen);
    let top_10 = report.all.at(10).unwrap();
    let chance = 10.0 / SMALL.n_candidates as f64;
    eprintln!(
        "synthetic: test top-10 {top_10:.3} (chance {chance:.3}), losses {:?}",
        history.iter().map(|r| r.loss_sum).collect::<Vec<_>>()
    );
    assert!(top_10 > 5.0 * chance, "top-10 {top_10} is not far above chance {chance}");
    assert!(history.last().unwrap().loss_sum < 0.9 * history[0].loss_sum, "the loss did not fall");
    assert_eq!(history.iter().filter(|r| r.validation.is_some()).count(), 3, "validation every 2 of 6 epochs");
}

#[test]
fn same_seed_same_numbers() {
    let (data, split) = small_data();
    let run = |seed| {
        let mut trainer = small_trainer(seed, 2);
        let history = trainer.fit(&data, &split, &mut ()).unwrap();
        (history.iter().map(|r| r.loss_sum).collect::<Vec<_>>(), trainer.model)
    };
    let (losses_a, model_a) = run(3);
    let (losses_b, model_b) = run(3);
    assert_eq!(losses_a, losses_b);
    assert_eq!(model_a, model_b, "weights must match bit for bit");
    let (losses_c, _) = run(4);
    assert_ne!(losses_a, losses_c, "another seed gives another run");
}

/// The real data, when `MOVIELENS_DIR` is set (required under `REQUIRE_MOVIELENS=1`).
fn movielens() -> Option<Dataset> {
    let required = std::env::var_os("REQUIRE_MOVIELENS").is_some_and(|v| v == "1");
    let Some(dir) = std::env::var_os("MOVIELENS_DIR").map(PathBuf::from) else {
        assert!(!required, "REQUIRE_MOVIELENS=1 but MOVIELENS_DIR is not set");
        eprintln!("SKIPPED movielens_context_timestamps_reaches_tutorial_quality: set MOVIELENS_DIR to run it");
        return None;
    };
    Some(movielens::load(&dir).unwrap_or_else(|e| panic!("{e}")))
}

/// Fits and encodes `config`'s features on `dataset` as `twotower train` does.
fn encode(dataset: &Dataset, config: &TrainConfig, split: &Split) -> (Encoded, towers::ValidModelConfig) {
    let features = FittedFeatures::fit(dataset, &config.model, None).unwrap();
    let data = Encoded::new(dataset, &config.model, &features, &split.train).unwrap();
    (data, features.model_config(&config.model).unwrap().validate().unwrap())
}

#[test]
fn movielens_context_timestamps_reaches_tutorial_quality() {
    let Some(dataset) = movielens() else { return };
    let split = Split::seeded(dataset.interactions.len(), 42, 0.8);
    let (data, shapes) = encode(&dataset, &Experiment::ContextTimestamps.config(42), &split);
    let config = Experiment::ContextTimestamps.config(42).validate().unwrap();
    let mut trainer = Trainer::new(config, shapes);
    let history = trainer.fit(&data, &split, &mut ()).unwrap();
    let top_100 = history.last().unwrap().validation.as_ref().unwrap().all.at(100).unwrap();
    let chance = 100.0 / dataset.candidates.n_rows() as f64;
    eprintln!("movielens context-timestamps: test top-100 {top_100:.4} (chance {chance:.4}; TFRS 0.253)");
    assert!(top_100 > 0.2, "test top-100 {top_100}: the tutorial reaches about 0.25");
}

#[test]
fn one_thread_and_two_threads_give_the_same_numbers() {
    let (data, split) = small_data();
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            // Batches of 1024 make the score products large enough to be split across threads.
            let mut config = (*small_config(9, 2)).clone();
            config.batch_size = 1024;
            let mut trainer = Trainer::new(config.validate().unwrap(), small_synthetic().model);
            let history = trainer.fit(&data, &split, &mut ()).unwrap();
            (history.iter().map(|r| r.loss_sum).collect::<Vec<_>>(), trainer.model)
        })
    };
    let (losses_1, model_1) = run(1);
    let (losses_2, model_2) = run(2);
    assert_eq!(losses_1, losses_2);
    assert_eq!(model_1, model_2, "the work split is fixed, so the thread count cannot change a bit");
}

/// The tutorial numbers that must not move when the towers are rebuilt from feature specs
/// (issue 10): seed 42 on the reference split, recorded with the code of this commit, where
/// they equal the first RESULTS.md table on both an Intel (SkylakeX) and an AMD (Cooperlake
/// kernels) machine with OpenBLAS. A GEMM kernel's last bits still move a query or two across
/// a rank boundary in three epochs (the pure-Rust matmul gives seen-filtered top-100 0.34970
/// against OpenBLAS's 0.34965 here: one query of 20 000), so each metric may move by four
/// queries (0.0002) and each epoch's loss sum by 1e-5 relative; a change of the arithmetic
/// moves them far more.
#[test]
fn tutorial_experiments_keep_their_reference_split_numbers() {
    let Some(dataset) = movielens() else { return };
    let required = std::env::var_os("REQUIRE_MOVIELENS").is_some_and(|v| v == "1");
    let split_path = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("data/splits/ml-100k-seed42.tsv");
    if !split_path.is_file() {
        assert!(!required, "REQUIRE_MOVIELENS=1 but {} is missing (set SHARED_DIR)", split_path.display());
        eprintln!("SKIPPED tutorial_experiments_keep_their_reference_split_numbers: no {}", split_path.display());
        return;
    }
    let ratings = movielens::split::ratings_of(&dataset).unwrap();
    let split = movielens::split::from_split_file(&split_path, &ratings).unwrap();
    // (experiment, test top-10, test top-100, seen-filtered top-100, loss sum per epoch)
    let pinned: [(Experiment, f64, f64, f64, [f64; 3]); 3] = [
        (Experiment::Basic, 0.0207, 0.2336, 0.33735, [714_555.792_968_75, 690_113.125, 677_995.625]),
        (
            Experiment::Context,
            0.01925,
            0.2208,
            0.3075,
            [597_101.285_522_460_9, 579_005.555_541_992_2, 571_055.491_638_183_6],
        ),
        (
            Experiment::ContextTimestamps,
            0.02445,
            0.25475,
            0.34965,
            [596_010.998_779_296_9, 571_184.782_897_949_2, 560_665.153_991_699_2],
        ),
    ];
    for (experiment, top_10, top_100, seen_100, losses) in pinned {
        let (data, shapes) = encode(&dataset, &experiment.config(42), &split);
        let seen = SeenRows::new(&data, &split.train);
        let mut trainer = Trainer::new(experiment.config(42).validate().unwrap(), shapes);
        let history = trainer.fit(&data, &split, &mut ()).unwrap();
        let report = evaluate_split(&trainer.model, &data, &split.test, &seen);
        let got = (report.all.at(10).unwrap(), report.all.at(100).unwrap(), report.seen_filtered.at(100).unwrap());
        let sums: Vec<f64> = history.iter().map(|r| r.loss_sum).collect();
        eprintln!(
            "{}: top-10 {:.5}, top-100 {:.5}, seen-filtered top-100 {:.5}, loss sums {sums:?}",
            experiment.name(),
            got.0,
            got.1,
            got.2
        );
        for (what, ours, want) in
            [("top-10", got.0, top_10), ("top-100", got.1, top_100), ("seen-filtered top-100", got.2, seen_100)]
        {
            assert!((ours - want).abs() <= 0.0002 + 1e-12, "{}: {what} {ours} moved from {want}", experiment.name());
        }
        for (epoch, (ours, want)) in sums.iter().zip(losses).enumerate() {
            assert!(
                (ours - want).abs() <= 1e-5 * want.abs(),
                "{} epoch {}: loss sum {ours} moved from {want}",
                experiment.name(),
                epoch + 1
            );
        }
    }
}

/// The logQ correction with probabilities estimated while training (Yi et al. 2019) learns as
/// well as with probabilities counted up front: test top-10 within 0.03 of each other.
#[test]
fn streaming_logq_learns_like_counted_logq() {
    let (data, split) = small_data();
    let seen = SeenRows::new(&data, &split.train);
    let top_10 = |streaming: Option<f32>| {
        let mut config = (*small_config(3, 6)).clone();
        config.logq = true;
        config.logq_streaming_alpha = streaming;
        let mut trainer = Trainer::new(config.validate().unwrap(), small_synthetic().model);
        trainer.fit(&data, &split, &mut ()).unwrap();
        evaluate_split(&trainer.model, &data, &split.test, &seen).all.at(10).unwrap()
    };
    let (counted, streamed) = (top_10(None), top_10(Some(0.05)));
    eprintln!("logQ: counted top-10 {counted:.4}, streaming top-10 {streamed:.4}");
    assert!((counted - streamed).abs() < 0.03, "counted {counted}, streaming {streamed}");
    assert!(streamed > 5.0 * 10.0 / SMALL.n_candidates as f64);
}
