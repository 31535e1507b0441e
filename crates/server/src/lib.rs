//! mlops-mcp: the server binary's library. It wires the capabilities into one [`ToolRouter`]
//! ([`app`]), serves it over MCP ([`mcp`]), and drives it as a client for the demo ([`demo`]).
//!
//! [`ToolRouter`]: mlops_core::ToolRouter

pub mod app;
pub mod bound;
pub mod demo;
pub mod http;
pub mod limits;
pub mod mcp;
pub mod run_issue;
pub mod surface;
pub mod train_worker;
