//! mlops-data: Capability 1, Data Preparation.
//!
//! Tables are read and written with polars (CSV and Parquet, from the artifact store). Preprocessing
//! produces a [`FittedPipeline`]: plain data (imputation values, scaling parameters, category lists)
//! saved as `pipeline.json` beside the processed tables, embedded in every model trained on them, and
//! re-applied identically at evaluation and inference time.

pub mod capability;
pub mod error;
pub mod features;
pub mod io;
pub mod pipeline;
pub mod prepared;
pub mod profile;
pub mod replay;
pub mod split;
pub mod synthetic;
pub mod validate;

pub use capability::DataCapability;
pub use error::DataError;
pub use io::{TableFormat, read_table, write_table};
pub use pipeline::{FittedPipeline, TaskType};
