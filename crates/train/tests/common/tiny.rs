//! A tiny dataset and a model trained on it through the library's own path, shared by the
//! integration tests (`it`) and the allocation-capped mutation test.

use dataset::{Column, ColumnType, Dataset, Interactions, Split, Table};
use train::{Encoded, Experiment, FeatureColumns, FittedFeatures, ModelFile, SeenRows, Trainer};

/// 8 users, 6 candidate rows (two share a title), 240 interactions with times and weights.
pub fn tiny_dataset() -> Dataset {
    let titles =
        ["Alpha (1995)", "Beta Gamma (1996)", "Alpha (1995)", "Delta (1997)", "Epsilon Zeta (1994)", "Eta (1993)"];
    let mut title = Column::empty(ColumnType::String);
    for t in titles {
        title.push_string(t);
    }
    let candidates = Table::new((1..=6).map(|i: u32| i.to_string()), vec![("title".into(), title)]).unwrap();
    let mut interactions =
        Interactions { timestamp: Some(Vec::new()), weight: Some(Vec::new()), ..Interactions::default() };
    for i in 0..240u32 {
        interactions.query.push(interactions.query_keys.intern(&(1 + i % 8).to_string()));
        interactions.candidate.push((i * 7 + i / 8) % 6);
        interactions.timestamp.as_mut().unwrap().push(880_000_000 + i64::from(i) * 3_600);
        interactions.weight.as_mut().unwrap().push(1.0 + (i % 5) as f32);
    }
    Dataset { source: "tiny".into(), interactions, candidates, queries: None }
}

/// A model trained for two epochs on [`tiny_dataset`] through the same path as `twotower train`,
/// as it would be saved: `(file, encoded data, split)`.
pub fn tiny_model_file() -> (ModelFile, Encoded, Split) {
    let dataset = tiny_dataset();
    let features = FittedFeatures::fit(&dataset, &FeatureColumns::tutorial()).unwrap();
    let encoded = Encoded::new(&dataset, &features).unwrap();
    let split = Split::seeded(dataset.interactions.len(), 3, 0.8);
    let mut config = Experiment::ContextTimestamps.config(5);
    config.model.embedding_dim = 4;
    config.model.layer_sizes = vec![6, 4];
    config.batch_size = 32;
    config.epochs = 2;
    let mut trainer = Trainer::new(config.validate().unwrap(), features.vocabularies());
    trainer.fit(&encoded, &split, &mut ()).unwrap();
    let seen = SeenRows::new(&encoded, &split.train);
    let file = ModelFile::new((**trainer.config()).clone(), features, trainer.model.clone(), &dataset, &seen).unwrap();
    (file, encoded, split)
}
