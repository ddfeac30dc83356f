//! Fitting the preprocessing on all interactions (the tutorials) or on the training rows only.

use dataset::Split;
use train::{FeatureColumns, FitScope, FittedFeatures};

use crate::tiny_dataset;

#[test]
fn fitting_on_training_rows_leaves_test_only_users_out_of_vocabulary() {
    let data = tiny_dataset();
    // User "8" (query id 7) only in test; the latest interactions too.
    let n = data.interactions.len();
    let (test, train): (Vec<usize>, Vec<usize>) =
        (0..n).partition(|&i| data.interactions.query_key(i) == "8" || i >= n - 10);
    let split = Split { train: train.clone(), validation: vec![], test };
    let all = FittedFeatures::fit(&data, &FeatureColumns::tutorial()).unwrap();
    let train_only = FittedFeatures::fit_on(&data, &FeatureColumns::tutorial(), Some(&split.train)).unwrap();
    assert_eq!((all.fitted_on, train_only.fitted_on), (FitScope::AllInteractions, FitScope::TrainingRows));
    assert_ne!(all.query_ids.lookup("8"), 0);
    assert_eq!(train_only.query_ids.lookup("8"), 0, "a test-only user is OOV");
    assert_ne!(train_only.query_ids.lookup("1"), 0);
    let timestamps = data.interactions.timestamp.as_ref().unwrap();
    let latest_train = train.iter().map(|&i| timestamps[i]).max().unwrap();
    assert_eq!(train_only.max_timestamp, latest_train);
    assert!(all.max_timestamp > latest_train);
    // The candidate side always adapts on the whole catalogue.
    assert_eq!(all.candidate_ids, train_only.candidate_ids);
    assert_eq!(all.text, train_only.text);
}
