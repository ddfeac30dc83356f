//! The training loop as a library: fitted features, batching, steps, epochs, validation,
//! history and model files. It only wires the lower crates together; the maths lives in
//! `tensor`, `towers`, `retrieval`, `optim` and `eval`.
//!
//! ```text
//! dataset::Dataset ──FittedFeatures::fit──▶ Encoded (index columns per interaction and per catalogue row)
//!         ──Trainer::fit──▶ epochs of shuffled batches:
//!              towers forward → in-batch softmax → towers backward → Adagrad (dense + row-sparse)
//!         ──evaluate──▶ factorized top-k over the whole catalogue (+ seen-filtered, popularity)
//! ```
//!
//! ```
//! use train::{Experiment, TrainConfig};
//! let config: TrainConfig = Experiment::Deep2.config(42);
//! assert_eq!(config.model.layer_sizes, [64, 32]);
//! assert!(TrainConfig { batch_size: 1, ..config }.validate().is_err());
//! ```
#![warn(missing_docs)]

mod batch;
mod config;
mod encode;
mod evaluate;
mod experiments;
pub mod export;
pub mod fs;
mod guard;
mod model_file;
mod optimizer;
mod retriever;
pub mod synthetic;
mod trainer;

pub use batch::Shuffler;
pub use config::{ConfigError, Shuffle, TrainConfig, ValidTrainConfig, MAX_BATCH_SIZE, MAX_EPOCHS};
pub use encode::{check_inputs, Encoded, FeatureColumns, FeatureError, FitScope, FittedFeatures, InputError};
pub use evaluate::{embed_catalogue, embed_queries, evaluate_split, popularity_split, Metrics, SeenRows, SplitReport};
pub use experiments::Experiment;
pub use guard::{TrainError, GRADIENT_LIMIT};
pub use model_file::{seal, CatalogueRow, ModelFile, ModelFileError, FORMAT_VERSION, HEADER_LEN};
pub use optimizer::ModelOptState;
pub use retriever::{QueryError, Recommendation, Retriever, UserQuery};
pub use trainer::{BatchProgress, EpochRecord, Observer, Trainer};
