//! Training errors: the model library's (bad settings or data, a failed fit, a store error) and
//! what only a job can meet (cancellation, its wall-clock limit, a remote backend).

use mlops_core::{StoreError, ToolError};
use mlops_data::DataError;
use mlops_jobs::{JobError, JobFailure};
use mlops_ml::MlError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Ml(#[from] MlError),
    #[error("training job `{0}` was cancelled")]
    Cancelled(String),
    #[error("training job `{name}` ran past its limit of {seconds} s and was stopped")]
    TimedOut { name: String, seconds: u64 },
    /// A remote backend (Ray, SageMaker) refused or lost the job, or its worker reported a failure.
    #[error("{0}")]
    Remote(String),
}

impl TrainError {
    /// Settings or data a person can correct.
    pub fn invalid(msg: impl Into<String>) -> Self {
        TrainError::Ml(MlError::Invalid(msg.into()))
    }

    /// The job broke for a reason of its own (a stopped thread, an unencodable result).
    pub fn failed(msg: impl Into<String>) -> Self {
        TrainError::Ml(MlError::Failed(msg.into()))
    }
}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> Self {
        TrainError::Ml(e.into())
    }
}

impl From<StoreError> for TrainError {
    fn from(e: StoreError) -> Self {
        TrainError::Ml(e.into())
    }
}

impl From<polars::error::PolarsError> for TrainError {
    fn from(e: polars::error::PolarsError) -> Self {
        TrainError::Ml(e.into())
    }
}

impl From<JobError> for TrainError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Refused(m) => TrainError::invalid(m),
            JobError::Cancelled(name) => TrainError::Cancelled(name),
            JobError::TimedOut { name, seconds } => TrainError::TimedOut { name, seconds },
            JobError::Failed(m) => TrainError::failed(m),
        }
    }
}

impl JobFailure for TrainError {
    fn is_cancellation(&self) -> bool {
        matches!(self, TrainError::Cancelled(_))
    }
}

impl From<TrainError> for ToolError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Ml(e) => e.into(),
            e @ TrainError::Cancelled(_) => ToolError::Cancelled(e.to_string()),
            e @ (TrainError::TimedOut { .. } | TrainError::Remote(_)) => {
                ToolError::Execution(e.to_string())
            }
        }
    }
}
