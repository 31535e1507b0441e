//! mlops-notify: Capability 6, Notification.
//!
//! A notification is rendered from a template (minijinja; built-ins `success`, `failure`,
//! `retry_approval`, `error`, overridable by files in the template folder) and sent to channels
//! (GitHub issue comment, Slack, email, Microsoft Teams, Discord, or the local outbox file) behind
//! one [`Channel`] trait. Nothing is sent directly: every delivery (one per channel) is first written
//! to a durable outbox table, and a delivery worker claims rows with a lease, sends them, retries
//! with exponential backoff (honouring `Retry-After`), and marks each one delivered or failed. A
//! restarted server picks up whatever is still pending, so a channel that is down loses nothing.
//!
//! Secrets (webhook URLs, tokens, the SMTP password) are registered with
//! [`mlops_core::logging::register_secret`] and never written into a log line, an error or the
//! outbox's failure reasons.

mod capability;
mod channel;
mod config;
mod notifier;
mod outbox;
mod template;

pub use capability::NotifyCapability;
pub use channel::{Channel, ChannelError, Message};
pub use config::{
    DELIVERY_RETRY, EmailConfig, GithubConfig, NotifyConfig, RetryPolicy, Secret, SlackConfig,
};
pub use notifier::{NotificationReceipt, NotificationRequest, Notifier, WorkerHandle};
pub use outbox::{DeliveryRecord, DeliveryState, Outbox};
pub use template::{Level, Link, Metric, Rendered, TemplateInfo, Templates};

/// Errors of the notification capability. Messages are shown to users as-is and never contain a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Bad input: unknown channel, invalid address, missing issue number...
    #[error("{0}")]
    Invalid(String),
    /// A template could not be found, parsed or rendered.
    #[error("{0}")]
    Template(String),
    /// A channel or setting is missing or malformed.
    #[error("configuration error: {0}")]
    Config(String),
    /// No such notification.
    #[error("{0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("{0}")]
    Io(String),
}

impl From<mlops_db::DbError> for NotifyError {
    fn from(e: mlops_db::DbError) -> Self {
        NotifyError::Database(mlops_core::logging::mask_str(&e.to_string()))
    }
}

impl From<sqlx::Error> for NotifyError {
    fn from(e: sqlx::Error) -> Self {
        NotifyError::Database(mlops_core::logging::mask_str(&e.to_string()))
    }
}

impl From<NotifyError> for mlops_core::ToolError {
    fn from(e: NotifyError) -> Self {
        use mlops_core::ToolError;
        match e {
            NotifyError::Invalid(m) | NotifyError::Template(m) | NotifyError::NotFound(m) => {
                ToolError::Validation(m)
            }
            NotifyError::Config(_) => ToolError::Validation(e.to_string()),
            NotifyError::Database(m) => ToolError::Storage(format!("database: {m}")),
            NotifyError::Io(m) => ToolError::Storage(m),
        }
    }
}

/// Every channel name, in the order they are listed to users.
pub const CHANNELS: [&str; 6] = [
    "github",
    "slack",
    "email",
    "teams",
    "discord",
    "outbox_file",
];

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
