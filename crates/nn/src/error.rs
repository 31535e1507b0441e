//! Errors of the neural-network and reinforcement-learning trainers.

/// A training or inference failure.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The caller's input or settings are wrong; the message says how to fix them.
    #[error("{0}")]
    Invalid(String),
    /// The computation itself failed.
    #[error("{0}")]
    Failed(String),
    /// Training stopped because it was cancelled.
    #[error("training was cancelled")]
    Cancelled,
}

impl NnError {
    pub fn invalid(message: impl Into<String>) -> Self {
        NnError::Invalid(message.into())
    }
}

impl From<candle_core::Error> for NnError {
    fn from(e: candle_core::Error) -> Self {
        NnError::Failed(format!("tensor computation failed: {e}"))
    }
}
