//! The kinds of failure a tool call can report. Each capability converts its own errors into one of
//! these at the edge; the server turns them into MCP tool errors whose message says what to fix.

/// A failed tool call, by kind. The message is shown to the user (or model) as-is, so it must be
/// actionable and must never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name is registered.
    #[error("unknown tool `{name}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    NotFound {
        name: String,
        suggestion: Option<String>,
    },
    /// The arguments are wrong: a missing field, an unknown column, a value out of range.
    #[error("invalid input: {0}")]
    Validation(String),
    /// The artifact store (local folder or S3) could not read or write.
    #[error("storage error: {0}")]
    Storage(String),
    /// A secret is missing or could not be read.
    #[error("secret error: {0}")]
    Secrets(String),
    /// The tool ran and failed for a reason that is not the caller's input.
    #[error("{0}")]
    Execution(String),
    /// The caller cancelled the call (or a job was cancelled).
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl ToolError {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::NotFound { .. } => "tool_not_found",
            ToolError::Validation(_) => "validation",
            ToolError::Storage(_) => "storage",
            ToolError::Secrets(_) => "secrets",
            ToolError::Execution(_) => "execution",
            ToolError::Cancelled(_) => "cancelled",
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        ToolError::Validation(message.into())
    }
}

impl From<crate::store::StoreError> for ToolError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::InvalidUri { .. }
            | E::OutsideRoot { .. }
            | E::NotFound { .. }
            | E::TooLarge { .. } => ToolError::Validation(e.to_string()),
            E::Backend { .. } | E::Io(_) => ToolError::Storage(e.to_string()),
            E::Checksum { .. } | E::Corrupt { .. } => ToolError::Execution(e.to_string()),
        }
    }
}

/// An error and its sources on one line: HTTP clients (reqwest) put the cause, such as
/// "connection refused", only in the sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
