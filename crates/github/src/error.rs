//! Errors of repository operations, converted to [`ToolError`] at the tool edge.

use mlops_core::ToolError;

/// A failed repository operation. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The caller's input is wrong (a bad path, an empty title...).
    #[error("{0}")]
    Invalid(String),
    /// The issue, file, label or branch does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The file changed under us, or was expected to be new and already exists.
    #[error("{0}")]
    Conflict(String),
    /// GitHub refused the token or its permissions.
    #[error("{0}")]
    Auth(String),
    /// GitHub or git failed for a reason that is not the caller's input.
    #[error("{0}")]
    Backend(String),
    /// Reading or writing the local repository failed.
    #[error("{0}")]
    Io(String),
}

impl RepoError {
    pub fn invalid(m: impl Into<String>) -> Self {
        RepoError::Invalid(m.into())
    }
}

impl From<RepoError> for ToolError {
    fn from(e: RepoError) -> Self {
        let text = mlops_core::logging::mask_str(&e.to_string());
        match e {
            RepoError::Invalid(_) | RepoError::NotFound(_) | RepoError::Conflict(_) => {
                ToolError::Validation(text)
            }
            RepoError::Auth(_) => ToolError::Secrets(text),
            RepoError::Backend(_) => ToolError::Execution(text),
            RepoError::Io(_) => ToolError::Storage(text),
        }
    }
}
