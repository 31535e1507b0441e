//! mlops-core: what every capability shares.
//!
//! Configuration, secrets (a provider chain with a TTL cache), the error kinds a tool can report,
//! JSON logging with secret masking, the artifact store (a local folder or S3, with client paths
//! confined to the artifact root), the checksummed model artifact format, and the
//! `Capability`/`ToolRouter` pair through which every tool is called (by MCP clients, the CLI and
//! the workflow alike).

pub mod artifact;
pub mod config;
pub mod error;
pub mod logging;
pub mod metric_names;
pub mod metrics;
pub mod retry;
pub mod secrets;
pub mod store;
pub mod tool;

pub use artifact::{BlobInfo, ModelArtifact, ModelManifest};
pub use config::Config;
pub use error::{ToolError, error_chain};
pub use retry::RetryPolicy;
pub use store::{ArtifactRef, ArtifactStore, StoreError};
pub use tool::{
    Annotations, Capability, PAGE_BYTES, ProgressFn, ToolContext, ToolDef, ToolImage, ToolOutput,
    ToolResponse, ToolRouter, ToolSpec, fit_page,
};
