//! Each channel against a local stand-in of its service: the exact request it sends.

mod common;

use std::time::Duration;

use common::{FakeService, Reply, SmtpSink, fast_config, notifier, secret};
use mlops_notify::{DeliveryRecord, DeliveryState, NotificationRequest, Notifier, NotifyConfig};
use mlops_notify::{EmailConfig, GithubConfig, SlackConfig};
use serde_json::{Value, json};

fn success() -> NotificationRequest {
    NotificationRequest {
        template: Some("success".into()),
        context: json!({
            "model_name": "churn", "version": 3, "metric": "accuracy", "threshold": 0.9,
            "metrics": {"accuracy": 0.9312, "f1": 0.9},
            "links": {"Issue": "https://github.com/acme/models/issues/7"},
            "issue_number": 7
        })
        .as_object()
        .cloned()
        .unwrap(),
        ..Default::default()
    }
}

fn with_channels(mut r: NotificationRequest, channels: &[&str]) -> NotificationRequest {
    r.channels = channels.iter().map(|c| c.to_string()).collect();
    r
}

/// A fast configuration with its home and SQLite database in a fresh folder, which lives as long
/// as the returned guard.
fn configured() -> (tempfile::TempDir, NotifyConfig) {
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/mlops.db", home.path().display());
    let config = fast_config(home.path(), &url);
    (home, config)
}

/// How long a test waits for its deliveries to settle: long enough for the SMTP sink, while a
/// settled delivery returns at once.
const SETTLE: Duration = Duration::from_secs(10);

/// The deliveries of a sent notification, once settled (delivered or failed).
async fn settled(n: &Notifier, notification_id: &str) -> Vec<DeliveryRecord> {
    n.wait(notification_id, SETTLE).await.unwrap()
}

/// Sends `req` and returns its deliveries once settled.
async fn deliver(n: &Notifier, req: NotificationRequest) -> Vec<DeliveryRecord> {
    let sent = n.send(req).await.unwrap();
    settled(n, &sent.notification_id).await
}

const SUMMARY: &str =
    "Model **churn** version 3 passed evaluation (accuracy ≥ 0.9) and was registered.\n\nIssue #7";

#[tokio::test]
async fn slack_webhook_posts_block_kit_blocks() {
    let (_home, mut config) = configured();
    let slack = FakeService::start().await;
    config.slack = Some(SlackConfig {
        webhook_url: Some(secret(&format!(
            "{}/services/T1/B1/slack-hook-secret",
            slack.url
        ))),
        bot: None,
        api_url: slack.url.clone(),
    });
    let n = notifier(config).await;
    let d = deliver(&n, with_channels(success(), &["slack"])).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/services/T1/B1/slack-hook-secret");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    let expected = json!({
        "text": "✅ Training succeeded: churn v3: Model *churn* version 3 passed evaluation (accuracy ≥ 0.9) and was registered.\n\nIssue #7",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "✅ Training succeeded: churn v3", "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "Model *churn* version 3 passed evaluation (accuracy ≥ 0.9) and was registered.\n\nIssue #7"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*accuracy*\n0.9312"},
                {"type": "mrkdwn", "text": "*f1*\n0.9"}
            ]},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Issue"}, "url": "https://github.com/acme/models/issues/7"}
            ]}
        ]
    });
    assert_eq!(reqs[0].json(), expected);
}

#[tokio::test]
async fn slack_bot_uses_chat_post_message_and_reads_ok_false() {
    let (_home, mut config) = configured();
    let api = FakeService::start().await;
    api.script([
        Reply::ok(r#"{"ok": true, "channel": "C123", "ts": "1.2"}"#),
        Reply::ok(r#"{"ok": false, "error": "channel_not_found"}"#),
    ]);
    config.slack = Some(SlackConfig {
        webhook_url: None,
        bot: Some((secret("xoxb-test-bot-token-42"), "#mlops".into())),
        api_url: api.url.clone(),
    });
    let n = notifier(config).await;
    let d = deliver(&n, with_channels(success(), &["slack"])).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    let d = deliver(&n, with_channels(success(), &["slack"])).await;
    assert_eq!(d[0].state, DeliveryState::Failed, "{d:?}");
    assert_eq!(
        d[0].last_error.as_deref(),
        Some("Slack chat.postMessage failed: channel_not_found")
    );
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2, "an API error is not retried");
    assert_eq!(reqs[0].path, "/chat.postMessage");
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Bearer xoxb-test-bot-token-42")
    );
    let body = reqs[0].json();
    assert_eq!(body["channel"], "#mlops");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ Training succeeded: churn v3")
    );
}

#[tokio::test]
async fn teams_gets_an_adaptive_card() {
    let (_home, mut config) = configured();
    let teams = FakeService::start().await;
    teams.always(Reply::status(202, ""));
    config.teams_webhook_url = Some(secret(&format!(
        "{}/workflows/teams-hook-secret",
        teams.url
    )));
    let n = notifier(config).await;
    let d = deliver(&n, with_channels(success(), &["teams"])).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    let reqs = teams.requests();
    assert_eq!(reqs[0].path, "/workflows/teams-hook-secret");
    let expected = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "✅ Training succeeded: churn v3", "weight": "Bolder", "size": "Medium", "color": "Good", "wrap": true},
                    {"type": "TextBlock", "text": SUMMARY, "wrap": true},
                    {"type": "FactSet", "facts": [{"title": "accuracy", "value": "0.9312"}, {"title": "f1", "value": "0.9"}]}
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "Issue", "url": "https://github.com/acme/models/issues/7"}]
            }
        }]
    });
    assert_eq!(reqs[0].json(), expected);
}

#[tokio::test]
async fn discord_gets_an_embed() {
    let (_home, mut config) = configured();
    let discord = FakeService::start().await;
    discord.always(Reply::status(204, ""));
    config.discord_webhook_url = Some(secret(&format!(
        "{}/api/webhooks/9/discord-secret",
        discord.url
    )));
    let n = notifier(config).await;
    let mut req = with_channels(success(), &["discord"]);
    req.template = Some("failure".into());
    req.context
        .insert("reason".into(), json!("accuracy 0.81 < 0.9"));
    let d = deliver(&n, req).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    let body = discord.requests()[0].json();
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let embeds = body["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 1);
    let e = &embeds[0];
    assert_eq!(e["title"], "❌ Training failed: churn");
    assert_eq!(e["color"], 0xE01E5A);
    assert_eq!(e["url"], "https://github.com/acme/models/issues/7");
    assert_eq!(
        e["fields"],
        json!([
            {"name": "accuracy", "value": "0.9312", "inline": true},
            {"name": "f1", "value": "0.9", "inline": true}
        ])
    );
    let description = e["description"].as_str().unwrap();
    assert!(
        description.starts_with("Model **churn** did not pass: accuracy 0.81 < 0.9"),
        "{description}"
    );
    assert!(
        description.ends_with("[Issue](https://github.com/acme/models/issues/7)"),
        "{description}"
    );
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn github_comments_on_the_issue() {
    let (_home, mut config) = configured();
    let github = FakeService::start().await;
    github.always(Reply::status(
        201,
        r#"{"id": 1, "html_url": "https://github.com/acme/models/issues/7#issuecomment-1"}"#,
    ));
    config.github = Some(GithubConfig {
        token: secret("ghp_test_token_for_comments"),
        api_url: github.url.clone(),
        repository: Some("acme/models".into()),
    });
    let n = notifier(config).await;
    // Default channels: GitHub is configured and the context names the issue.
    let r = n.send(success()).await.unwrap();
    assert_eq!(r.channels, ["github"]);
    let d = settled(&n, &r.notification_id).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    let req = &github.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/repos/acme/models/issues/7/comments");
    assert_eq!(
        req.header("authorization"),
        Some("Bearer ghp_test_token_for_comments")
    );
    assert_eq!(req.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(req.header("x-github-api-version"), Some("2022-11-28"));
    assert!(req.header("user-agent").unwrap().starts_with("mlops-mcp/"));
    assert_eq!(
        req.json(),
        json!({"body": format!("### ✅ Training succeeded: churn v3\n\n{SUMMARY}\n\n| Metric | Value |\n|---|---|\n| accuracy | 0.9312 |\n| f1 | 0.9 |\n\n- [Issue](https://github.com/acme/models/issues/7)")})
    );
    // Without an issue number, GitHub is left out of the defaults (and refused when named).
    let mut no_issue = success();
    no_issue.context.remove("issue_number");
    let r = n.send(no_issue.clone()).await.unwrap();
    assert_eq!(r.channels, ["outbox_file"]);
    let e = n
        .send(with_channels(no_issue, &["github"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("pass `issue_number`"), "{e}");
}

#[tokio::test]
async fn email_is_multipart_text_and_html_over_authenticated_smtp() {
    let Some(sink) = SmtpSink::start("mlops-bot", "smtp-sink-password-77") else {
        return;
    };
    let (_home, mut config) = configured();
    let email = |password: &str| EmailConfig {
        host: "127.0.0.1".into(),
        port: sink.port,
        username: Some("mlops-bot".into()),
        password: Some(secret(password)),
        from: "MLOps <mlops@example.com>".into(),
        to: vec!["team@example.com".into()],
        starttls: false,
    };
    config.email = Some(email("smtp-sink-password-77"));
    let n = notifier(config.clone()).await;
    let mut req = with_channels(success(), &["email"]);
    let d = deliver(&n, req.clone()).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    req.email_to = vec!["Ops <ops@example.com>".into(), "lead@example.com".into()];
    let d = deliver(&n, req.clone()).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");

    let mails = sink.messages();
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0]["from"], "mlops@example.com");
    assert_eq!(mails[0]["to"], json!(["team@example.com"]));
    assert_eq!(mails[0]["authenticated"], true);
    assert_eq!(
        mails[1]["to"],
        json!(["ops@example.com", "lead@example.com"])
    );
    let data = mails[0]["data"].as_str().unwrap();
    assert!(
        data.contains("Content-Type: multipart/alternative"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/html; charset=utf-8"),
        "{data}"
    );
    assert!(data.contains("From: MLOps <mlops@example.com>"), "{data}");
    // The subject is the (encoded) title; the text part carries the metrics table.
    assert!(data.contains("Subject: "), "{data}");
    assert!(data.contains("| accuracy | 0.9312 |"), "{data}");
    assert!(
        data.contains("<tr><td>accuracy</td><td>0.9312</td></tr>"),
        "{data}"
    );

    // A wrong password is a permanent failure whose reason does not contain it.
    config.email = Some(email("wrong-password-1234"));
    let n = notifier(config).await;
    let d = deliver(&n, with_channels(success(), &["email"])).await;
    assert_eq!(d[0].state, DeliveryState::Failed, "{d:?}");
    let reason = d[0].last_error.clone().unwrap();
    assert!(reason.contains("535"), "{reason}");
    assert!(!reason.contains("wrong-password-1234"), "{reason}");
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test]
async fn nothing_configured_writes_the_outbox_file() {
    let (home, config) = configured();
    let n = notifier(config).await;
    let r = n.send(success()).await.unwrap();
    assert_eq!(r.channels, ["outbox_file"]);
    let d = settled(&n, &r.notification_id).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    let text = std::fs::read_to_string(home.path().join("notifications/outbox.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["notification_id"], r.notification_id.as_str());
    assert_eq!(lines[0]["title"], "✅ Training succeeded: churn v3");
    assert_eq!(lines[0]["template"], "success");
    assert_eq!(lines[0]["level"], "success");
    assert_eq!(lines[0]["issue_number"], 7);
    assert_eq!(
        lines[0]["metrics"][0],
        json!({"name": "accuracy", "value": "0.9312"})
    );
}

#[tokio::test]
async fn starttls_required_never_sends_credentials_in_clear() {
    // The sink offers no STARTTLS: with SMTP_STARTTLS on (the default) nothing may be sent.
    let Some(sink) = SmtpSink::start("mlops-bot", "tls-only-password-88") else {
        return;
    };
    let (_home, mut config) = configured();
    config.retry.max_attempts = 2;
    config.email = Some(EmailConfig {
        host: "127.0.0.1".into(),
        port: sink.port,
        username: Some("mlops-bot".into()),
        password: Some(secret("tls-only-password-88")),
        from: "mlops@example.com".into(),
        to: vec!["team@example.com".into()],
        starttls: true,
    });
    let n = notifier(config).await;
    let d = deliver(&n, with_channels(success(), &["email"])).await;
    assert_eq!(d[0].state, DeliveryState::Failed, "{d:?}");
    let reason = d[0].last_error.clone().unwrap();
    assert_eq!(d[0].attempts, 1, "a setup problem is not retried");
    assert!(
        reason.contains("STARTTLS is not supported on this server"),
        "{reason}"
    );
    assert!(!reason.contains("tls-only-password-88"), "{reason}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn github_rate_limit_waits_for_the_reset() {
    let (_home, mut config) = configured();
    let github = FakeService::start().await;
    let reset = (chrono_now() + 2).to_string();
    github.script([
        Reply::status(403, r#"{"message": "API rate limit exceeded"}"#)
            .with_header("x-ratelimit-remaining", "0")
            .with_header("x-ratelimit-reset", &reset),
    ]);
    github.always(Reply::status(201, "{}"));
    config.github = Some(GithubConfig {
        token: secret("ghp_rate_limit_token_1"),
        api_url: github.url.clone(),
        repository: Some("acme/models".into()),
    });
    let n = notifier(config).await;
    let d = deliver(&n, with_channels(success(), &["github"])).await;
    assert_eq!(d[0].state, DeliveryState::Delivered, "{d:?}");
    let reqs = github.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
