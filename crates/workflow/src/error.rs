//! Workflow errors.

use mlops_core::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The caller's input is wrong (an unknown execution, a used token).
    #[error("{0}")]
    Invalid(String),
    /// A step failed (a tool error, a timeout).
    #[error("{0}")]
    Step(String),
    #[error("workflow database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for WorkflowError {
    fn from(e: sqlx::Error) -> Self {
        WorkflowError::Database(e.to_string())
    }
}

impl From<WorkflowError> for ToolError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::Invalid(m) => ToolError::Validation(m),
            e => ToolError::Execution(e.to_string()),
        }
    }
}
