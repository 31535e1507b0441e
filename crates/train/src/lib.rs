//! mlops-train: Capability 2, ML Training. Training runs as a named job with progress, metrics
//! history and cancellation; the result is a checksummed [`mlops_core::ModelArtifact`] that carries
//! the fitted preprocessing pipeline. The learners are `mlops-ml`'s; this crate runs them as jobs,
//! in this process or, through a [`Backend`], on Ray or SageMaker, where this project's binary runs
//! the job's spec as a `train-worker` ([`run_worker`]). Hyperparameter tuning
//! ([`TuningCapability`]) runs studies of cross-validated trials of the same learners.

mod backend;
mod capability;
mod card;
mod error;
mod prepare;
mod reference;
mod results;
mod runner;
mod spec;
mod tune;
mod worker;

pub use backend::Backend;
pub use capability::{JobReport, TrainingCapability};
pub use error::TrainError;
pub use mlops_jobs::{JobManager, JobSnapshot, JobStatus, JobTable};
pub use tune::{DEFAULT_LEASE as DEFAULT_TUNING_LEASE, ResumerHandle, TuningCapability};
pub use worker::run_spec as run_worker;
