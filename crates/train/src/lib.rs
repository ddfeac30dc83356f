//! The training loop as a library: fitted features, batching, steps, epochs, validation,
//! history and model files. It only wires the lower crates together; the maths lives in
//! `tensor`, `towers`, `retrieval`, `optim` and `eval`.
//!
//! ```text
//! spec (TOML) + dataset::Dataset ──FittedFeatures::fit──▶ Encoded (input columns per source row)
//!         ──Trainer::fit──▶ epochs of shuffled batches:
//!              towers forward → in-batch softmax → towers backward → Adagrad (dense + row-sparse)
//!         ──evaluate──▶ factorized top-k over the whole catalogue (+ seen-filtered, popularity)
//! ```
//!
//! ```
//! use train::{Experiment, TrainConfig};
//! let config: TrainConfig = Experiment::Deep2.config(42);
//! assert_eq!(config.model.query.layers, [64, 32]);
//! assert!(TrainConfig { batch_size: 1, ..config }.validate().is_err());
//! ```
#![warn(missing_docs)]

mod batch;
pub mod checkpoint;
mod config;
mod encode;
mod evaluate;
mod experiments;
pub mod export;
mod fitted;
mod frame;
pub mod fs;
mod guard;
mod model_file;
mod optimizer;
pub mod presets;
mod query;
mod retriever;
pub mod spec;
pub mod spinning;
pub mod synthetic;
mod trainer;

pub use batch::{Shuffler, MAX_FEATURES};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use config::{ConfigError, Shuffle, TrainConfig, ValidTrainConfig, MAX_BATCH_SIZE, MAX_EPOCHS};
pub use encode::{
    ColumnIssue, Encoded, EncodedColumn, EncodedInput, FeatureError, FitScope, FittedFeatures, FittedInput,
};
pub use evaluate::{
    ease_split, embed_catalogue, embed_queries, evaluate_split, evaluate_split_with_progress, popularity_split,
    Metrics, SeenRows, SplitReport,
};
pub use experiments::Experiment;
pub use fitted::{Encoding, FittedFeature, Value};
pub use guard::{TrainError, GRADIENT_LIMIT};
pub use model_file::{seal, Catalogue, KnownUser, ModelFile, ModelFileError, FORMAT_VERSION, HEADER_LEN};
pub use optimizer::ModelOptState;
pub use query::{OwnedValue, QueryError, Request, UserQuery};
pub use retrieval::SoftmaxKernel;
pub use retriever::{Recommendation, Retriever};
pub use spec::{FeatureKind, FeatureSpec, ModelSpec, TowerSpec};
pub use trainer::{BatchProgress, EpochRecord, Grads, Observer, StepProfile, Trainer};
