//! Fitting the spec's features on all interactions (the tutorials) or on the training rows
//! only, and the error of every feature the data cannot feed.

use dataset::Split;
use train::{FitScope, FittedFeature, FittedFeatures, TrainConfig};

use crate::{tiny_dataset, EVERY_KIND};

fn lookup_of(features: &FittedFeatures, name: &str) -> features::StringLookup {
    match &features.query.iter().find(|f| f.name == name).unwrap().fitted {
        FittedFeature::Lookup(lookup) => lookup.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn fitting_on_training_rows_leaves_test_only_users_out_of_vocabulary() {
    let data = tiny_dataset();
    let spec = TrainConfig::from_toml(EVERY_KIND).unwrap().model;
    // User "8" (query id 7) only in test; the latest interactions too.
    let n = data.interactions.len();
    let (test, train): (Vec<usize>, Vec<usize>) =
        (0..n).partition(|&i| data.interactions.query_key(i) == "8" || i >= n - 10);
    let split = Split { train: train.clone(), validation: vec![], test };
    let all = FittedFeatures::fit(&data, &spec, None).unwrap();
    let train_only = FittedFeatures::fit(&data, &spec, Some(&split.train)).unwrap();
    assert_eq!((all.fitted_on, train_only.fitted_on), (FitScope::AllInteractions, FitScope::TrainingRows));
    assert_ne!(lookup_of(&all, "id:$key").lookup("8"), 0);
    assert_eq!(lookup_of(&train_only, "id:$key").lookup("8"), 0, "a test-only user is OOV");
    assert_ne!(lookup_of(&train_only, "id:$key").lookup("1"), 0);
    let timestamps = data.interactions.timestamp.as_ref().unwrap();
    let latest_train = train.iter().map(|&i| timestamps[i]).max().unwrap();
    assert_eq!(train_only.latest_time(), latest_train);
    assert!(all.latest_time() > latest_train);
    // User 8's age is not adapted on when fitting on training rows.
    assert_ne!(all.query[6], train_only.query[6], "numeric:age adapts on the training users only");
    // The candidate side always adapts on the whole catalogue.
    assert_eq!(all.candidate, train_only.candidate);
}

#[test]
fn every_feature_the_data_cannot_feed_is_an_error_naming_it() {
    let data = tiny_dataset();
    let base = TrainConfig::from_toml(EVERY_KIND).unwrap().model;
    let cases: [(&str, &str, &str); 6] = [
        ("candidate", r#"{ kind = "text", column = "plot" }"#, "column \"plot\": no such column; the candidate table has title (String), genres (StringList)"),
        ("candidate", r#"{ kind = "text", column = "genres" }"#, "a text feature needs a string column"),
        ("candidate", r#"{ kind = "numeric", column = "title" }"#, "a numeric feature needs an integer, timestamp or float column"),
        ("query", r#"{ kind = "multi", column = "age" }"#, "a multi feature needs a list column"),
        ("query", r#"{ kind = "id", column = "zip" }"#, "query feature \"id:zip\": column \"zip\": no such column; the query table has age (Integer), occupation (String)"),
        ("query", r#"{ kind = "bucketized", column = "age", boundaries = { values = [30.0, 40.0] }, name = "x" }"#, ""),
    ];
    for (tower, feature, needle) in cases {
        let mut spec = base.clone();
        let wrapped: std::collections::BTreeMap<String, train::FeatureSpec> =
            toml::from_str(&format!("f = {feature}")).unwrap();
        let parsed = wrapped["f"].clone();
        if tower == "query" {
            spec.query.features.push(parsed)
        } else {
            spec.candidate.features.push(parsed)
        }
        let result = FittedFeatures::fit(&data, &spec, None);
        match (needle, result) {
            ("", Ok(_)) => {}
            ("", Err(e)) => panic!("{feature}: {e}"),
            (needle, Err(e)) => assert!(e.to_string().contains(needle), "{feature}: {e}"),
            (_, Ok(_)) => panic!("{feature}: expected an error"),
        }
    }
    // A spec that never went through `TrainConfig::validate` is an error too, not a panic.
    let mut unchecked = base.clone();
    unchecked.query.features.push(train::FeatureSpec::new(train::FeatureKind::Bucketized, "age"));
    let error = FittedFeatures::fit(&data, &unchecked, None).unwrap_err();
    assert!(error.to_string().contains("`boundaries` is required"), "{error}");
    let mut no_table = data.clone();
    no_table.queries = None;
    let error = FittedFeatures::fit(&no_table, &base, None).unwrap_err();
    assert!(error.to_string().contains("the data has none"), "{error}");
    let mut no_time = data;
    no_time.interactions.timestamp = None;
    let error = FittedFeatures::fit(&no_time, &base, None).unwrap_err();
    assert!(error.to_string().contains("no timestamp column"), "{error}");
}
