//! The notifier: renders, writes the outbox, and runs the delivery worker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{Notify, watch};

use crate::channel::email::{EmailChannel, parse_mailbox};
use crate::channel::file::OutboxFileChannel;
use crate::channel::web::{DiscordChannel, GithubChannel, HttpClient, SlackChannel, TeamsChannel};
use crate::channel::{Channel, ChannelError, Message};
use crate::config::NotifyConfig;
use crate::outbox::{Claimed, DeliveryRecord, DeliveryState, Outbox};
use crate::template::{Rendered, Templates};
use crate::{CHANNELS, NotifyError};

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct NotificationRequest {
    /// Channel names; empty means the configured ones (or `outbox_file` when none is).
    pub channels: Vec<String>,
    /// A template name (`success`, `failure`, `retry_approval`, `error` or a user template)...
    pub template: Option<String>,
    /// ...or a raw title and Markdown message.
    pub title: Option<String>,
    pub message: Option<String>,
    /// Values for the template (and `metrics` / `links` for every channel's layout).
    pub context: Map<String, Value>,
    /// The GitHub issue to comment on (else the context's `issue_number`).
    pub issue_number: Option<u64>,
    /// Email recipients instead of `SMTP_TO`.
    pub email_to: Vec<String>,
}

/// What [`Notifier::send`] accepted: the id and the channels it was queued for.
#[derive(Debug, Clone)]
pub struct NotificationReceipt {
    pub notification_id: String,
    pub channels: Vec<String>,
    pub rendered: Rendered,
}

/// Sends notifications through the outbox. Build one per process and share it in an `Arc`.
pub struct Notifier {
    config: NotifyConfig,
    channels: BTreeMap<&'static str, Arc<dyn Channel>>,
    outbox: Outbox,
    wake: Arc<Notify>,
    workers: Arc<AtomicUsize>,
    /// The owner name of deliveries attempted inline by [`Notifier::wait`].
    inline_owner: String,
}

const BATCH: i64 = 16;

/// Channels from the environment, with the server's home and database.
fn config_from_env(home: PathBuf, database_url: &str) -> Result<NotifyConfig, NotifyError> {
    let mut values: BTreeMap<String, String> = std::env::vars().collect();
    values.insert("MLOPS_HOME".into(), home.display().to_string());
    values.insert("MLOPS_DATABASE_URL".into(), database_url.into());
    NotifyConfig::from_map(&values)
}

impl Notifier {
    /// The notifier for a server: channels from the environment, `home` and `database_url` as
    /// given (the registry's database).
    pub async fn from_config(
        home: impl Into<PathBuf>,
        database_url: &str,
    ) -> Result<Arc<Self>, NotifyError> {
        Ok(Arc::new(
            Self::new(config_from_env(home.into(), database_url)?).await?,
        ))
    }

    /// As [`Notifier::from_config`], with the outbox in an open pool (the server's one database).
    pub async fn on_pool(
        home: impl Into<PathBuf>,
        database_url: &str,
        pool: sqlx::AnyPool,
    ) -> Result<Arc<Self>, NotifyError> {
        let config = config_from_env(home.into(), database_url)?;
        let outbox = Outbox::from_pool(pool).await?;
        Ok(Arc::new(Self::with_outbox(config, outbox)?))
    }

    /// Connects the outbox and builds every configured channel.
    pub async fn new(config: NotifyConfig) -> Result<Self, NotifyError> {
        let outbox = Outbox::connect(&config.database_url).await?;
        Self::with_outbox(config, outbox)
    }

    /// As [`Notifier::new`] on an outbox already opened (e.g. on a shared pool).
    pub fn with_outbox(config: NotifyConfig, outbox: Outbox) -> Result<Self, NotifyError> {
        let client = HttpClient::new(config.send_timeout);
        let mut channels: BTreeMap<&'static str, Arc<dyn Channel>> = BTreeMap::new();
        let mut add = |c: Arc<dyn Channel>| {
            channels.insert(c.name(), c);
        };
        add(Arc::new(OutboxFileChannel::new(config.outbox_file())));
        // Without GITHUB_REPOSITORY there is nowhere to comment: the channel stays unavailable.
        if let Some(g) = config.github.as_ref().filter(|g| g.repository.is_some()) {
            add(Arc::new(GithubChannel::new(client.clone(), g.clone())));
        }
        if let Some(s) = &config.slack {
            add(Arc::new(SlackChannel::new(client.clone(), s.clone())));
        }
        if let Some(e) = &config.email {
            add(Arc::new(EmailChannel::new(e.clone(), config.send_timeout)?));
        }
        if let Some(u) = &config.teams_webhook_url {
            add(Arc::new(TeamsChannel::new(client.clone(), u.clone())));
        }
        if let Some(u) = &config.discord_webhook_url {
            add(Arc::new(DiscordChannel::new(client.clone(), u.clone())));
        }
        Ok(Self {
            config,
            channels,
            outbox,
            wake: Arc::new(Notify::new()),
            workers: Arc::new(AtomicUsize::new(0)),
            inline_owner: format!("inline-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// Adds or replaces a channel (e.g. a GitHub channel built on another client).
    pub fn with_channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.insert(channel.name(), channel);
        self
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Channels available on this server.
    pub fn available_channels(&self) -> Vec<&'static str> {
        self.channels.keys().copied().collect()
    }

    /// The channels used when a request names none: every configured external channel (GitHub only
    /// with an issue number), or the outbox file when there is none.
    pub fn default_channels(&self, has_issue: bool) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self
            .channels
            .keys()
            .copied()
            .filter(|c| *c != "outbox_file" && (*c != "github" || has_issue))
            .collect();
        out.sort_by_key(|c| CHANNELS.iter().position(|k| k == c));
        if out.is_empty() {
            out.push("outbox_file");
        }
        out
    }

    /// The templates: built-ins plus the user's folder, read afresh.
    pub fn templates(&self) -> Result<Templates, NotifyError> {
        Templates::load(&self.config.template_dir)
    }

    /// Renders a request's template (or raw title and message) without sending anything.
    pub fn render(&self, req: &NotificationRequest) -> Result<Rendered, NotifyError> {
        match (&req.template, &req.message) {
            (Some(_), Some(_)) => Err(NotifyError::Invalid(
                "give either `template` (with `context`) or `title` and `message`, not both".into(),
            )),
            (Some(t), None) => {
                if req.title.is_some() {
                    return Err(NotifyError::Invalid(
                        "`title` comes from the template; leave it out, or send a raw `title` and `message` without `template`".into(),
                    ));
                }
                self.templates()?.render(t, &req.context)
            }
            (None, Some(m)) => {
                let title = match &req.title {
                    Some(t) if !t.trim().is_empty() => t.clone(),
                    _ => m
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or_default()
                        .to_string(),
                };
                if title.trim().is_empty() {
                    return Err(NotifyError::Invalid("the message is empty".into()));
                }
                Ok(Templates::raw(&title, m, &req.context))
            }
            (None, None) => Err(NotifyError::Invalid(
                "nothing to send: give `template` (success, failure, retry_approval, error, drift or your own) with `context`, or `title` and `message`".into(),
            )),
        }
    }

    /// Resolves the request's channels, checking that each exists and is configured.
    fn resolve_channels(
        &self,
        req: &NotificationRequest,
        issue: Option<u64>,
    ) -> Result<Vec<&'static str>, NotifyError> {
        if req.channels.is_empty() {
            return Ok(self.default_channels(issue.is_some()));
        }
        let mut out: Vec<&'static str> = Vec::new();
        for name in &req.channels {
            let name = name.trim().to_ascii_lowercase();
            let Some(known) = CHANNELS.iter().find(|c| **c == name) else {
                return Err(NotifyError::Invalid(format!(
                    "unknown channel `{name}`; channels are: {}",
                    CHANNELS.join(", ")
                )));
            };
            if !self.channels.contains_key(known) {
                return Err(NotifyError::Invalid(format!(
                    "channel `{known}` is not configured on this server: {}",
                    setup_hint(known)
                )));
            }
            if !out.contains(known) {
                out.push(known);
            }
        }
        Ok(out)
    }

    /// Validates and renders the request, then writes one pending delivery per channel to the
    /// outbox and wakes the worker. Nothing is sent here.
    pub async fn send(&self, req: NotificationRequest) -> Result<NotificationReceipt, NotifyError> {
        let issue = match req.issue_number {
            Some(n) => Some(n),
            None => issue_from_context(&req.context)?,
        };
        let channels = self.resolve_channels(&req, issue)?;
        if channels.contains(&"github") && issue.is_none() {
            return Err(NotifyError::Invalid(
                "the github channel comments on an issue: pass `issue_number` (or `issue_number` in `context`)".into(),
            ));
        }
        let mut email_to = Vec::new();
        for a in &req.email_to {
            parse_mailbox("email_to", a)?;
            email_to.push(a.trim().to_string());
        }
        if channels.contains(&"email")
            && email_to.is_empty()
            && self.config.email.as_ref().is_none_or(|e| e.to.is_empty())
        {
            return Err(NotifyError::Invalid(
                "no email recipients: pass `email_to` or set SMTP_TO".into(),
            ));
        }
        let rendered = self.render(&req)?;
        let notification_id = format!("ntf-{}", uuid::Uuid::new_v4().simple());
        let message = Message {
            notification_id: notification_id.clone(),
            rendered: rendered.clone(),
            issue_number: issue,
            email_to,
        };
        let deliveries: Vec<(String, Message)> = channels
            .iter()
            .map(|c| (c.to_string(), message.clone()))
            .collect();
        self.outbox
            .insert(
                &notification_id,
                &deliveries,
                self.config.retry.max_attempts,
            )
            .await?;
        tracing::info!(
            notification_id = %notification_id,
            template = %rendered.template,
            channels = %channels.join(","),
            "notification queued"
        );
        self.wake.notify_one();
        Ok(NotificationReceipt {
            notification_id,
            channels: channels.iter().map(|c| c.to_string()).collect(),
            rendered,
        })
    }

    /// The deliveries of one notification.
    pub async fn deliveries(
        &self,
        notification_id: &str,
    ) -> Result<Vec<DeliveryRecord>, NotifyError> {
        let d = self.outbox.deliveries(notification_id).await?;
        if d.is_empty() {
            return Err(NotifyError::NotFound(format!(
                "no notification `{notification_id}`"
            )));
        }
        Ok(d)
    }

    /// Waits up to `timeout` for every delivery of a notification to be delivered or failed, and
    /// returns their states (some may still be pending). Without a running worker, delivers
    /// inline meanwhile.
    pub async fn wait(
        &self,
        notification_id: &str,
        timeout: Duration,
    ) -> Result<Vec<DeliveryRecord>, NotifyError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.workers.load(Ordering::SeqCst) == 0 {
                self.run_once(&self.inline_owner).await?;
            }
            let d = self.deliveries(notification_id).await?;
            if d.iter().all(|r| r.state.is_final()) || tokio::time::Instant::now() >= deadline {
                return Ok(d);
            }
            tokio::time::sleep(Duration::from_millis(25).min(timeout)).await;
        }
    }

    pub async fn list(
        &self,
        state: Option<DeliveryState>,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, NotifyError> {
        self.outbox.list(state, limit).await
    }

    /// One pass: claims the due deliveries (as `owner`) and attempts each. Returns how many it tried.
    pub async fn run_once(&self, owner: &str) -> Result<usize, NotifyError> {
        let claimed = self.outbox.claim(owner, self.config.lease, BATCH).await?;
        let n = claimed.len();
        let mut set = tokio::task::JoinSet::new();
        for c in claimed {
            let channel = self.channels.get(c.channel.as_str()).cloned();
            let outbox = self.outbox.clone();
            let owner = owner.to_string();
            let policy = self.config.retry;
            let timeout = self.config.send_timeout + Duration::from_secs(5);
            set.spawn(async move { deliver(outbox, channel, c, &owner, policy, timeout).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Err(e)) => tracing::warn!(error = %e, "could not record a delivery outcome"),
                Err(e) => tracing::warn!(error = %e, "a delivery task failed"),
                Ok(Ok(())) => {}
            }
        }
        Ok(n)
    }

    /// Starts the delivery worker on the current runtime. It runs until [`WorkerHandle::stop`].
    pub fn start_worker(self: &Arc<Self>) -> WorkerHandle {
        let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let this = self.clone();
        let id = owner.clone();
        this.workers.fetch_add(1, Ordering::SeqCst);
        let workers = this.workers.clone();
        let task = tokio::spawn(async move {
            let _guard = Running(workers);
            tracing::info!(worker = %owner, "notification worker started");
            loop {
                if *stop_rx.borrow() {
                    break;
                }
                let tried = match this.run_once(&owner).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(worker = %owner, error = %e, "notification worker pass failed");
                        0
                    }
                };
                if tried > 0 {
                    continue;
                }
                let mut idle = this.config.poll_interval;
                if let Ok(Some(ms)) = this.outbox.next_due_in().await {
                    idle = idle.min(Duration::from_millis(ms as u64));
                }
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop_rx.changed() => {}
                }
            }
            tracing::info!(worker = %owner, "notification worker stopped");
        });
        WorkerHandle {
            id,
            stop: stop_tx,
            task,
        }
    }
}

/// Counts running workers; decremented however the task ends (stopped or aborted).
struct Running(Arc<AtomicUsize>);
impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running delivery worker.
pub struct WorkerHandle {
    id: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// The owner name it claims deliveries under.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Stops after the current pass and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
    /// Kills it at once, as a crash would (claimed deliveries stay leased until the lease expires).
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn deliver(
    outbox: Outbox,
    channel: Option<Arc<dyn Channel>>,
    c: Claimed,
    owner: &str,
    policy: crate::config::RetryPolicy,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let Some(channel) = channel else {
        let reason = format!(
            "channel `{}` is not configured on this server: {}",
            c.channel,
            setup_hint(&c.channel)
        );
        tracing::warn!(notification_id = %c.message.notification_id, channel = %c.channel, status = "failed", error = %reason, "notification not delivered");
        outbox.mark_failed(&c.id, owner, &reason).await?;
        return Ok(());
    };
    let result = match tokio::time::timeout(timeout, channel.send(&c.message)).await {
        Ok(r) => r,
        Err(_) => Err(ChannelError::retryable(format!(
            "{} did not answer within {} s",
            c.channel,
            timeout.as_secs()
        ))),
    };
    let id = &c.message.notification_id;
    let recorded = match result {
        Ok(()) => {
            tracing::info!(notification_id = %id, channel = %c.channel, attempt = c.attempts, status = "delivered", "notification delivered");
            outbox.mark_delivered(&c.id, owner).await?
        }
        Err(ChannelError::Permanent { reason }) => {
            tracing::warn!(notification_id = %id, channel = %c.channel, attempt = c.attempts, status = "failed", error = %reason, "notification failed permanently");
            outbox.mark_failed(&c.id, owner, &reason).await?
        }
        Err(ChannelError::Retryable { reason, .. }) if c.attempts >= c.max_attempts => {
            tracing::warn!(notification_id = %id, channel = %c.channel, attempt = c.attempts, status = "failed", error = %reason, "notification failed; no attempts left");
            let reason = format!("gave up after {} attempts: {reason}", c.attempts);
            outbox.mark_failed(&c.id, owner, &reason).await?
        }
        Err(ChannelError::Retryable {
            reason,
            retry_after,
        }) => {
            let delay = policy.after_failure(c.attempts as u32, retry_after);
            tracing::info!(notification_id = %id, channel = %c.channel, attempt = c.attempts, status = "retrying", retry_in_ms = delay.as_millis() as u64, error = %reason, "notification attempt failed; will retry");
            outbox.reschedule(&c.id, owner, delay, &reason).await?
        }
    };
    if !recorded {
        tracing::warn!(notification_id = %id, channel = %c.channel, "the delivery's lease was taken over by another worker; its outcome was not recorded");
    }
    Ok(())
}

fn setup_hint(channel: &str) -> &'static str {
    match channel {
        "github" => "set GITHUB_TOKEN and GITHUB_REPOSITORY (owner/repo)",
        "slack" => "set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL",
        "email" => "set SMTP_HOST, SMTP_FROM and SMTP_TO (and SMTP_USERNAME/SMTP_PASSWORD)",
        "teams" => "set TEAMS_WEBHOOK_URL",
        "discord" => "set DISCORD_WEBHOOK_URL",
        _ => "it is not available",
    }
}

fn issue_from_context(context: &Map<String, Value>) -> Result<Option<u64>, NotifyError> {
    match context.get("issue_number") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            NotifyError::Invalid(format!(
                "issue_number must be a positive whole number, got {n}"
            ))
        }),
        Some(Value::String(s)) => s
            .trim()
            .trim_start_matches('#')
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                NotifyError::Invalid(format!(
                    "issue_number must be a positive whole number, got `{s}`"
                ))
            }),
        Some(other) => Err(NotifyError::Invalid(format!(
            "issue_number must be a positive whole number, got {other}"
        ))),
    }
}
