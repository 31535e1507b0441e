//! mlops-aws: the server's AWS integrations, on a small signed client of its own.
//!
//! [`client`] signs and sends AWS JSON 1.1 and query-protocol calls (SigV4 through `aws-sigv4`,
//! credentials from `object_store`'s AWS chain, retries with backoff). On it: [`secrets`] (Secrets
//! Manager as a [`mlops_core::secrets::SecretProvider`]), [`logs`] (shipping the JSON log lines to
//! CloudWatch Logs) and [`metrics`] (tool calls, errors and latency to CloudWatch metrics).

mod client;
mod logs;
mod metrics;
mod secrets;

#[cfg(test)]
mod mock;

pub use client::{AWS_RETRY, AwsClient, AwsConfig, AwsError, QueryClient, RetryPolicy, Service};
pub use logs::{LogShipper, LogShipperOptions};
pub use metrics::{Datum, MetricsPublisher, PublisherHandle, tool_data};
pub use secrets::SecretsManager;
