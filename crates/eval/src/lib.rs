//! mlops-eval: Capability 3, ML Evaluation.
//!
//! Loads a model (checksums verified), applies the model's own preprocessing pipeline to the
//! evaluation data, predicts, and computes metrics ([`metrics`]).

pub mod capability;
pub mod metrics;
pub mod plots;
pub mod reinforcement;
pub mod report;

pub use capability::EvaluationCapability;
