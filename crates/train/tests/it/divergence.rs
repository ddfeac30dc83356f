//! Training stops with an error naming the epoch and batch when the loss, a gradient or a weight
//! stops being finite, and refuses splits it cannot train or test on.

use dataset::Split;
use train::{Experiment, TrainError, Trainer};

use crate::{small_config, small_data, small_synthetic};

fn fit_with(adjust: impl FnOnce(&mut train::TrainConfig)) -> Result<usize, TrainError> {
    let (data, split) = small_data();
    let mut config = (*small_config(1, 2)).clone();
    adjust(&mut config);
    let mut trainer = Trainer::new(config.validate().unwrap(), small_synthetic().model);
    trainer.fit(&data, &split, &mut ()).map(|history| history.len())
}

fn assert_diverged(result: Result<usize, TrainError>, needle: &str) {
    match result {
        Err(error @ TrainError::Diverged { .. }) => {
            let message = error.to_string();
            assert!(message.contains("epoch 1, batch "), "{message}");
            assert!(message.contains(needle), "{message}");
            assert!(message.contains("learning rate"), "{message}");
        }
        other => panic!("expected the run to stop, got {other:?}"),
    }
}

#[test]
fn a_huge_learning_rate_stops_at_the_first_non_finite_loss() {
    assert_diverged(fit_with(|c| c.learning_rate = 1e30), "the loss is");
    assert_diverged(fit_with(|c| c.learning_rate = 1e6), "");
}

#[test]
fn a_tiny_temperature_stops_before_adagrad_freezes_the_weights() {
    // The loss stays finite (about 1e33) but g² overflows Adagrad's accumulator.
    assert_diverged(fit_with(|c| c.temperature = Some(1e-30)), "temperature");
}

#[test]
fn the_tutorial_settings_train_without_tripping_the_guard() {
    assert_eq!(fit_with(|_| {}).unwrap(), 2);
}

#[test]
fn splits_without_two_training_rows_or_any_test_row_are_refused() {
    let synthetic =
        train::synthetic::SyntheticSpec { n_ratings: 500, ..crate::SMALL }.prepare(1, &Experiment::Basic.config(1));
    let (data, config) = (synthetic.encoded, Experiment::Basic.config(1).validate().unwrap());
    for (train, test, expected) in [
        (vec![], vec![1, 2], TrainError::TooFewTrainRows { found: 0 }),
        (vec![0], vec![1, 2], TrainError::TooFewTrainRows { found: 1 }),
        (vec![0, 1, 2], vec![], TrainError::NoTestRows),
    ] {
        let mut trainer = Trainer::new(config.clone(), synthetic.model.clone());
        let error = trainer.fit(&data, &Split { train, validation: vec![], test }, &mut ()).unwrap_err();
        assert_eq!(error, expected);
    }
}
