//! Channels: where a rendered notification goes. Each one implements [`Channel`]; the delivery
//! worker calls `send` and, from the error's kind, retries later or gives up.

pub mod email;
pub mod file;
pub mod web;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::template::Rendered;

/// What a channel sends: the rendered notification and where it is addressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    pub notification_id: String,
    pub rendered: Rendered,
    /// The GitHub issue to comment on (`github` channel).
    #[serde(default)]
    pub issue_number: Option<u64>,
    /// Recipients for the `email` channel; empty means the configured `SMTP_TO`.
    #[serde(default)]
    pub email_to: Vec<String>,
}

/// Why a send failed. Reasons are stored and shown: they never contain a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelError {
    /// Worth trying again later (network error, 5xx, 429 with its `Retry-After`).
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again the same way (bad address, revoked webhook, 4xx).
    #[error("{reason}")]
    Permanent { reason: String },
}

impl ChannelError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        ChannelError::Retryable {
            reason: mlops_core::logging::mask_str(&reason.into()),
            retry_after: None,
        }
    }
    pub fn permanent(reason: impl Into<String>) -> Self {
        ChannelError::Permanent {
            reason: mlops_core::logging::mask_str(&reason.into()),
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            ChannelError::Retryable { reason, .. } | ChannelError::Permanent { reason } => reason,
        }
    }
}

/// A delivery channel.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// The channel's name as users give it (`slack`, `email`, ...).
    fn name(&self) -> &'static str;
    /// Sends one message. Called again on a retryable error, so it should be safe to repeat.
    async fn send(&self, message: &Message) -> Result<(), ChannelError>;
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
