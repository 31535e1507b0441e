//! The Notification tools.

use std::sync::Arc;
use std::time::Duration;

use mlops_core::{Annotations, Capability, ToolDef, ToolError, ToolResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channel::Message;
use crate::channel::web::{discord_payload, github_comment, slack_payload, teams_payload};
use crate::notifier::{NotificationRequest, Notifier};
use crate::outbox::{DeliveryRecord, DeliveryState};
use crate::template::{Rendered, TemplateInfo, text_body};
use crate::{CHANNELS, NotifyError};

/// Longest wait `send_notification` accepts.
const MAX_WAIT_SECONDS: f64 = 60.0;
const MAX_LIST: i64 = 200;

/// Capability 6: Notification.
pub struct NotifyCapability {
    notifier: Arc<Notifier>,
}

impl NotifyCapability {
    pub fn new(notifier: Arc<Notifier>) -> Arc<Self> {
        Arc::new(Self { notifier })
    }

    /// A capability on a notifier built from the environment (channels), `home` and `database_url`.
    pub async fn from_config(
        home: impl Into<std::path::PathBuf>,
        database_url: &str,
    ) -> Result<Arc<Self>, NotifyError> {
        Ok(Self::new(Notifier::from_config(home, database_url).await?))
    }

    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }
}

const SENDS: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};

impl Capability for NotifyCapability {
    fn name(&self) -> &'static str {
        "notification"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let n = &self.notifier;
        vec![
            ToolDef::with(
                n.clone(),
                "send_notification",
                "Send a notification",
                "Notify people about a training run or a drift alert: through `channels` (github issue comment, slack, email, teams, discord, outbox_file; default: every configured one, or the local outbox file). Use a `template` (success, failure, retry_approval, error, drift, or a user template; see list_notification_templates) with `context` values, or a raw `title` and `message` (Markdown). `context.metrics` (name → value) and `context.links` (label → URL) become a metrics table and links. Delivery is durable and retried; waits up to `wait_seconds` and reports each channel as delivered, failed (with the reason) or pending.",
                SENDS,
                |notifier, i: SendInput, _ctx| async move { send(&notifier, i).await },
            ),
            ToolDef::with(
                n.clone(),
                "list_notifications",
                "List notifications",
                "Recent notification deliveries (one per channel), newest first, with state (pending, sending, delivered, failed), attempts and the last error. Filter by `state`, e.g. failed to see what did not go out, or by `notification_id`.",
                Annotations::READ_ONLY,
                |notifier, i: ListInput, _ctx| async move {
                    if !(1..=MAX_LIST).contains(&i.limit) {
                        return Err(ToolError::validation(format!(
                            "limit must be between 1 and {MAX_LIST}, got {}",
                            i.limit
                        )));
                    }
                    let deliveries = match &i.notification_id {
                        Some(id) => {
                            let mut d = notifier.deliveries(id).await?;
                            if let Some(s) = i.state {
                                d.retain(|r| r.state == s);
                            }
                            d
                        }
                        None => notifier.list(i.state, i.limit).await?,
                    };
                    Ok::<_, ToolError>(DeliveryList { deliveries })
                },
            ),
            ToolDef::with(
                n.clone(),
                "list_notification_templates",
                "List notification templates",
                "The notification templates (built-in and from the template folder, which overrides built-ins by name) with the context variables each reads, plus the configured and default channels. Use before send_notification to see what a template needs.",
                Annotations::READ_ONLY,
                |notifier, _i: NoInput, _ctx| async move {
                    let templates = notifier.templates()?.list();
                    Ok::<_, ToolError>(TemplateList {
                        templates,
                        template_dir: notifier.config().template_dir.display().to_string(),
                        available_channels: notifier
                            .available_channels()
                            .into_iter()
                            .map(String::from)
                            .collect(),
                        default_channels: notifier
                            .default_channels(false)
                            .into_iter()
                            .map(String::from)
                            .collect(),
                    })
                },
            ),
            ToolDef::with(
                n.clone(),
                "render_notification_template",
                "Preview a notification",
                "Render a template (or a raw title and message) with `context` without sending anything: returns the title, the Markdown text and HTML, and, when `channel` is given, the exact payload that channel would receive. Use it to check a template or its context before send_notification.",
                Annotations::READ_ONLY,
                |notifier, i: RenderInput, _ctx| async move {
                    let req = NotificationRequest {
                        template: i.template,
                        title: i.title,
                        message: i.message,
                        context: i.context,
                        ..Default::default()
                    };
                    let rendered = notifier.render(&req)?;
                    let payload = match i.channel.as_deref() {
                        None => None,
                        Some(c) => Some(preview(c, &rendered)?),
                    };
                    Ok::<_, ToolError>(RenderOutput { rendered, payload })
                },
            ),
        ]
    }
}

async fn send(notifier: &Notifier, i: SendInput) -> Result<SendOutput, ToolError> {
    if !(0.0..=MAX_WAIT_SECONDS).contains(&i.wait_seconds) {
        return Err(ToolError::validation(format!(
            "wait_seconds must be between 0 and {MAX_WAIT_SECONDS}, got {}",
            i.wait_seconds
        )));
    }
    let receipt = notifier
        .send(NotificationRequest {
            channels: i.channels,
            template: i.template,
            title: i.title,
            message: i.message,
            context: i.context,
            issue_number: i.issue_number,
            email_to: i.email_to,
        })
        .await?;
    let deliveries = notifier
        .wait(
            &receipt.notification_id,
            Duration::from_secs_f64(i.wait_seconds),
        )
        .await?;
    Ok(SendOutput {
        notification_id: receipt.notification_id,
        template: receipt.rendered.template,
        title: receipt.rendered.title,
        channels: deliveries.into_iter().map(ChannelStatus::from).collect(),
    })
}

fn preview(channel: &str, r: &Rendered) -> Result<Value, ToolError> {
    let message = Message {
        notification_id: "preview".into(),
        rendered: r.clone(),
        issue_number: None,
        email_to: Vec::new(),
    };
    Ok(match channel {
        "github" => serde_json::json!({ "body": github_comment(&message.rendered) }),
        "slack" => slack_payload(r),
        "teams" => teams_payload(r),
        "discord" => discord_payload(r),
        "email" => serde_json::json!({ "subject": r.title, "text": text_body(r), "html": r.html }),
        "outbox_file" => serde_json::to_value(&message).unwrap_or(Value::Null),
        other => {
            return Err(ToolError::validation(format!(
                "unknown channel `{other}`; channels are: {}",
                CHANNELS.join(", ")
            )));
        }
    })
}

fn default_wait() -> f64 {
    5.0
}
fn default_limit() -> i64 {
    20
}

/// Input of `send_notification`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendInput {
    /// Channels to use: github, slack, email, teams, discord, outbox_file. Leave out for the
    /// configured ones (the outbox file when none is configured).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Template name: success, failure, retry_approval, error, drift, or a user template.
    pub template: Option<String>,
    /// Raw title (with `message`, instead of a template).
    pub title: Option<String>,
    /// Raw Markdown message (instead of a template).
    pub message: Option<String>,
    /// Template values, e.g. {"model_name": "churn", "metrics": {"accuracy": 0.93}, "links": {"Run": "https://..."}}.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// GitHub issue to comment on (needed by the github channel; else taken from context.issue_number).
    pub issue_number: Option<u64>,
    /// Email recipients instead of the configured SMTP_TO.
    #[serde(default)]
    pub email_to: Vec<String>,
    /// Seconds to wait for delivery before answering (0–60); undelivered channels are reported as pending.
    #[serde(default = "default_wait")]
    pub wait_seconds: f64,
}

/// Input of `list_notifications`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only this notification's deliveries.
    pub notification_id: Option<String>,
    /// At most this many (1–200).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// No input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

/// Input of `render_notification_template`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderInput {
    /// Template name: success, failure, retry_approval, error, drift, or a user template.
    pub template: Option<String>,
    /// Raw title (with `message`, instead of a template).
    pub title: Option<String>,
    /// Raw Markdown message (instead of a template).
    pub message: Option<String>,
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Also return the payload this channel would receive (github, slack, email, teams, discord, outbox_file).
    pub channel: Option<String>,
}

/// One channel's delivery state.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChannelStatus {
    pub channel: String,
    pub state: DeliveryState,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

impl From<DeliveryRecord> for ChannelStatus {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            channel: d.channel,
            state: d.state,
            attempts: d.attempts,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at,
        }
    }
}

/// Output of `send_notification`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SendOutput {
    pub notification_id: String,
    pub template: String,
    pub title: String,
    pub channels: Vec<ChannelStatus>,
}

impl ToolResponse for SendOutput {
    fn summary(&self) -> String {
        let parts: Vec<String> = self
            .channels
            .iter()
            .map(|c| match (&c.state, &c.last_error) {
                (DeliveryState::Failed, Some(e)) => format!("{}: failed ({e})", c.channel),
                (DeliveryState::Pending, Some(e)) => {
                    format!("{}: pending, will retry ({e})", c.channel)
                }
                (s, _) => format!("{}: {}", c.channel, s.as_str()),
            })
            .collect();
        format!(
            "Notification {} \"{}\": {}",
            self.notification_id,
            self.title,
            parts.join("; ")
        )
    }
}

/// Output of `list_notifications`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryRecord>,
}

impl ToolResponse for DeliveryList {
    fn summary(&self) -> String {
        if self.deliveries.is_empty() {
            return "No notifications.".into();
        }
        let lines: Vec<String> = self
            .deliveries
            .iter()
            .map(|d| {
                let err = d
                    .last_error
                    .as_ref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default();
                format!(
                    "{} {} \"{}\": {} after {} attempt(s){err}",
                    d.notification_id,
                    d.channel,
                    d.title,
                    d.state.as_str(),
                    d.attempts
                )
            })
            .collect();
        format!("{} deliveries:\n{}", lines.len(), lines.join("\n"))
    }
}

/// Output of `list_notification_templates`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateInfo>,
    /// Where user templates are read from (`<name>.j2`).
    pub template_dir: String,
    /// Channels this server can send to.
    pub available_channels: Vec<String>,
    /// Channels used when a request names none.
    pub default_channels: Vec<String>,
}

impl ToolResponse for TemplateList {
    fn summary(&self) -> String {
        let lines: Vec<String> = self
            .templates
            .iter()
            .map(|t| match &t.error {
                Some(e) => format!("- {} (broken: {e})", t.name),
                None => format!(
                    "- {} ({}): {}",
                    t.name,
                    if t.source == "builtin" {
                        "built-in"
                    } else {
                        "user"
                    },
                    t.description
                ),
            })
            .collect();
        format!(
            "{} templates:\n{}\nChannels: {} (default: {})",
            self.templates.len(),
            lines.join("\n"),
            self.available_channels.join(", "),
            self.default_channels.join(", ")
        )
    }
}

/// Output of `render_notification_template`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RenderOutput {
    pub rendered: Rendered,
    /// The payload the requested channel would receive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

impl ToolResponse for RenderOutput {
    fn summary(&self) -> String {
        format!("{}\n\n{}", self.rendered.title, self.rendered.body)
    }
}
