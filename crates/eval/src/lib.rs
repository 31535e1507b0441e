//! mlops-eval: Capability 3, ML Evaluation.
//!
//! Loads a model (checksums verified), applies the model's own preprocessing pipeline to the
//! evaluation data, predicts, and computes metrics ([`metrics`]).

mod capability;
mod metrics;
mod plots;
mod reinforcement;
mod report;

pub use capability::EvaluationCapability;
pub use metrics::{
    ClassMetrics, ClassificationReport, RegressionReport, classification_report, regression_report,
};
