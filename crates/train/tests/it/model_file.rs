//! Model files round-trip exactly; foreign, other-version, damaged and inconsistent files are
//! clear errors naming what is wrong; a loaded file can always be served.

use ndarray::Array2;
use train::{ModelFile, ModelFileError, Retriever, UserQuery, FORMAT_VERSION, HEADER_LEN};

use crate::tiny_model_file;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("train-model-file-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("model.bin")
}

fn load(bytes: &[u8]) -> Result<ModelFile, ModelFileError> {
    ModelFile::from_bytes(bytes, std::path::Path::new("model.bin"))
}

#[test]
fn round_trip_is_exact_and_lookups_work_after_loading() {
    let path = scratch("ok");
    let (file, _, _) = tiny_model_file();
    file.save(&path).unwrap();
    let loaded = ModelFile::load(&path).unwrap();
    assert_eq!(loaded, file);
    // Lookups work on the deserialised features without any rebuild step.
    for (ours, theirs) in loaded.features.query.iter().zip(&file.features.query) {
        for value in [train::Value::Str("2"), train::Value::Int(30), train::Value::Str("writer")] {
            assert_eq!(ours.fitted.encode(value), theirs.fitted.encode(value), "{}", ours.name);
        }
    }
    let text = &loaded.features.candidate[1].fitted;
    assert_eq!(
        text.encode(train::Value::Str("alpha")),
        file.features.candidate[1].fitted.encode(train::Value::Str("alpha"))
    );
    assert_ne!(
        text.encode(train::Value::Str("alpha")),
        Ok(train::Encoding::Indices(vec![1])),
        "alpha is a known token"
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left beside the model");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn foreign_other_version_truncated_trailing_and_flipped_files_are_errors() {
    let (file, _, _) = tiny_model_file();
    let good = file.to_bytes();
    assert!(matches!(load(b"not a model"), Err(ModelFileError::NotAModelFile { .. })));

    let mut other_version = good.clone();
    other_version[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let error = load(&other_version).unwrap_err();
    assert!(matches!(error, ModelFileError::Version { found, .. } if found == FORMAT_VERSION + 1), "{error}");

    for cut in (0..good.len()).step_by(97).chain([good.len() - 1, HEADER_LEN, 11]) {
        let error = load(&good[..cut]).unwrap_err();
        assert!(!error.to_string().contains(": :"), "{error}");
    }
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    let error = load(&trailing).unwrap_err();
    assert!(error.to_string().contains("trailing bytes"), "{error}");

    // Every single flipped bit in the payload is caught by the checksum.
    for offset in (HEADER_LEN..good.len()).step_by(13) {
        let mut flipped = good.clone();
        flipped[offset] ^= 1 << (offset % 8);
        assert!(matches!(load(&flipped), Err(ModelFileError::Checksum { .. })), "byte {offset}");
    }
    assert_eq!(load(&good).unwrap(), file);
}

/// Re-encodes a changed file with a valid checksum, so that only the consistency checks can catch it.
fn reencode(file: &ModelFile) -> Vec<u8> {
    file.to_bytes()
}

/// A change to a model file.
type Edit = Box<dyn Fn(&mut ModelFile)>;

#[test]
fn files_whose_parts_disagree_are_errors_naming_the_field() {
    let (file, _, _) = tiny_model_file();
    let cases: Vec<(&str, Edit)> = vec![
        ("users[1] (2): catalogue row 1000", Box::new(|f| f.users[1].seen.push(1_000))),
        ("users[2] (3): catalogue row 7", Box::new(|f| f.users[2].history.push(7))),
        (
            "query.inputs[id:$key] (Lookup)",
            Box::new(|f| *f.model.query.inputs[0].table_mut().unwrap() = Array2::zeros((3, 4))),
        ),
        ("candidate.inputs[multi:genres] (Bag)", Box::new(|f| f.model.candidate.inputs.pop().map(drop).unwrap_or(()))),
        (
            "catalogue input \"text:title\": index",
            Box::new(|f| {
                if let train::EncodedColumn::Bags(bags) = &mut f.catalogue.inputs[1] {
                    let mut grown = tensor::Bags::default();
                    for r in 0..bags.len() {
                        grown.push(&[bags.row(r), &[1000]].concat())
                    }
                    *bags = grown;
                }
            }),
        ),
        ("catalogue: 6 keys but 5 names", Box::new(|f| f.catalogue.names.pop().map(drop).unwrap_or(()))),
        (
            "features: query tower: the spec lists 8 features, 7 are fitted",
            Box::new(|f| {
                f.config.model.query.features.push(train::FeatureSpec::new(train::FeatureKind::Numeric, "segment"))
            }),
        ),
        (
            "candidate.head.layers[1].b",
            Box::new(|f| {
                let layer = &mut f.model.candidate.head.stack.as_mut().unwrap().layers[1];
                layer.b = ndarray::Array1::zeros(5);
            }),
        ),
        (
            "query.head.layers[0].w",
            Box::new(|f| f.model.query.head.stack.as_mut().unwrap().layers[0].w[[0, 0]] = f32::NAN),
        ),
        ("config", Box::new(|f| f.config.model.set_layers(&[6, 0]))),
        ("query.head.layers[0].w (relu)", Box::new(|f| f.config.model.query.layers = vec![7, 4])),
        (
            "catalogue: empty",
            Box::new(|f| {
                f.catalogue.keys.clear();
                f.catalogue.names.clear();
            }),
        ),
    ];
    for (field, change) in cases {
        let mut broken = file.clone();
        change(&mut broken);
        match load(&reencode(&broken)) {
            Err(error @ ModelFileError::Invalid { .. }) => {
                assert!(error.to_string().contains(field), "{field}: {error}")
            }
            other => panic!("{field}: expected an inconsistency error, got {other:?}"),
        }
    }
}

#[test]
fn a_loaded_model_serves_and_clamps_k_and_time() {
    let (file, _, _) = tiny_model_file();
    let retriever = Retriever::new(load(&file.to_bytes()).unwrap());
    let n_items = file.catalogue.len();
    let query = |k, at| UserQuery { user: "3", at, k, include_seen: true };
    let all = retriever.recommend(&query(usize::MAX, None)).unwrap();
    assert_eq!(all.len(), n_items, "k beyond the catalogue returns the catalogue");
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    let unseen = retriever.recommend(&UserQuery { include_seen: false, ..query(100, None) }).unwrap();
    let seen = retriever.seen(retriever.user_index("3").unwrap());
    assert_eq!(unseen.len(), n_items - seen.len());
    assert!(unseen.iter().all(|r| !seen.contains(&r.row)));
    for at in [i64::MIN, -1, 1_000_000_000_000, i64::MAX] {
        let error = retriever.recommend(&query(5, Some(at))).unwrap_err();
        assert!(error.to_string().contains("expected a Unix time between"), "{error}");
    }
    assert!(retriever.recommend(&query(5, Some(file.features.latest_time() - 10))).is_ok());
    assert!(retriever.recommend(&query(0, None)).is_err());
    assert!(retriever.recommend(&query(5, None)).is_ok());
    assert!(retriever.recommend(&UserQuery { user: "no such user", ..query(5, None) }).is_err());
}

#[test]
fn invalid_configs_are_errors_before_training() {
    use train::{ConfigError, Experiment, TrainConfig};
    let base = Experiment::Deep2.config(1);
    let cases: [(TrainConfig, ConfigError); 7] = [
        (TrainConfig { batch_size: 1, ..base.clone() }, ConfigError::BatchTooSmall(1)),
        (TrainConfig { batch_size: 1_000_000, ..base.clone() }, ConfigError::BatchTooLarge(1_000_000)),
        (TrainConfig { epochs: usize::MAX, ..base.clone() }, ConfigError::TooManyEpochs(usize::MAX)),
        (TrainConfig { learning_rate: f32::NAN, ..base.clone() }, ConfigError::LearningRate(f32::NAN)),
        (TrainConfig { temperature: Some(0.0), ..base.clone() }, ConfigError::Temperature(0.0)),
        (TrainConfig { validation_freq: Some(0), ..base.clone() }, ConfigError::ZeroValidationFreq),
        (TrainConfig { epochs: 0, ..base.clone() }, ConfigError::ZeroEpochs),
    ];
    for (config, expected) in cases {
        let error = config.validate().unwrap_err();
        assert_eq!(error.to_string(), expected.to_string());
    }
    let mut zero_layer = base.clone();
    zero_layer.model.set_layers(&[64, 0]);
    assert!(matches!(zero_layer.validate(), Err(ConfigError::Layers { tower: "query", .. })));
    let mut uneven = base.clone();
    uneven.model.candidate.layers = vec![64, 16];
    assert!(matches!(uneven.validate(), Err(ConfigError::Widths { query: 32, candidate: 16 })));
    let mut wide = base;
    wide.model.embedding_dim = 100_000;
    let error = wide.validate().unwrap_err();
    assert!(error.to_string().contains("embedding_dim 100000: expected 1 to 4096"), "{error}");
}
