//! The HTTP channels: GitHub issue comments, Slack (incoming webhook or `chat.postMessage`),
//! Microsoft Teams (Adaptive Card) and Discord (embeds).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use super::{Channel, ChannelError, Message, truncate};
use crate::config::{GithubConfig, Secret, SlackConfig};
use crate::template::{Level, Rendered, to_mrkdwn};
use mlops_core::error_chain;

/// The channels' HTTP client (rustls, a timeout per attempt), built on first use: loading the
/// system's root certificates takes milliseconds that server start-up should not spend.
#[derive(Clone)]
pub struct HttpClient {
    timeout: Duration,
    cell: Arc<OnceLock<reqwest::Client>>,
}

impl HttpClient {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            cell: Arc::new(OnceLock::new()),
        }
    }

    pub fn get(&self) -> &reqwest::Client {
        self.cell.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("mlops-mcp/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        })
    }
}

/// Sends a request and sorts the outcome: 2xx is success (returns the body), 429/5xx/408 and
/// network errors are retryable (with `Retry-After`), other statuses are permanent. The URL is
/// never part of a reason (webhook URLs are secrets).
async fn send(channel: &str, request: RequestBuilder) -> Result<String, ChannelError> {
    let response = request.send().await.map_err(|e| {
        ChannelError::retryable(format!(
            "could not reach {channel}: {}",
            error_chain(&e.without_url())
        ))
    })?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let rate_limited = response
        .headers()
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    // GitHub: out of requests until `x-ratelimit-reset` (epoch seconds).
    let retry_after = retry_after.or_else(|| {
        let reset: i64 = response
            .headers()
            .get("x-ratelimit-reset")?
            .to_str()
            .ok()?
            .parse()
            .ok()?;
        rate_limited
            .then(|| Duration::from_secs((reset - chrono::Utc::now().timestamp()).max(1) as u64))
    });
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    let detail = truncate(body.trim(), 200);
    let reason = if detail.is_empty() {
        format!("{channel} answered HTTP {status}")
    } else {
        format!("{channel} answered HTTP {status}: {detail}")
    };
    let retry = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
        // GitHub's rate limits answer 403 with Retry-After or no remaining requests.
        || (status == StatusCode::FORBIDDEN && (retry_after.is_some() || rate_limited));
    if retry {
        // Discord puts the wait in the body as well (seconds, fractional).
        let retry_after = retry_after.or_else(|| {
            serde_json::from_str::<Value>(&body)
                .ok()?
                .get("retry_after")?
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
        });
        let mut e = ChannelError::retryable(reason);
        if let ChannelError::Retryable { retry_after: r, .. } = &mut e {
            *r = retry_after;
        }
        Err(e)
    } else {
        Err(ChannelError::permanent(reason))
    }
}

/// `Retry-After` in seconds (the HTTP-date form is treated as "soon").
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        _ => Some(Duration::from_secs(1)),
    }
}

/// GitHub: a comment on the issue, `POST {api}/repos/{owner}/{repo}/issues/{n}/comments`.
pub struct GithubChannel {
    client: HttpClient,
    config: GithubConfig,
}

impl GithubChannel {
    pub fn new(client: HttpClient, config: GithubConfig) -> Self {
        Self { client, config }
    }
}

/// The Markdown of an issue comment.
pub fn github_comment(r: &Rendered) -> String {
    format!("### {}\n\n{}", r.title, r.body)
}

#[async_trait::async_trait]
impl Channel for GithubChannel {
    fn name(&self) -> &'static str {
        "github"
    }
    async fn send(&self, m: &Message) -> Result<(), ChannelError> {
        let repo = self.config.repository.as_deref().ok_or_else(|| {
            ChannelError::permanent(
                "GITHUB_REPOSITORY is not set: cannot tell which repository to comment in",
            )
        })?;
        let issue = m.issue_number.ok_or_else(|| {
            ChannelError::permanent("no issue number: the github channel comments on an issue")
        })?;
        let url = format!(
            "{}/repos/{repo}/issues/{issue}/comments",
            self.config.api_url
        );
        let request = self
            .client
            .get()
            .post(url)
            .bearer_auth(self.config.token.expose())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .json(&json!({ "body": github_comment(&m.rendered) }));
        send("GitHub", request).await.map(drop)
    }
}

/// Slack: `chat.postMessage` with the bot token when configured, else the incoming webhook.
pub struct SlackChannel {
    client: HttpClient,
    config: SlackConfig,
}

impl SlackChannel {
    pub fn new(client: HttpClient, config: SlackConfig) -> Self {
        Self { client, config }
    }
}

/// Slack Block Kit blocks: a header, the summary, metrics as fields, links as buttons.
pub fn slack_blocks(r: &Rendered) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&r.title, 150), "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&to_mrkdwn(&r.summary), 3000)}}),
    ];
    if !r.metrics.is_empty() {
        // A section holds at most 10 fields.
        for chunk in r.metrics.chunks(10) {
            let fields: Vec<Value> = chunk
                .iter()
                .map(|m| json!({"type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", m.name, m.value), 2000)}))
                .collect();
            blocks.push(json!({"type": "section", "fields": fields}));
        }
    }
    if !r.links.is_empty() {
        let buttons: Vec<Value> = r
            .links
            .iter()
            .take(25)
            .map(|l| json!({"type": "button", "text": {"type": "plain_text", "text": truncate(&l.label, 75)}, "url": l.url}))
            .collect();
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    Value::Array(blocks)
}

/// Slack's JSON for a message (webhook body; `chat.postMessage` adds `channel`).
pub fn slack_payload(r: &Rendered) -> Value {
    json!({
        "text": truncate(&format!("{}: {}", r.title, to_mrkdwn(&r.summary)), 3000),
        "blocks": slack_blocks(r),
    })
}

#[async_trait::async_trait]
impl Channel for SlackChannel {
    fn name(&self) -> &'static str {
        "slack"
    }
    async fn send(&self, m: &Message) -> Result<(), ChannelError> {
        let mut payload = slack_payload(&m.rendered);
        if let Some((token, channel)) = &self.config.bot {
            payload["channel"] = json!(channel);
            let request = self
                .client
                .get()
                .post(format!("{}/chat.postMessage", self.config.api_url))
                .bearer_auth(token.expose())
                .json(&payload);
            let body = send("Slack", request).await?;
            // The Web API answers 200 with {"ok": false, "error": ...} on failure.
            let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if answer["ok"].as_bool() == Some(true) {
                return Ok(());
            }
            let error = answer["error"].as_str().unwrap_or("unexpected answer");
            let reason = format!("Slack chat.postMessage failed: {error}");
            return Err(match error {
                "ratelimited"
                | "internal_error"
                | "fatal_error"
                | "service_unavailable"
                | "request_timeout" => ChannelError::retryable(reason),
                _ => ChannelError::permanent(reason),
            });
        }
        let url = self
            .config
            .webhook_url
            .as_ref()
            .ok_or_else(|| ChannelError::permanent("Slack is not configured"))?;
        send("Slack", self.client.get().post(url.expose()).json(&payload))
            .await
            .map(drop)
    }
}

/// Microsoft Teams: a webhook message carrying an Adaptive Card 1.4.
pub struct TeamsChannel {
    client: HttpClient,
    url: Secret,
}

impl TeamsChannel {
    pub fn new(client: HttpClient, url: Secret) -> Self {
        Self { client, url }
    }
}

/// The Teams message: `{"type":"message","attachments":[{Adaptive Card}]}`.
pub fn teams_payload(r: &Rendered) -> Value {
    let color = match r.level {
        Level::Success => "Good",
        Level::Failure => "Attention",
        Level::Warning => "Warning",
        Level::Info => "Default",
    };
    let mut body = vec![
        json!({"type": "TextBlock", "text": r.title, "weight": "Bolder", "size": "Medium", "color": color, "wrap": true}),
        json!({"type": "TextBlock", "text": r.summary, "wrap": true}),
    ];
    if !r.metrics.is_empty() {
        let facts: Vec<Value> = r
            .metrics
            .iter()
            .map(|m| json!({"title": m.name, "value": m.value}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if !r.links.is_empty() {
        card["actions"] = r
            .links
            .iter()
            .map(|l| json!({"type": "Action.OpenUrl", "title": l.label, "url": l.url}))
            .collect();
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[async_trait::async_trait]
impl Channel for TeamsChannel {
    fn name(&self) -> &'static str {
        "teams"
    }
    async fn send(&self, m: &Message) -> Result<(), ChannelError> {
        let request = self
            .client
            .get()
            .post(self.url.expose())
            .json(&teams_payload(&m.rendered));
        send("Teams", request).await.map(drop)
    }
}

/// Discord: a webhook message with one embed.
pub struct DiscordChannel {
    client: HttpClient,
    url: Secret,
}

impl DiscordChannel {
    pub fn new(client: HttpClient, url: Secret) -> Self {
        Self { client, url }
    }
}

/// The Discord message: `{"embeds": [{title, description, color, fields, ...}]}`.
pub fn discord_payload(r: &Rendered) -> Value {
    let color = match r.level {
        Level::Success => 0x2EB67D,
        Level::Failure => 0xE01E5A,
        Level::Warning => 0xECB22E,
        Level::Info => 0x5865F2,
    };
    let mut description = r.summary.clone();
    if !r.links.is_empty() {
        description.push_str("\n\n");
        let links: Vec<String> = r
            .links
            .iter()
            .map(|l| format!("[{}]({})", l.label, l.url))
            .collect();
        description.push_str(&links.join(" · "));
    }
    let fields: Vec<Value> = r
        .metrics
        .iter()
        .take(25)
        .map(|m| json!({"name": truncate(&m.name, 256), "value": truncate(&m.value, 1024), "inline": true}))
        .collect();
    let mut embed = json!({
        "title": truncate(&r.title, 256),
        "description": truncate(&description, 4096),
        "color": color,
        "fields": fields,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(first) = r.links.first() {
        embed["url"] = json!(first.url);
    }
    json!({ "embeds": [embed], "allowed_mentions": {"parse": []} })
}

#[async_trait::async_trait]
impl Channel for DiscordChannel {
    fn name(&self) -> &'static str {
        "discord"
    }
    async fn send(&self, m: &Message) -> Result<(), ChannelError> {
        let request = self
            .client
            .get()
            .post(self.url.expose())
            .json(&discord_payload(&m.rendered));
        send("Discord", request).await.map(drop)
    }
}
