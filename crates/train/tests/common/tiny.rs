//! A tiny MovieLens-shaped dataset and a model trained on it through the library's own path,
//! shared by the integration tests (`it`) and the allocation-capped mutation test.

use movielens::split::Split;
use movielens::{Dataset, Movie, Rating};
use train::{Encoded, Experiment, FittedFeatures, ModelFile, SeenRows, Trainer};

/// A tiny MovieLens-shaped dataset: 8 users, 6 movie rows (two share a title), 240 ratings.
fn tiny_dataset() -> Dataset {
    let titles =
        ["Alpha (1995)", "Beta Gamma (1996)", "Alpha (1995)", "Delta (1997)", "Epsilon Zeta (1994)", "Eta (1993)"];
    let movies =
        titles.iter().enumerate().map(|(i, t)| Movie { movie_id: i as u32 + 1, title: t.to_string() }).collect();
    let ratings = (0..240u32)
        .map(|i| Rating {
            user_id: 1 + i % 8,
            movie_id: 1 + (i * 7 + i / 8) % 6,
            rating: 1 + (i % 5) as u8,
            timestamp: 880_000_000 + i64::from(i) * 3_600,
        })
        .collect();
    Dataset { ratings, movies }
}

/// A model trained for two epochs on [`tiny_dataset`] through the same path as `twotower train`,
/// as it would be saved: `(file, encoded data, split)`.
pub fn tiny_model_file() -> (ModelFile, Encoded, Split) {
    let dataset = tiny_dataset();
    let features = FittedFeatures::fit(&dataset);
    let encoded = Encoded::new(&dataset, &features);
    let split = Split::seeded(dataset.ratings.len(), 3, 0.8);
    let mut config = Experiment::ContextTimestamps.config(5);
    config.model.embedding_dim = 4;
    config.model.layer_sizes = vec![6, 4];
    config.batch_size = 32;
    config.epochs = 2;
    let mut trainer = Trainer::new(config.validate().unwrap(), features.vocabularies());
    trainer.fit(&encoded, &split, &mut ()).unwrap();
    let seen = SeenRows::new(&encoded, &split.train);
    let file = ModelFile::new((**trainer.config()).clone(), features, trainer.model.clone(), &dataset, &seen);
    (file, encoded, split)
}
