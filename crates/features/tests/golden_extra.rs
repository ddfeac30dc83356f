//! Parity with tf-keras 2.21 beyond the tutorials: `shared/golden/features_extra.json`
//! (hashing with and without a salt, lookups with several OOV indices and a mask, integer
//! lookups, float discretization, per-feature normalization).
//!
//! The file is read from `SHARED_DIR/golden/` (default `../shared/golden/`); when it is absent the
//! tests say they were skipped, unless `REQUIRE_MOVIELENS=1` (set by `cargo xtask test` when the
//! shared directory is there) makes it mandatory.

use std::path::PathBuf;

use features::Hashing;
use serde_json::Value;

fn golden(test: &str) -> Option<Value> {
    let required = std::env::var_os("REQUIRE_MOVIELENS").is_some_and(|v| v == "1");
    let path = std::env::var_os("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("golden/features_extra.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("features_extra.json is JSON")),
        Err(e) => {
            assert!(!required, "{test}: reading {}: {e}", path.display());
            eprintln!("SKIPPED {test}: {} not found (set SHARED_DIR)", path.display());
            None
        }
    }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn integers(value: &Value) -> Vec<i64> {
    value.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect()
}

#[test]
fn hashing_matches_keras_with_and_without_salt() {
    let Some(golden) = golden("hashing") else { return };
    let mut checked = 0;
    for case in golden["hashing"].as_array().unwrap() {
        let num_bins = case["num_bins"].as_u64().unwrap();
        let salt = case["salt"].as_array().map(|s| [s[0].as_u64().unwrap(), s[1].as_u64().unwrap()]);
        let layer = Hashing::new(num_bins, salt).unwrap();
        let inputs = strings(&case["inputs"]);
        let ours: Vec<i64> = inputs.iter().map(|s| layer.bin(s) as i64).collect();
        assert_eq!(ours, integers(&case["bins"]), "num_bins {num_bins}, salt {salt:?}");
        checked += ours.len();
    }
    eprintln!("hashing: {checked} bins match");
}

#[test]
fn string_and_integer_lookups_match_keras_with_oov_indices_and_masks() {
    let Some(golden) = golden("lookups") else { return };
    let mut checked = 0;
    for case in golden["string_lookup"].as_array().unwrap() {
        let num_oov = case["num_oov_indices"].as_u64().unwrap() as u32;
        let mask = case["mask_token"].as_str().map(str::to_string);
        let lookup = features::StringLookup::new(strings(&case["vocabulary"]), num_oov, mask.clone()).unwrap();
        let ours: Vec<i64> = strings(&case["inputs"]).iter().map(|s| i64::from(lookup.lookup(s))).collect();
        assert_eq!(ours, integers(&case["indices"]), "string lookup, {num_oov} OOV, mask {mask:?}");
        checked += ours.len();
    }
    for case in golden["integer_lookup"].as_array().unwrap() {
        let num_oov = case["num_oov_indices"].as_u64().unwrap() as u32;
        let lookup = features::IntegerLookup::new(integers(&case["vocabulary"]), num_oov, None).unwrap();
        let ours: Vec<i64> = integers(&case["inputs"]).iter().map(|&v| i64::from(lookup.lookup(v))).collect();
        assert_eq!(ours, integers(&case["indices"]), "integer lookup, {num_oov} OOV");
        checked += ours.len();
    }
    eprintln!("lookups: {checked} indices match");
}

#[test]
fn float_discretization_matches_keras_at_the_boundaries() {
    let Some(golden) = golden("discretization_float") else { return };
    let case = &golden["discretization_float"];
    let boundaries: Vec<f64> = case["bin_boundaries"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let buckets = features::Buckets::new(boundaries);
    let inputs: Vec<f32> = case["inputs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let ours: Vec<i64> = inputs.iter().map(|&x| i64::from(buckets.bucketize_f32(x))).collect();
    assert_eq!(ours, integers(&case["buckets"]));
    eprintln!("discretization_float: {} buckets match", ours.len());
}

#[test]
fn per_feature_normalization_matches_keras() {
    let Some(golden) = golden("normalization") else { return };
    let n = &golden["normalization"];
    let rows: Vec<Vec<f32>> = n["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
        .collect();
    let floats = |v: &Value| -> Vec<f32> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
    for case in n["cases"].as_array().unwrap() {
        let layers = if case["axis"].is_null() {
            vec![features::Normalizer::adapt_rows(&rows)]
        } else {
            features::Normalizer::adapt_columns(&rows)
        };
        let (mean, variance) = (floats(&case["mean"]), floats(&case["variance"]));
        let mut worst = 0f32;
        for (c, layer) in layers.iter().enumerate() {
            let rel = |a: f32, b: f32| (a - b).abs() / b.abs().max(1e-30);
            worst = worst.max(rel(layer.mean, mean[c])).max(rel(layer.variance, variance[c]));
            eprintln!(
                "axis {}: column {c}: mean {} vs {}, variance {} vs {}",
                case["axis"], layer.mean, mean[c], layer.variance, variance[c]
            );
        }
        assert_eq!(worst, 0.0, "axis {}: mean and variance bit for bit", case["axis"]);
        for (probe, output) in case["probes"].as_array().unwrap().iter().zip(case["outputs"].as_array().unwrap()) {
            let (probe, output) = (floats(probe), floats(output));
            for (c, layer) in layers.iter().enumerate() {
                let ours: Vec<f32> = if layers.len() == 1 {
                    probe.iter().map(|&x| layer.normalize_f32(x)).collect()
                } else {
                    vec![layer.normalize_f32(probe[c])]
                };
                let want: Vec<f32> = if layers.len() == 1 { output.clone() } else { vec![output[c]] };
                for (a, b) in ours.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 2.0 * f32::EPSILON * b.abs().max(1.0),
                        "axis {}: normalised {a} vs {b}",
                        case["axis"]
                    );
                }
            }
        }
    }
}

#[test]
fn quantile_boundaries_match_keras_adapt() {
    let Some(golden) = golden("discretization_adapt") else { return };
    let adapt = &golden["discretization_adapt"];
    let (mut exact, mut total, mut worst) = (0, 0, 0f64);
    for case in adapt["cases"].as_array().unwrap() {
        let name = case["data"].as_str().unwrap();
        let data: Vec<f32> =
            adapt["samples"][name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let num_bins = case["num_bins"].as_u64().unwrap() as usize;
        let epsilon = case["epsilon"].as_f64().unwrap();
        let buckets = features::Buckets::adapt_quantiles(&data, num_bins, epsilon);
        let want: Vec<f32> =
            case["bin_boundaries"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let ours: Vec<f32> = buckets.boundaries().iter().map(|&b| b as f32).collect();
        assert_eq!(ours.len(), want.len(), "{name}, {num_bins} bins, ε {epsilon}");
        for (a, b) in ours.iter().zip(&want) {
            total += 1;
            exact += usize::from(a == b);
            worst = worst.max(f64::from((a - b).abs()) / f64::from(b.abs()).max(1e-30));
        }
        let probes: Vec<f32> = case["probes"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let ours: Vec<i64> = probes.iter().map(|&p| i64::from(buckets.bucketize_f32(p))).collect();
        assert_eq!(ours, integers(&case["buckets"]), "{name}, {num_bins} bins, ε {epsilon}: probe buckets");
    }
    eprintln!("discretization_adapt: {exact}/{total} boundaries bit-exact, largest relative error {worst:e}");
    assert_eq!(exact, total, "every adapted boundary bit for bit");
}
