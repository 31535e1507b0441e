//! mlops-monitor: Capability 8, Monitoring. A model's inputs and outputs now are compared with
//! the reference profile saved from its training rows (or with a reference table): per feature
//! PSI, Kolmogorov–Smirnov, chi-square and Jensen–Shannon, a verdict from documented thresholds,
//! and, when the data carries labels, the model's score on it against its score at training.
//! Current data is a table or the serving prediction log over a time window. Every check is saved
//! as a Markdown and HTML report and recorded in the database. The statistics are
//! `mlops_data::drift`'s; registered models are found through the registry's own tool.

mod capability;
mod checks;
mod detect;
mod report;
mod sources;

pub use capability::MonitoringCapability;
pub use detect::{DetectDriftInput, DriftResult};
