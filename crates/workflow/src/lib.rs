//! mlops-workflow: the issue-driven training workflow (SPEC §3) as a durable state machine.
//!
//! The machine is data ([`definition`]); the [`engine`] interprets it over executions persisted
//! in the database ([`store`]), calling the server's tools for every Task state. Executions are
//! claimed with leases, so a restarted server resumes its work and several servers on one
//! PostgreSQL never run the same step at once.

pub mod capability;
pub mod definition;
pub mod engine;
pub mod error;
pub mod history;
pub mod store;

pub use capability::WorkflowCapability;
pub use engine::{EngineConfig, Timing, WorkerHandle, WorkflowEngine};
pub use error::WorkflowError;
pub use store::WorkflowStore;
