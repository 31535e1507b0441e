//! The GitHub webhook endpoint: `POST /webhooks/github`.
//!
//! Each delivery is checked in this order: body size (413 past the limit), `X-Hub-Signature-256`
//! (HMAC-SHA256 of the raw body with the shared secret, compared in constant time; 401 when missing
//! or wrong), the `X-GitHub-Event`/`X-GitHub-Delivery` headers (400 when missing), a delivery id
//! seen before (200 `duplicate`, nothing queued), the JSON body (400 when not JSON). Then:
//! - `ping` → 200 `pong`;
//! - `issues` `opened` with the `mlops:train` label, or `labeled` with it → a
//!   [`WebhookEvent::TrainingRequested`];
//! - `issue_comment` `created` whose first word is `/approve`, `/reject` or `/retry`, by a user whose
//!   `author_association` is OWNER, MEMBER or COLLABORATOR → a [`WebhookEvent::Command`];
//! - anything else → 200 `ignored` with the reason.
//!
//! Events are queued on a bounded channel (202 `queued`) and processed elsewhere; a full queue
//! answers 503 so GitHub's redelivery can try again later (the delivery id is then not remembered).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::error::RepoError;

/// The path the router serves.
pub const WEBHOOK_PATH: &str = "/webhooks/github";

/// Who may steer a run with `/approve`, `/reject` or `/retry`.
const TRUSTED: [&str; 3] = ["OWNER", "MEMBER", "COLLABORATOR"];

/// Webhook settings.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The shared secret configured on GitHub (`GITHUB_WEBHOOK_SECRET`).
    pub secret: String,
    /// Largest body accepted (default 1 MiB; GitHub caps payloads at 25 MB, issue events are small).
    pub max_body_bytes: usize,
    /// How many delivery ids are remembered to drop redeliveries (default 10,000).
    pub dedup_capacity: usize,
    /// The label that starts a training run (default `mlops:train`).
    pub train_label: String,
}

impl WebhookConfig {
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            max_body_bytes: 1024 * 1024,
            dedup_capacity: 10_000,
            train_label: "mlops:train".into(),
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &"***")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("dedup_capacity", &self.dedup_capacity)
            .field("train_label", &self.train_label)
            .finish()
    }
}

/// An operator's command in an issue comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalCommand {
    Approve,
    Reject,
    Retry,
}

impl ApprovalCommand {
    /// The command when `/approve`, `/reject` or `/retry` is the first word of `text`.
    pub fn from_comment(text: &str) -> Option<Self> {
        let first = text.split_whitespace().next()?.to_ascii_lowercase();
        match first.as_str() {
            "/approve" => Some(Self::Approve),
            "/reject" => Some(Self::Reject),
            "/retry" => Some(Self::Retry),
            _ => None,
        }
    }
}

/// The issue a training request came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookIssue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What a delivery asks the workflow engine to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// An issue was opened with, or given, the training label: parse it and start a run.
    TrainingRequested {
        delivery_id: String,
        /// `owner/name`.
        repository: Option<String>,
        /// `opened` or `labeled`.
        action: String,
        issue: WebhookIssue,
        sender: Option<String>,
    },
    /// A trusted user commented `/approve`, `/reject` or `/retry` on an issue.
    Command {
        delivery_id: String,
        repository: Option<String>,
        issue_number: u64,
        command: ApprovalCommand,
        /// The rest of the comment after the command word (a reason, say).
        arguments: String,
        user: String,
        author_association: String,
        comment_id: u64,
    },
}

/// The delivery ids seen lately (bounded: the oldest are forgotten first).
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Seen {
    /// Remembers `id`; false when it was already there.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    fn forget(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|x| x != id);
        }
    }
}

struct Inner {
    secret: Vec<u8>,
    train_label: String,
    max_body: usize,
    tx: mpsc::Sender<WebhookEvent>,
    seen: Mutex<Seen>,
}

/// Shared state of the webhook endpoint.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

impl WebhookState {
    /// The endpoint's state; events go to `tx` (create it with `tokio::sync::mpsc::channel(N)`:
    /// N bounds the queue). An empty secret is refused: an unsigned webhook would let anyone start
    /// training runs.
    pub fn new(config: WebhookConfig, tx: mpsc::Sender<WebhookEvent>) -> Result<Self, RepoError> {
        if config.secret.trim().is_empty() {
            return Err(RepoError::invalid(
                "the webhook needs a secret: set GITHUB_WEBHOOK_SECRET to the secret configured on GitHub",
            ));
        }
        mlops_core::logging::register_secret(&config.secret);
        Ok(Self {
            inner: Arc::new(Inner {
                secret: config.secret.into_bytes(),
                train_label: config.train_label,
                max_body: config.max_body_bytes,
                tx,
                seen: Mutex::new(Seen {
                    set: HashSet::new(),
                    order: VecDeque::new(),
                    capacity: config.dedup_capacity.max(1),
                }),
            }),
        })
    }

    /// The state and the receiving end of a new queue of `capacity` events.
    pub fn with_channel(
        config: WebhookConfig,
        capacity: usize,
    ) -> Result<(Self, mpsc::Receiver<WebhookEvent>), RepoError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Ok((Self::new(config, tx)?, rx))
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The router serving `POST /webhooks/github`; merge or nest it into the server's router.
pub fn webhook_router(state: WebhookState) -> Router {
    let limit = state.inner.max_body;
    Router::new()
        .route(WEBHOOK_PATH, post(handle))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`; constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    given.len() == expected.len() && bool::from(expected[..].ct_eq(&given))
}

/// `sha256=<hex>` for `body` under `secret` (what GitHub sends; useful to tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    reply(status, json!({"error": message}))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn handle(State(state): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(signature) = header(&headers, "x-hub-signature-256") else {
        tracing::warn!("webhook delivery without X-Hub-Signature-256 rejected");
        return error(StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256");
    };
    if !verify_signature(&state.inner.secret, &body, signature) {
        tracing::warn!("webhook delivery with a wrong signature rejected");
        return error(StatusCode::UNAUTHORIZED, "invalid signature");
    }
    let Some(event) = header(&headers, "x-github-event") else {
        return error(StatusCode::BAD_REQUEST, "missing X-GitHub-Event");
    };
    let Some(delivery) = header(&headers, "x-github-delivery").filter(|d| d.len() <= 128) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing or too long X-GitHub-Delivery",
        );
    };
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(StatusCode::BAD_REQUEST, "the body is not a JSON object"),
    };
    if !state.seen().insert(delivery) {
        tracing::info!(delivery, event, "duplicate webhook delivery ignored");
        return reply(
            StatusCode::OK,
            json!({"status": "duplicate", "delivery": delivery}),
        );
    }
    let decided = match event {
        "ping" => {
            return reply(StatusCode::OK, json!({"status": "pong"}));
        }
        "issues" => issue_event(&state, delivery, &payload),
        "issue_comment" => comment_event(delivery, &payload),
        other => Err(format!("event `{other}` is not used")),
    };
    let ev = match decided {
        Ok(ev) => ev,
        Err(reason) => {
            tracing::debug!(delivery, event, reason, "webhook delivery ignored");
            return reply(
                StatusCode::OK,
                json!({"status": "ignored", "reason": reason}),
            );
        }
    };
    match state.inner.tx.try_send(ev) {
        Ok(()) => {
            tracing::info!(delivery, event, "webhook event queued");
            reply(
                StatusCode::ACCEPTED,
                json!({"status": "queued", "delivery": delivery}),
            )
        }
        Err(e) => {
            // Not remembered, so GitHub's redelivery is accepted once there is room.
            state.seen().forget(delivery);
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the event queue is full; redeliver later",
                mpsc::error::TrySendError::Closed(_) => "the workflow engine is not running",
            };
            tracing::warn!(delivery, event, why, "webhook event not queued");
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, why);
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("30"),
            );
            r
        }
    }
}

fn repository(payload: &Value) -> Option<String> {
    payload["repository"]["full_name"]
        .as_str()
        .map(str::to_string)
}

fn labels_of(issue: &Value) -> Vec<String> {
    issue["labels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["name"].as_str().or_else(|| l.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn issue_event(state: &WebhookState, delivery: &str, p: &Value) -> Result<WebhookEvent, String> {
    let action = p["action"].as_str().unwrap_or_default();
    let issue = &p["issue"];
    let number = issue["number"]
        .as_u64()
        .ok_or_else(|| "no issue number in the payload".to_string())?;
    if issue.get("pull_request").is_some_and(|v| !v.is_null()) {
        return Err("pull requests are not training requests".into());
    }
    let train = &state.inner.train_label;
    let labels = labels_of(issue);
    let wanted = match action {
        "opened" => labels.iter().any(|l| l.eq_ignore_ascii_case(train)),
        "labeled" => p["label"]["name"]
            .as_str()
            .is_some_and(|l| l.eq_ignore_ascii_case(train)),
        _ => false,
    };
    if !wanted {
        return Err(format!(
            "issues `{action}` without the `{train}` label does not start a run"
        ));
    }
    if issue["state"].as_str() == Some("closed") {
        return Err("the issue is closed".into());
    }
    Ok(WebhookEvent::TrainingRequested {
        delivery_id: delivery.to_string(),
        repository: repository(p),
        action: action.to_string(),
        issue: WebhookIssue {
            number,
            title: issue["title"].as_str().unwrap_or_default().to_string(),
            body: issue["body"].as_str().unwrap_or_default().to_string(),
            labels,
            author: issue["user"]["login"].as_str().map(str::to_string),
            url: issue["html_url"].as_str().map(str::to_string),
        },
        sender: p["sender"]["login"].as_str().map(str::to_string),
    })
}

fn comment_event(delivery: &str, p: &Value) -> Result<WebhookEvent, String> {
    if p["action"].as_str() != Some("created") {
        return Err("only new comments carry commands".into());
    }
    let issue = &p["issue"];
    if issue.get("pull_request").is_some_and(|v| !v.is_null()) {
        return Err("comments on pull requests are not used".into());
    }
    let number = issue["number"]
        .as_u64()
        .ok_or_else(|| "no issue number in the payload".to_string())?;
    let comment = &p["comment"];
    let text = comment["body"].as_str().unwrap_or_default();
    let Some(command) = ApprovalCommand::from_comment(text) else {
        return Err("the comment is not a /approve, /reject or /retry command".into());
    };
    let association = comment["author_association"]
        .as_str()
        .unwrap_or("NONE")
        .to_ascii_uppercase();
    let user = comment["user"]["login"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !TRUSTED.contains(&association.as_str()) {
        return Err(format!(
            "`{user}` ({association}) may not approve or reject runs; only owners, members and collaborators may"
        ));
    }
    if comment["user"]["type"].as_str() == Some("Bot") {
        return Err("commands from bots are not accepted".into());
    }
    let arguments = text
        .trim_start()
        .split_once(char::is_whitespace)
        .map(|(_, rest)| rest.trim().to_string())
        .unwrap_or_default();
    Ok(WebhookEvent::Command {
        delivery_id: delivery.to_string(),
        repository: repository(p),
        issue_number: number,
        command,
        arguments,
        user,
        author_association: association,
        comment_id: comment["id"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" page.
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, body), header);
        assert!(verify_signature(secret, body, header));
        assert!(!verify_signature(secret, b"Hello, World?", header));
        assert!(!verify_signature(b"other", body, header));
        assert!(!verify_signature(secret, body, "sha1=757107ea"));
        assert!(!verify_signature(secret, body, "sha256=zz"));
        assert!(!verify_signature(secret, body, "sha256=757107ea"));
    }

    #[test]
    fn commands_are_the_first_word() {
        assert_eq!(
            ApprovalCommand::from_comment("/approve"),
            Some(ApprovalCommand::Approve)
        );
        assert_eq!(
            ApprovalCommand::from_comment("  /Reject not good enough"),
            Some(ApprovalCommand::Reject)
        );
        assert_eq!(
            ApprovalCommand::from_comment("/retry\nplease"),
            Some(ApprovalCommand::Retry)
        );
        assert_eq!(ApprovalCommand::from_comment("please /approve"), None);
        assert_eq!(ApprovalCommand::from_comment("/approved"), None);
        assert_eq!(ApprovalCommand::from_comment(""), None);
    }

    #[test]
    fn the_seen_set_is_bounded() {
        let mut s = Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: 2,
        };
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        assert!(s.insert("b"));
        assert!(s.insert("c"));
        assert!(
            s.insert("a"),
            "the oldest id is forgotten past the capacity"
        );
        s.forget("c");
        assert!(s.insert("c"));
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let (tx, _rx) = mpsc::channel(1);
        assert!(WebhookState::new(WebhookConfig::new("  "), tx).is_err());
    }
}
