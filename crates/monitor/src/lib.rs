//! mlops-monitor: Capability 8, Monitoring. A model's inputs and outputs now are compared with
//! the reference profile saved from its training rows (or with a reference table): per feature
//! PSI, Kolmogorov–Smirnov, chi-square and Jensen–Shannon, a verdict from documented thresholds,
//! and, when the data carries labels, the model's score on it against its score at training.
//! Current data is a table or the serving prediction log over a time window. Every check is saved
//! as a Markdown and HTML report and recorded in the database. Monitors run checks on a schedule
//! (leased in the database, so each tick runs once across servers) and act on drift: a
//! notification, a retraining issue the workflow runs, the workflow itself. The statistics are
//! `mlops_data::drift`'s; registered models are found through the registry's own tool.

mod capability;
mod checks;
mod detect;
mod monitors;
mod report;
mod runner;
mod schedule;
mod sources;

pub use capability::{DEFAULT_LEASE, MonitoringCapability};
pub use checks::Gauge;
pub use detect::{DetectDriftInput, DriftResult};
pub use runner::SchedulerHandle;
