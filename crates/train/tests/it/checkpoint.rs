//! A run resumed from a checkpoint ends bit for bit where the uninterrupted run ends, and a
//! checkpoint refuses to continue another run or damaged bytes.

use train::{Checkpoint, CheckpointError, TrainError, Trainer};

use crate::{small_config, small_synthetic};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("train-checkpoint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Shuffling, streaming logQ and mixed negatives all carry RNG or estimator state across epochs.
fn config(epochs: usize) -> train::ValidTrainConfig {
    let mut config = (*small_config(11, epochs)).clone();
    config.logq = true;
    config.logq_streaming_alpha = Some(0.05);
    config.mixed_negatives = Some(64);
    config.validate().unwrap()
}

#[test]
fn a_resumed_run_ends_bit_for_bit_where_the_uninterrupted_run_ends() {
    let data = small_synthetic();
    let dir = scratch("resume");
    let mut whole = Trainer::new(config(4), data.model.clone());
    whole.checkpoint_every(dir.clone(), 2);
    let history = whole.fit(&data.encoded, &data.split, &mut ()).unwrap();

    let checkpoint = Checkpoint::load(&dir).unwrap();
    assert_eq!(checkpoint.epochs_done(), 2, "written after epoch 2, not after the last");
    let mut resumed = checkpoint.resume(config(4), &dir).unwrap();
    let resumed_history = resumed.fit(&data.encoded, &data.split, &mut ()).unwrap();
    assert_eq!(resumed.model, whole.model, "the weights match bit for bit");
    let losses = |h: &[train::EpochRecord]| h.iter().map(|r| r.loss_sum).collect::<Vec<_>>();
    assert_eq!(losses(&resumed_history), losses(&history));
    assert_eq!(resumed_history[3].validation, history[3].validation);

    // Extending the run: epochs may grow.
    let mut longer = Checkpoint::load(&dir).unwrap().resume(config(5), &dir).unwrap();
    assert_eq!(longer.fit(&data.encoded, &data.split, &mut ()).unwrap().len(), 5);

    // Another seed, or other data, is refused.
    let mut other_seed = (*config(4)).clone();
    other_seed.seed = 12;
    let error = Checkpoint::load(&dir).unwrap().resume(other_seed.validate().unwrap(), &dir).unwrap_err();
    assert!(matches!(error, CheckpointError::OtherRun { .. }), "{error}");
    let mut other_split = data.split.clone();
    other_split.train.reverse();
    let mut trainer = Checkpoint::load(&dir).unwrap().resume(config(4), &dir).unwrap();
    assert_eq!(trainer.fit(&data.encoded, &other_split, &mut ()).unwrap_err(), TrainError::OtherData);

    // Damaged bytes are an error naming the file.
    let path = dir.join(train::checkpoint::CHECKPOINT_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let error = Checkpoint::load(&dir).unwrap_err();
    assert!(error.to_string().contains("checksum mismatch") && error.to_string().contains("checkpoint.bin"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
