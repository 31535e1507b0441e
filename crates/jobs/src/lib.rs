//! mlops-jobs: long work as a named job. A job has a status, progress, a metrics history and a
//! cancellation handle; it runs in its own task (so a caller that stops waiting cannot leave it
//! half-done), within a wall-clock limit, waited for or in the background, and its state is
//! recorded in the database so any server sharing it can report on it. Training jobs, batch
//! predictions and tuning trials all run through here.

mod job;
mod manager;
mod runner;

pub use job::{HISTORY_POINTS, Job, JobSnapshot, JobStatus};
pub use manager::{HEARTBEAT, JobManager, JobTable};
pub use runner::{JobError, JobFailure, JobOptions, JobOutput, run_blocking, start_job};
