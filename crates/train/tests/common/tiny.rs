//! A tiny dataset and a model trained on it through the library's own path, shared by the
//! integration tests (`it`) and the allocation-capped mutation test. The model has a feature of
//! every kind, so every kind of tensor and encoded column is in its file.

use dataset::{Column, ColumnType, Dataset, Interactions, Split, Table};
use train::{Encoded, FittedFeatures, ModelFile, SeenRows, TrainConfig, Trainer};

/// A spec with one feature of every kind.
pub const EVERY_KIND: &str = r#"
name = "every-kind"
batch_size = 32
epochs = 2
learning_rate = 0.1
seed = 5

[model]
embedding_dim = 4

[model.query]
layers = [6, 4]
features = [
  { kind = "id", column = "$key" },
  { kind = "bucketized", column = "$timestamp", boundaries = { linspace = 10 } },
  { kind = "numeric", column = "$timestamp" },
  { kind = "history", length = 5 },
  { kind = "id", column = "occupation", hash_bins = 7 },
  { kind = "bucketized", column = "age", boundaries = { quantiles = 3 } },
  { kind = "numeric", column = "age" },
]

[model.candidate]
layers = [5, 4]
features = [
  { kind = "id", column = "title" },
  { kind = "text", column = "title", dim = 3 },
  { kind = "multi", column = "genres", num_oov = 2 },
]
"#;

/// 8 users with an age and an occupation, 6 candidate rows (two share a title) with genres,
/// 240 interactions with times and weights.
pub fn tiny_dataset() -> Dataset {
    let titles =
        ["Alpha (1995)", "Beta Gamma (1996)", "Alpha (1995)", "Delta (1997)", "Epsilon Zeta (1994)", "Eta (1993)"];
    let mut title = Column::empty(ColumnType::String);
    let mut genres = Column::empty(ColumnType::StringList);
    for (i, t) in titles.iter().enumerate() {
        title.push_string(t);
        genres.push_list(if i % 2 == 0 { vec!["Drama", "War"] } else { vec!["Comedy"] });
    }
    let candidates =
        Table::new((1..=6).map(|i: u32| i.to_string()), vec![("title".into(), title), ("genres".into(), genres)])
            .unwrap();
    let mut occupation = Column::empty(ColumnType::String);
    for u in 0..8 {
        occupation.push_string(["student", "writer", "other"][u % 3]);
    }
    let queries = Table::new(
        (1..=8).map(|i: u32| i.to_string()),
        vec![("age".into(), Column::Integer((0..8).map(|u| 20 + 5 * u).collect())), ("occupation".into(), occupation)],
    )
    .unwrap();
    let mut interactions =
        Interactions { timestamp: Some(Vec::new()), weight: Some(Vec::new()), ..Interactions::default() };
    for i in 0..240u32 {
        interactions.query.push(interactions.query_keys.intern(&(1 + i % 8).to_string()));
        interactions.candidate.push((i * 7 + i / 8) % 6);
        interactions.timestamp.as_mut().unwrap().push(880_000_000 + i64::from(i) * 3_600);
        interactions.weight.as_mut().unwrap().push(1.0 + (i % 5) as f32);
    }
    Dataset { source: "tiny".into(), interactions, candidates, queries: Some(queries) }
}

/// A model with every feature kind trained for two epochs on [`tiny_dataset`] through the same
/// path as `twotower train`, as it would be saved: `(file, encoded data, split)`.
pub fn tiny_model_file() -> (ModelFile, Encoded, Split) {
    let dataset = tiny_dataset();
    let config = TrainConfig::from_toml(EVERY_KIND).unwrap();
    let split = Split::seeded(dataset.interactions.len(), 3, 0.8);
    let features = FittedFeatures::fit(&dataset, &config.model, None).unwrap();
    let encoded = Encoded::new(&dataset, &config.model, &features, &split.train).unwrap();
    let shapes = features.model_config(&config.model).unwrap().validate().unwrap();
    let mut trainer = Trainer::new(config.validate().unwrap(), shapes);
    trainer.fit(&encoded, &split, &mut ()).unwrap();
    let seen = SeenRows::new(&encoded, &split.train);
    let config = (**trainer.config()).clone();
    let file = ModelFile::new(config, features, trainer.model.clone(), &dataset, &encoded, &split.train, &seen);
    (file, encoded, split)
}
