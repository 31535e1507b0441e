//! mlops-workflow: the issue-driven training workflow (SPEC §3) as a durable state machine.
//!
//! The machine is data (`definition`), with one step function per state (`steps`); the
//! [`WorkflowEngine`] interprets it over executions persisted in the database
//! ([`WorkflowStore`]), calling the server's tools for every Task state. Executions are claimed
//! with leases, so a restarted server resumes its work and several servers on one PostgreSQL never
//! run the same step at once. Requests are read with `mlops-request`, the issue format's library
//! crate.

mod capability;
mod context;
mod definition;
mod engine;
mod error;
mod history;
mod steps;
mod store;

pub use capability::WorkflowCapability;
pub use definition::to_asl;
pub use engine::{EngineConfig, WorkerHandle, WorkflowEngine};
pub use error::WorkflowError;
pub use store::{Decision, Execution, Status, Step, WorkflowStore};
