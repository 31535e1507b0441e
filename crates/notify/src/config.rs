//! Notification settings, read from the environment (names as in the specification and the usual
//! names of each service). Every secret is registered for masking as soon as it is read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mlops_core::logging::register_secret;

use crate::NotifyError;

/// A secret value: its `Debug` shows `***`, and it is registered for masking when created.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register_secret(&value);
        Self(value)
    }
    /// A webhook URL: the whole URL is a secret, and so are its path, its long path segments and
    /// its query values (services echo parts of the URL back in errors).
    pub fn webhook(url: impl Into<String>) -> Self {
        let secret = Self::new(url);
        if let Ok(u) = url::Url::parse(&secret.0) {
            if u.path().len() > 8 {
                register_secret(u.path());
            }
            for segment in u.path_segments().into_iter().flatten() {
                if segment.len() >= 16 {
                    register_secret(segment);
                }
            }
            for (_, v) in u.query_pairs() {
                if v.len() >= 16 {
                    register_secret(&v);
                }
            }
        }
        secret
    }
    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Slack: an incoming webhook, or `chat.postMessage` with a bot token and a channel.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub webhook_url: Option<Secret>,
    /// Bot token and channel (id or `#name`) for `chat.postMessage`; used in preference to the webhook.
    pub bot: Option<(Secret, String)>,
    /// Base of the Web API (`SLACK_API_URL`, default `https://slack.com/api`).
    pub api_url: String,
}

/// SMTP delivery.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    /// Default recipients (`SMTP_TO`, comma-separated).
    pub to: Vec<String>,
    /// Upgrade the connection with STARTTLS (required by default; `SMTP_STARTTLS=false` for a local sink).
    pub starttls: bool,
}

/// GitHub issue comments.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub token: Secret,
    /// `GITHUB_API_URL`, default `https://api.github.com`.
    pub api_url: String,
    /// `owner/repo` (`GITHUB_REPOSITORY`).
    pub repository: Option<String>,
}

pub use mlops_core::RetryPolicy;

/// How failed deliveries are retried: 6 attempts, 2 s doubling up to 10 minutes, or longer when a
/// server's `Retry-After` asks (up to that cap too).
pub const DELIVERY_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 6,
    base_delay: Duration::from_secs(2),
    max_delay: Duration::from_secs(600),
};

/// Everything the notification capability reads.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `MLOPS_HOME` (default `./mlops-data`): the outbox file lives in `notifications/` under it.
    pub home: PathBuf,
    /// User templates (`MLOPS_TEMPLATE_DIR`, default `<home>/templates`).
    pub template_dir: PathBuf,
    /// The outbox database (`MLOPS_DATABASE_URL`, default `sqlite://<home>/mlops.db`).
    pub database_url: String,
    pub slack: Option<SlackConfig>,
    pub email: Option<EmailConfig>,
    pub teams_webhook_url: Option<Secret>,
    pub discord_webhook_url: Option<Secret>,
    pub github: Option<GithubConfig>,
    pub retry: RetryPolicy,
    /// How often an idle worker looks for due deliveries.
    pub poll_interval: Duration,
    /// How long a claimed delivery is reserved for one worker before another may take it over.
    pub lease: Duration,
    /// Timeout of one HTTP or SMTP attempt.
    pub send_timeout: Duration,
}

impl NotifyConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, NotifyError> {
        let values: BTreeMap<String, String> = std::env::vars().collect();
        Self::from_map(&values)
    }

    /// Only the local outbox file: no external channel (embedded defaults).
    pub fn local(home: impl Into<PathBuf>, database_url: impl Into<String>) -> Self {
        let home = home.into();
        Self {
            template_dir: home.join("templates"),
            home,
            database_url: database_url.into(),
            slack: None,
            email: None,
            teams_webhook_url: None,
            discord_webhook_url: None,
            github: None,
            retry: DELIVERY_RETRY,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(120),
            send_timeout: Duration::from_secs(30),
        }
    }

    /// Builds the settings from explicit key/value pairs (the environment's names).
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<Self, NotifyError> {
        let get = |k: &str| mlops_core::setting(values, k);
        let (home, database_url) = mlops_core::home_and_database_url(values);
        let mut c = Self::local(home, database_url);
        if let Some(dir) = get("MLOPS_TEMPLATE_DIR") {
            c.template_dir = PathBuf::from(dir);
        }

        let slack_webhook = get("SLACK_WEBHOOK_URL")
            .map(|u| webhook("SLACK_WEBHOOK_URL", u))
            .transpose()?;
        let slack_bot = match (get("SLACK_BOT_TOKEN"), get("SLACK_CHANNEL")) {
            (Some(token), Some(channel)) => Some((Secret::new(token), channel)),
            (Some(token), None) => {
                register_secret(&token);
                return Err(NotifyError::Config(
                    "SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not: name the channel to post to (an id such as C0123456 or #name)".into(),
                ));
            }
            _ => None,
        };
        if slack_webhook.is_some() || slack_bot.is_some() {
            c.slack = Some(SlackConfig {
                webhook_url: slack_webhook,
                bot: slack_bot,
                api_url: base_url(
                    "SLACK_API_URL",
                    get("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api".into()),
                )?,
            });
        }

        if let Some(host) = get("SMTP_HOST") {
            let starttls = match get("SMTP_STARTTLS").as_deref() {
                None => true,
                Some(v) => parse_bool("SMTP_STARTTLS", v)?,
            };
            let port = match get("SMTP_PORT") {
                Some(p) => p.parse::<u16>().map_err(|_| {
                    NotifyError::Config(format!("SMTP_PORT must be a port number, got `{p}`"))
                })?,
                None if starttls => 587,
                None => 25,
            };
            let password = get("SMTP_PASSWORD").map(Secret::new);
            let username = get("SMTP_USERNAME");
            if username.is_some() != password.is_some() {
                return Err(NotifyError::Config(
                    "set both SMTP_USERNAME and SMTP_PASSWORD for SMTP authentication, or neither"
                        .into(),
                ));
            }
            let from = get("SMTP_FROM").ok_or_else(|| {
                NotifyError::Config(
                    "SMTP_HOST is set but SMTP_FROM is not: give the sender address".into(),
                )
            })?;
            crate::channel::email::parse_mailbox("SMTP_FROM", &from)
                .map_err(|e| NotifyError::Config(e.to_string()))?;
            let to = get("SMTP_TO")
                .map(|v| crate::channel::email::parse_recipients("SMTP_TO", &v))
                .transpose()
                .map_err(|e| NotifyError::Config(e.to_string()))?
                .unwrap_or_default();
            c.email = Some(EmailConfig {
                host,
                port,
                username,
                password,
                from,
                to,
                starttls,
            });
        }

        c.teams_webhook_url = get("TEAMS_WEBHOOK_URL")
            .map(|u| webhook("TEAMS_WEBHOOK_URL", u))
            .transpose()?;
        c.discord_webhook_url = get("DISCORD_WEBHOOK_URL")
            .map(|u| webhook("DISCORD_WEBHOOK_URL", u))
            .transpose()?;

        if let Some(token) = get("GITHUB_TOKEN") {
            let repository = get("GITHUB_REPOSITORY");
            if let Some(r) = &repository {
                check_repository(r)?;
            }
            c.github = Some(GithubConfig {
                token: Secret::new(token),
                api_url: base_url(
                    "GITHUB_API_URL",
                    get("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
                )?,
                repository,
            });
        }

        if let Some(v) = get("MLOPS_NOTIFY_MAX_ATTEMPTS") {
            c.retry.max_attempts = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                NotifyError::Config(format!(
                    "MLOPS_NOTIFY_MAX_ATTEMPTS must be a whole number of at least 1, got `{v}`"
                ))
            })?;
        }
        if let Some(v) = get("MLOPS_NOTIFY_RETRY_BASE_MS") {
            c.retry.base_delay = Duration::from_millis(v.parse().map_err(|_| {
                NotifyError::Config(format!(
                    "MLOPS_NOTIFY_RETRY_BASE_MS must be a number of milliseconds, got `{v}`"
                ))
            })?);
        }
        Ok(c)
    }

    /// The outbox file the `outbox_file` channel appends to.
    pub fn outbox_file(&self) -> PathBuf {
        outbox_file(&self.home)
    }

    /// Names of the external channels that are configured, in [`crate::CHANNELS`] order.
    pub fn configured_channels(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.github.as_ref().is_some_and(|g| g.repository.is_some()) {
            out.push("github");
        }
        if self.slack.is_some() {
            out.push("slack");
        }
        if self.email.is_some() {
            out.push("email");
        }
        if self.teams_webhook_url.is_some() {
            out.push("teams");
        }
        if self.discord_webhook_url.is_some() {
            out.push("discord");
        }
        out
    }
}

pub(crate) fn outbox_file(home: &Path) -> PathBuf {
    home.join("notifications").join("outbox.jsonl")
}

/// A webhook URL: registered as a secret, and checked without echoing it.
pub fn webhook(name: &str, url: String) -> Result<Secret, NotifyError> {
    let secret = Secret::webhook(url);
    match url::Url::parse(secret.expose()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(secret),
        _ => Err(NotifyError::Config(format!(
            "{name} is not a valid http(s) URL (value hidden because it is a secret)"
        ))),
    }
}

fn base_url(name: &str, url: String) -> Result<String, NotifyError> {
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(NotifyError::Config(format!(
            "{name} must be an http(s) URL, got `{}`",
            mlops_core::redact_url(&url)
        ))),
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, NotifyError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(NotifyError::Config(format!(
            "{name} must be true or false, got `{v}`"
        ))),
    }
}

fn check_repository(r: &str) -> Result<(), NotifyError> {
    let ok = r.split_once('/').is_some_and(|(o, n)| {
        let part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        part(o) && part(n)
    });
    if ok {
        Ok(())
    } else {
        Err(NotifyError::Config(format!(
            "GITHUB_REPOSITORY must be `owner/repo`, got `{r}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use mlops_testkit::settings;

    use super::*;

    #[test]
    fn nothing_configured_means_the_outbox_file_only() {
        let c = NotifyConfig::from_map(&settings(&[("MLOPS_HOME", "/tmp/h")])).unwrap();
        assert!(c.configured_channels().is_empty());
        assert_eq!(c.template_dir, PathBuf::from("/tmp/h/templates"));
        assert_eq!(c.database_url, "sqlite:///tmp/h/mlops.db");
        assert_eq!(
            c.outbox_file(),
            PathBuf::from("/tmp/h/notifications/outbox.jsonl")
        );
    }

    #[test]
    fn every_channel_from_the_environment() {
        let c = NotifyConfig::from_map(&settings(&[
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T/B/cfgsecret1",
            ),
            ("SMTP_HOST", "smtp.example.com"),
            ("SMTP_USERNAME", "bot"),
            ("SMTP_PASSWORD", "smtp-pw-cfg-123"),
            ("SMTP_FROM", "MLOps <mlops@example.com>"),
            ("SMTP_TO", "a@example.com, b@example.com"),
            ("TEAMS_WEBHOOK_URL", "https://example.webhook.office.com/x"),
            (
                "DISCORD_WEBHOOK_URL",
                "https://discord.com/api/webhooks/1/abc",
            ),
            ("GITHUB_TOKEN", "ghp_cfg_token_123"),
            ("GITHUB_REPOSITORY", "acme/models"),
        ]))
        .unwrap();
        assert_eq!(
            c.configured_channels(),
            ["github", "slack", "email", "teams", "discord"]
        );
        let email = c.email.as_ref().unwrap();
        assert_eq!(email.port, 587);
        assert!(email.starttls);
        assert_eq!(email.to, ["a@example.com", "b@example.com"]);
        // Debug output never shows a secret.
        let debug = format!("{c:?}");
        for s in ["cfgsecret1", "smtp-pw-cfg-123", "ghp_cfg_token_123", "/x\""] {
            assert!(!debug.contains(s), "{s} in {debug}");
        }
        assert_eq!(
            mlops_core::logging::mask_str("pw smtp-pw-cfg-123"),
            "pw ***"
        );
    }

    #[test]
    fn bad_settings_are_clear_and_hide_secrets() {
        let e = NotifyConfig::from_map(&settings(&[("SLACK_WEBHOOK_URL", "not a url secretish")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLACK_WEBHOOK_URL is not a valid"), "{e}");
        assert!(!e.contains("secretish"), "{e}");
        let e = NotifyConfig::from_map(&settings(&[
            ("SMTP_HOST", "h"),
            ("SMTP_FROM", "me@example.com"),
            ("SMTP_TO", "ok@example.com, not-an-address"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("SMTP_TO") && e.contains("not-an-address"), "{e}");
        let e = NotifyConfig::from_map(&settings(&[("SLACK_BOT_TOKEN", "xoxb-1234567")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLACK_CHANNEL") && !e.contains("xoxb"), "{e}");
        let e = NotifyConfig::from_map(&settings(&[
            ("GITHUB_TOKEN", "ghp_1234567"),
            ("GITHUB_REPOSITORY", "nope"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("owner/repo"), "{e}");
        let e = NotifyConfig::from_map(&settings(&[
            ("SMTP_HOST", "h"),
            ("SMTP_FROM", "me@example.com"),
            ("SMTP_STARTTLS", "maybe"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("SMTP_STARTTLS"), "{e}");
    }
}
