//! mlops-mcp: the server binary's library. It wires the capabilities into one [`ToolRouter`]
//! ([`App`]), serves it over MCP ([`McpServer`] on stdio, [`serve_http`] over HTTP), and drives it
//! as a client for the demo ([`run_demo`]) and for `run-issue` ([`run_issue`]).
//!
//! [`ToolRouter`]: mlops_core::ToolRouter

mod app;
mod bound;
mod demo;
mod drift_demo;
mod http;
mod limits;
mod mcp;
mod run_issue;
mod surface;
mod train_worker;
mod webhook_events;

pub use app::App;
pub use demo::{DemoOptions, run as run_demo};
pub use drift_demo::{DriftDemoOptions, run as run_drift_demo};
pub use http::{HttpOptions, parse_listen_addr, serve as serve_http, shutdown_signal};
pub use mcp::McpServer;
pub use run_issue::run as run_issue;
pub use train_worker::run as run_train_worker;
