//! What can go wrong in the model library: bad settings or data, a failed fit, an artifact that
//! does not decode.

use mlops_core::{StoreError, ToolError};
use mlops_data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Settings or data a person can correct.
    #[error("{0}")]
    Invalid(String),
    #[error("training failed: {0}")]
    Failed(String),
}

impl MlError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        MlError::Invalid(msg.into())
    }
}

impl From<polars::error::PolarsError> for MlError {
    fn from(e: polars::error::PolarsError) -> Self {
        MlError::Data(DataError::from(e))
    }
}

impl From<mlops_nn::NnError> for MlError {
    fn from(e: mlops_nn::NnError) -> Self {
        match e {
            mlops_nn::NnError::Invalid(m) => MlError::Invalid(m),
            e => MlError::Failed(e.to_string()),
        }
    }
}

impl From<MlError> for ToolError {
    fn from(e: MlError) -> Self {
        match e {
            MlError::Data(d) => d.into(),
            MlError::Store(s) => s.into(),
            MlError::Invalid(m) => ToolError::Validation(m),
            e @ MlError::Failed(_) => ToolError::Execution(e.to_string()),
        }
    }
}
