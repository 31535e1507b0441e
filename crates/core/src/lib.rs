//! mlops-core: what every capability shares.
//!
//! Configuration, secrets (a provider chain with a TTL cache), the error kinds a tool can report,
//! JSON logging with secret masking, the artifact store (a local folder or S3, with client paths
//! confined to the artifact root), the checksummed model artifact format, and the
//! `Capability`/`ToolRouter` pair through which every tool is called (by MCP clients, the CLI and
//! the workflow alike), and the one vocabulary of metric names. Three namespaces are public as
//! such: [`logging`] (JSON logs and the secret masker), [`secrets`] (the provider chain) and
//! [`metric_names`]; everything else is re-exported here.

mod artifact;
mod config;
mod error;
pub mod logging;
pub mod metric_names;
mod metrics;
mod registered;
mod retry;
pub mod secrets;
mod store;
mod tool;
mod words;

pub use artifact::{
    BlobInfo, FORMAT_VERSION, MAX_FOLDER_NAME, ModelArtifact, ModelManifest, check_folder_name,
    folder_of, sha256_hex,
};
pub use config::{Config, ConfigError, home_and_database_url, redact_url, setting};
pub use error::{ToolError, error_chain};
pub use metrics::{ToolMetrics, ToolWindow};
pub use registered::{RegisteredVersion, Selector, resolve_registered};
pub use retry::RetryPolicy;
pub use store::{ArtifactRef, ArtifactStore, StoreError};
pub use tool::{
    Annotations, Capability, PAGE_BYTES, ProgressFn, ToolContext, ToolDef, ToolImage, ToolOutput,
    ToolResponse, ToolRouter, ToolSpec, fit_page,
};
pub use words::{edit_distance, normalize as normalize_name};
