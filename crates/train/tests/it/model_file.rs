//! Model files round-trip exactly; foreign, other-version and corrupt files are clear errors.

use features::{Buckets, Normalizer, TextVectorizer, Vocabulary};
use train::{FittedFeatures, ModelFile, ModelFileError, FORMAT_VERSION};

use crate::small_trainer;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("train-model-file-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("model.bin")
}

fn model_file() -> ModelFile {
    let trainer = small_trainer(5, 1);
    ModelFile {
        config: (**trainer.config()).clone(),
        features: FittedFeatures {
            users: Vocabulary::from_sorted_unique(["1", "2"]),
            titles: Vocabulary::new(["Toy Story (1995)"]),
            buckets: Buckets::linspace(0.0, 10.0, 11),
            normalizer: Normalizer::adapt(&[1, 2, 3]),
            text: TextVectorizer::adapt(["Toy Story (1995)"], 100),
            max_timestamp: 3,
        },
        model: trainer.model.clone(),
        movies: vec![(1, "Toy Story (1995)".into())],
        seen: vec![vec![], vec![0]],
    }
}

#[test]
fn round_trip_is_exact_and_lookups_work_after_loading() {
    let path = scratch("ok");
    let file = model_file();
    file.save(&path).unwrap();
    let loaded = ModelFile::load(&path).unwrap();
    assert_eq!(loaded, file);
    assert_eq!(loaded.features.users.lookup("2"), 2);
    assert_eq!(loaded.features.text.encode("toy"), [2]);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left beside the model");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn foreign_other_version_and_corrupt_files_are_errors() {
    let path = scratch("bad");
    model_file().save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    std::fs::write(&path, b"not a model").unwrap();
    assert!(matches!(ModelFile::load(&path), Err(ModelFileError::NotAModelFile { .. })));

    let mut other_version = good.clone();
    other_version[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    std::fs::write(&path, &other_version).unwrap();
    let error = ModelFile::load(&path).unwrap_err();
    assert!(matches!(error, ModelFileError::Version { found, .. } if found == FORMAT_VERSION + 1), "{error}");
    assert!(error.to_string().contains("format version"), "{error}");

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let error = ModelFile::load(&path).unwrap_err();
    assert!(matches!(error, ModelFileError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn invalid_configs_are_errors_before_training() {
    use train::{ConfigError, Experiment, TrainConfig};
    let base = Experiment::Deep2.config(1);
    let cases: [(TrainConfig, ConfigError); 4] = [
        (TrainConfig { batch_size: 0, ..base.clone() }, ConfigError::ZeroBatchSize),
        (TrainConfig { learning_rate: f32::NAN, ..base.clone() }, ConfigError::LearningRate(f32::NAN)),
        (TrainConfig { temperature: Some(0.0), ..base.clone() }, ConfigError::Temperature(0.0)),
        (TrainConfig { validation_freq: Some(0), ..base.clone() }, ConfigError::ZeroValidationFreq),
    ];
    for (config, expected) in cases {
        let error = config.validate().unwrap_err();
        assert_eq!(error.to_string(), expected.to_string());
    }
    let mut zero_layer = base;
    zero_layer.model.layer_sizes = vec![64, 0];
    assert!(matches!(zero_layer.validate(), Err(ConfigError::Model(_))));
}
