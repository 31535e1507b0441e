//! mlops-data: tables and their preparation (a foundation crate), and Capability 1, Data
//! Preparation, whose tools stand on this library alone.
//!
//! Tables are read and written with polars (CSV and Parquet, from the artifact store). Preprocessing
//! produces a [`FittedPipeline`]: plain data (imputation values, scaling parameters, category lists)
//! saved as `pipeline.json` beside the processed tables, embedded in every model trained on them, and
//! re-applied identically at evaluation and inference time.

mod capability;
mod chunks;
pub mod drift;
mod error;
mod features;
mod io;
mod pipeline;
mod prepared;
mod profile;
mod replay;
mod split;
mod synthetic;
mod validate;

pub use capability::DataCapability;
pub use chunks::TableChunks;
pub use drift::{DriftComparison, DriftThresholds, ReferenceProfile};
pub use error::DataError;
pub use io::{TableFormat, encode, read_table, require_rows, write_table};
pub use pipeline::{FittedPipeline, PreprocessOptions, RecordsInput, TargetSpec, TaskType};
pub use prepared::{
    load_model_input, load_pipeline, pipeline_beside, profile_beside, save_profile, to_model_input,
};
pub use synthetic::{SyntheticKind, generate as generate_dataset};
