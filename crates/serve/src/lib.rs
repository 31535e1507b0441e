//! mlops-serve: Capability 7, Serving. The Production version of a registered model (or the one
//! an alias or version names) answers predictions: through the `predict` tool, as batch jobs over
//! tables larger than memory, and over HTTP with the Open Inference Protocol v2 and MLflow's
//! scoring format. What answers follows the registry: a promotion, rollback or alias move is
//! answered within about a second, on every server sharing the database, with no restart.
//! Registry lookups go through the registry's own tool, so this crate stands on the model library
//! alone.

mod batch;
mod cache;
mod capability;
mod endpoint;
mod http;
mod loaded;
mod log;
mod metrics;
mod predict;
mod resolve;
mod table;

pub use cache::DEFAULT_CACHE_MB;
pub use capability::ServingCapability;
pub use endpoint::Endpoint;
pub use http::inference_routes;
pub use loaded::{InputColumn, LoadedModel, Origin, Scored, Served};
pub use log::{LogSetting, PredictionLog};
pub use metrics::ServingMetrics;
pub use resolve::Selector;
