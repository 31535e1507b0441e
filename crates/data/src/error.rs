//! Data preparation errors, each with a message that says what to change.

use mlops_core::{StoreError, ToolError};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot parse `{uri}` as {format}: {reason}")]
    Malformed {
        uri: String,
        format: &'static str,
        reason: String,
    },
    #[error("column `{column}` not found; available columns: {available}")]
    UnknownColumn { column: String, available: String },
    #[error("data processing failed: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

impl DataError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        DataError::Invalid(msg.into())
    }

    /// The error for a column that is not in `columns`.
    pub fn unknown_column<'a>(column: &str, columns: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<&str> = columns.into_iter().collect();
        let total = names.len();
        names.truncate(30);
        let mut available = names.join(", ");
        if total > 30 {
            available.push_str(&format!(", ... ({total} in all)"));
        }
        DataError::UnknownColumn {
            column: column.into(),
            available,
        }
    }
}

impl From<DataError> for ToolError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Store(s) => s.into(),
            DataError::Polars(p) => ToolError::Execution(format!("data processing failed: {p}")),
            other => ToolError::Validation(other.to_string()),
        }
    }
}
