//! Training errors.

use mlops_core::{StoreError, ToolError};
use mlops_data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("training job `{0}` was cancelled")]
    Cancelled(String),
    #[error("training job `{name}` ran past its limit of {seconds} s and was stopped")]
    TimedOut { name: String, seconds: u64 },
    #[error("training failed: {0}")]
    Failed(String),
    /// A remote backend (Ray, SageMaker) refused or lost the job, or its worker reported a failure.
    #[error("{0}")]
    Remote(String),
}

impl TrainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        TrainError::Invalid(msg.into())
    }
}

impl From<polars::error::PolarsError> for TrainError {
    fn from(e: polars::error::PolarsError) -> Self {
        TrainError::Data(DataError::from(e))
    }
}

impl From<TrainError> for ToolError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Data(d) => d.into(),
            TrainError::Store(s) => s.into(),
            TrainError::Invalid(m) => ToolError::Validation(m),
            e @ TrainError::Cancelled(_) => ToolError::Cancelled(e.to_string()),
            e @ (TrainError::TimedOut { .. } | TrainError::Failed(_) | TrainError::Remote(_)) => {
                ToolError::Execution(e.to_string())
            }
        }
    }
}

impl From<mlops_nn::NnError> for TrainError {
    fn from(e: mlops_nn::NnError) -> Self {
        match e {
            mlops_nn::NnError::Invalid(m) => TrainError::Invalid(m),
            e => TrainError::Failed(e.to_string()),
        }
    }
}
