//! mlops-eval: Capability 3, ML Evaluation.
//!
//! Loads a model (checksums verified), applies the model's own preprocessing pipeline to the
//! evaluation data, predicts, and computes metrics (`mlops_ml`'s, defined as scikit-learn defines them).

mod capability;
mod reinforcement;
mod report;

pub use capability::EvaluationCapability;
pub use mlops_ml::{
    ClassMetrics, ClassificationReport, RegressionReport, classification_report, regression_report,
};
