//! Parity with tf-keras 2.21 on the real MovieLens 100k: every entry of
//! `shared/golden/features.json` (vocabularies, probes, the bucket of all 100 000 ratings,
//! normalisation, the 2468-token text vocabulary and the token ids of all 1682 titles).
//!
//! Needs `MOVIELENS_DIR` (the real data may not be committed). When it is unset the tests say
//! they were skipped; with `REQUIRE_MOVIELENS=1` (set by `cargo xtask test` whenever
//! `MOVIELENS_DIR` is set) a missing input fails instead.

use std::path::PathBuf;

use features::{Buckets, Normalizer, TextVectorizer, Vocabulary};
use movielens::Dataset;
use serde_json::Value;

struct Fixture {
    data: Dataset,
    golden: Value,
}

fn fixture(test: &str) -> Option<Fixture> {
    let required = std::env::var_os("REQUIRE_MOVIELENS").is_some_and(|v| v == "1");
    let Some(dir) = std::env::var_os("MOVIELENS_DIR").map(PathBuf::from) else {
        assert!(!required, "{test}: REQUIRE_MOVIELENS=1 but MOVIELENS_DIR is not set");
        eprintln!("SKIPPED {test}: set MOVIELENS_DIR to the MovieLens 100k directory to run it");
        return None;
    };
    let golden_path = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("golden/features.json");
    let golden_text = std::fs::read_to_string(&golden_path)
        .unwrap_or_else(|e| panic!("{test}: reading {}: {e} (set SHARED_DIR)", golden_path.display()));
    let golden = serde_json::from_str(&golden_text).expect("features.json is JSON");
    let data = Dataset::load(&dir).unwrap_or_else(|e| panic!("{test}: {e}"));
    Some(Fixture { data, golden })
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().expect("array").iter().map(|v| v.as_str().expect("string")).collect()
}

/// Compares two sequences and reports the count matched and the first mismatches.
fn assert_all_equal<T: PartialEq + std::fmt::Debug>(what: &str, ours: &[T], golden: &[T]) {
    assert_eq!(ours.len(), golden.len(), "{what}: length");
    let mismatches: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != golden[i]).collect();
    eprintln!("{what}: {}/{} match", ours.len() - mismatches.len(), ours.len());
    if let Some(&i) = mismatches.first() {
        panic!("{what}: {} mismatches, first at {i}: ours {:?}, golden {:?}", mismatches.len(), ours[i], golden[i]);
    }
}

fn user_vocabulary(data: &Dataset) -> Vocabulary {
    Vocabulary::from_sorted_unique(data.ratings.iter().map(|r| r.user_id.to_string()))
}

fn title_vocabulary(data: &Dataset) -> Vocabulary {
    Vocabulary::from_sorted_unique(data.movies.iter().map(|m| m.title.clone()))
}

#[test]
fn user_vocabulary_and_probes() {
    let Some(Fixture { data, golden }) = fixture("user_vocabulary_and_probes") else { return };
    let vocab = user_vocabulary(&data);
    assert_all_equal(
        "user_vocab",
        &vocab.entries().iter().map(String::as_str).collect::<Vec<_>>(),
        &strings(&golden["user_vocab"]),
    );
    let probes = golden["user_lookup_probe"].as_object().expect("object");
    let ours: Vec<u64> = probes.keys().map(|k| u64::from(vocab.lookup(k))).collect();
    let theirs: Vec<u64> = probes.values().map(|v| v.as_u64().expect("int")).collect();
    assert_all_equal("user_lookup_probe", &ours, &theirs);
}

#[test]
fn title_vocabulary_and_probes() {
    let Some(Fixture { data, golden }) = fixture("title_vocabulary_and_probes") else { return };
    let vocab = title_vocabulary(&data);
    assert_all_equal(
        "title_vocab",
        &vocab.entries().iter().map(String::as_str).collect::<Vec<_>>(),
        &strings(&golden["title_vocab"]),
    );
    let probes = golden["title_lookup_probe"].as_array().expect("array");
    let ours: Vec<u64> = probes.iter().map(|p| u64::from(vocab.lookup(p[0].as_str().expect("title")))).collect();
    let theirs: Vec<u64> = probes.iter().map(|p| p[1].as_u64().expect("index")).collect();
    assert_all_equal("title_lookup_probe", &ours, &theirs);
}

#[test]
fn timestamp_buckets_of_every_rating() {
    let Some(Fixture { data, golden }) = fixture("timestamp_buckets_of_every_rating") else { return };
    let min = data.ratings.iter().map(|r| r.timestamp).min().expect("ratings");
    let max = data.ratings.iter().map(|r| r.timestamp).max().expect("ratings");
    assert_eq!((min, max), (golden["timestamp_min"].as_i64().unwrap(), golden["timestamp_max"].as_i64().unwrap()));
    let buckets = Buckets::linspace(min as f64, max as f64, 1000);
    let theirs: Vec<f64> =
        golden["timestamp_boundaries"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_all_equal("timestamp_boundaries (exact f64)", buckets.boundaries(), &theirs);
    let ours: Vec<u64> = data.ratings.iter().map(|r| u64::from(buckets.bucketize(r.timestamp))).collect();
    let theirs: Vec<u64> =
        golden["timestamp_bucket_per_rating"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_all_equal("timestamp_bucket_per_rating", &ours, &theirs);
    let probes = golden["timestamp_bucket_probe"].as_array().unwrap();
    let ours: Vec<u64> = probes.iter().map(|p| u64::from(buckets.bucketize(p[0].as_i64().unwrap()))).collect();
    let theirs: Vec<u64> = probes.iter().map(|p| p[1].as_u64().unwrap()).collect();
    assert_all_equal("timestamp_bucket_probe", &ours, &theirs);
}

#[test]
fn normalization_matches_keras_adapt() {
    let Some(Fixture { data, golden }) = fixture("normalization_matches_keras_adapt") else { return };
    let timestamps: Vec<i64> = data.ratings.iter().map(|r| r.timestamp).collect();
    let normalizer = Normalizer::adapt(&timestamps);
    assert_eq!(f64::from(normalizer.mean), golden["normalization_mean"].as_f64().unwrap(), "mean, bit for bit");
    assert_eq!(
        f64::from(normalizer.variance),
        golden["normalization_variance"].as_f64().unwrap(),
        "variance, bit for bit"
    );
    let mut max_error = 0f64;
    for probe in golden["normalization_probe"].as_array().unwrap() {
        let ours = f64::from(normalizer.normalize(probe[0].as_i64().unwrap()));
        let theirs = probe[1].as_f64().unwrap();
        let error = (ours - theirs).abs();
        max_error = max_error.max(error);
        assert!(error <= 1e-5, "normalize({}) = {ours}, golden {theirs}", probe[0]);
    }
    eprintln!("normalization_probe: max abs error {max_error:e}");
}

#[test]
fn text_vocabulary_and_every_title() {
    let Some(Fixture { data, golden }) = fixture("text_vocabulary_and_every_title") else { return };
    let text = TextVectorizer::adapt(data.movies.iter().map(|m| m.title.as_str()), 10_000);
    assert_all_equal("text_vocab", &text.vocabulary(), &strings(&golden["text_vocab"]));
    let ours: Vec<Vec<u32>> = data.movies.iter().map(|m| text.encode(&m.title)).collect();
    let theirs: Vec<Vec<u32>> = golden["title_token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ids| ids.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect())
        .collect();
    assert_all_equal("title_token_ids", &ours, &theirs);
    let probes = golden["text_probe"].as_array().unwrap();
    let ours: Vec<Vec<u32>> = probes.iter().map(|p| text.encode(p[0].as_str().unwrap())).collect();
    let theirs: Vec<Vec<u32>> =
        probes.iter().map(|p| p[1].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()).collect();
    assert_all_equal("text_probe", &ours, &theirs);
}
