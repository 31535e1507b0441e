//! The durable outbox under faults, on SQLite and on PostgreSQL (fresh schema per test): a channel
//! that is down is retried and delivered exactly once, `Retry-After` is honoured, pending rows are
//! delivered by a new worker after a restart (and after a crash mid-send, once the lease expires),
//! a permanently failing channel is marked failed while the others are delivered, and two workers
//! on one database never send the same row twice.

mod common;

use std::time::Duration;

use common::{FakeService, Reply, databases, fast_config, notifier, secret};
use mlops_notify::SlackConfig;
use mlops_notify::{DeliveryState, NotificationRequest, Notifier};
use serde_json::json;

fn request(channels: &[&str]) -> NotificationRequest {
    NotificationRequest {
        channels: channels.iter().map(|c| c.to_string()).collect(),
        template: Some("success".into()),
        context: json!({"model_name": "churn", "version": 2, "metrics": {"accuracy": 0.93}})
            .as_object()
            .cloned()
            .unwrap(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_channel_down_for_two_attempts_is_delivered_once_later() {
    for (backend, url, _guard) in databases().await {
        let home = tempfile::tempdir().unwrap();
        let teams = FakeService::start().await;
        teams.script([Reply::status(500, "down"), Reply::status(503, "still down")]);
        let mut config = fast_config(home.path(), &url);
        config.teams_webhook_url = Some(secret(&format!("{}/teams/hook-a1b2c3", teams.url)));
        let n = notifier(config).await;
        let worker = n.start_worker();
        let receipt = n.send(request(&["teams"])).await.unwrap();
        let d = n
            .wait(&receipt.notification_id, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(d.len(), 1, "{backend}");
        assert_eq!(d[0].state, DeliveryState::Delivered, "{backend}: {d:?}");
        assert_eq!(d[0].attempts, 3, "{backend}");
        assert!(
            d[0].last_error.as_deref().unwrap().contains("HTTP 503"),
            "{backend}: {d:?}"
        );
        // Nothing more is sent afterwards: exactly three requests, the same payload each time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reqs = teams.requests();
        assert_eq!(reqs.len(), 3, "{backend}");
        assert!(reqs.iter().all(|r| r.body == reqs[0].body), "{backend}");
        assert_eq!(reqs[0].path, "/teams/hook-a1b2c3");
        worker.stop().await;
    }
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after() {
    for (backend, url, _guard) in databases().await {
        let home = tempfile::tempdir().unwrap();
        let discord = FakeService::start().await;
        discord.script([Reply::status(
            429,
            r#"{"message": "You are being rate limited.", "retry_after": 1.0, "global": false}"#,
        )
        .with_header("Retry-After", "1")]);
        let mut config = fast_config(home.path(), &url);
        config.discord_webhook_url =
            Some(secret(&format!("{}/api/webhooks/1/tok-zz9", discord.url)));
        let n = notifier(config).await;
        let worker = n.start_worker();
        let receipt = n.send(request(&["discord"])).await.unwrap();
        let d = n
            .wait(&receipt.notification_id, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(d[0].state, DeliveryState::Delivered, "{backend}: {d:?}");
        let reqs = discord.requests();
        assert_eq!(reqs.len(), 2, "{backend}");
        let gap = reqs[1].at - reqs[0].at;
        // The base backoff is 20 ms; the server asked for 1 s.
        assert!(
            gap >= Duration::from_millis(950),
            "{backend}: retried after {gap:?}"
        );
        worker.stop().await;
    }
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart_and_a_crash() {
    for (backend, url, _guard) in databases().await {
        let home = tempfile::tempdir().unwrap();
        let slack = FakeService::start().await;
        let slack_config = SlackConfig {
            webhook_url: Some(secret(&format!(
                "{}/services/T0/B0/restart-secret",
                slack.url
            ))),
            bot: None,
            api_url: slack.url.clone(),
        };
        let mut config = fast_config(home.path(), &url);
        config.slack = Some(slack_config);

        // First server: queues two notifications and stops before any worker sends them.
        let first = Notifier::new(config.clone()).await.unwrap();
        let a = first.send(request(&["slack"])).await.unwrap();
        let b = first.send(request(&["slack"])).await.unwrap();
        // ...and one of them was claimed by a worker that then died mid-send.
        let claimed = first
            .outbox()
            .claim("crashed-worker", Duration::from_millis(300), 1)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{backend}");
        drop(first);
        assert!(slack.requests().is_empty());

        // Second server on the same database: delivers both, the crashed one once its lease ends.
        let second = notifier(config).await;
        let worker = second.start_worker();
        for id in [&a.notification_id, &b.notification_id] {
            let d = second.wait(id, Duration::from_secs(10)).await.unwrap();
            assert_eq!(d[0].state, DeliveryState::Delivered, "{backend}: {d:?}");
        }
        let crashed = second
            .deliveries(&claimed[0].message.notification_id)
            .await
            .unwrap();
        assert_eq!(
            crashed[0].attempts, 2,
            "{backend}: the crashed attempt counts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(slack.requests().len(), 2, "{backend}");
        worker.stop().await;
    }
}

#[tokio::test]
async fn a_failing_channel_is_marked_failed_and_the_others_still_deliver() {
    for (backend, url, _guard) in databases().await {
        let home = tempfile::tempdir().unwrap();
        let discord = FakeService::start().await;
        discord.always(Reply::status(
            404,
            r#"{"message": "Unknown Webhook", "code": 10015}"#,
        ));
        let teams = FakeService::start().await;
        teams.always(Reply::status(502, "bad gateway"));
        let slack = FakeService::start().await;
        let mut config = fast_config(home.path(), &url);
        config.retry.max_attempts = 3;
        config.discord_webhook_url =
            Some(secret(&format!("{}/api/webhooks/2/gone-xyz", discord.url)));
        config.teams_webhook_url = Some(secret(&format!("{}/teams/flaky-xyz", teams.url)));
        config.slack = Some(SlackConfig {
            webhook_url: Some(secret(&format!("{}/services/ok-xyz", slack.url))),
            bot: None,
            api_url: slack.url.clone(),
        });
        let n = notifier(config).await;
        let worker = n.start_worker();
        let receipt = n
            .send(request(&["discord", "teams", "slack", "outbox_file"]))
            .await
            .unwrap();
        let d = n
            .wait(&receipt.notification_id, Duration::from_secs(10))
            .await
            .unwrap();
        let by = |c: &str| d.iter().find(|r| r.channel == c).unwrap().clone();
        let discord_row = by("discord");
        assert_eq!(discord_row.state, DeliveryState::Failed, "{backend}");
        assert_eq!(discord_row.attempts, 1, "{backend}: a 404 is not retried");
        assert_eq!(
            discord_row.last_error.as_deref(),
            Some(
                r#"Discord answered HTTP 404 Not Found: {"message": "Unknown Webhook", "code": 10015}"#
            )
        );
        let teams_row = by("teams");
        assert_eq!(teams_row.state, DeliveryState::Failed, "{backend}");
        assert_eq!(teams_row.attempts, 3, "{backend}");
        assert!(
            teams_row
                .last_error
                .as_deref()
                .unwrap()
                .starts_with("gave up after 3 attempts: Teams answered HTTP 502"),
            "{teams_row:?}"
        );
        assert_eq!(by("slack").state, DeliveryState::Delivered, "{backend}");
        assert_eq!(
            by("outbox_file").state,
            DeliveryState::Delivered,
            "{backend}"
        );
        assert_eq!(teams.requests().len(), 3);
        assert_eq!(discord.requests().len(), 1);
        // The failures are listed by state.
        let failed = n.list(Some(DeliveryState::Failed), 10).await.unwrap();
        let mut channels: Vec<&str> = failed.iter().map(|r| r.channel.as_str()).collect();
        channels.sort();
        assert_eq!(channels, ["discord", "teams"], "{backend}");
        worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_database_never_send_a_row_twice() {
    for (backend, url, _guard) in databases().await {
        let home = tempfile::tempdir().unwrap();
        let teams = FakeService::start().await;
        let mut config = fast_config(home.path(), &url);
        config.teams_webhook_url = Some(secret(&format!("{}/teams/shared-xyz", teams.url)));
        let a = notifier(config.clone()).await;
        let b = notifier(config).await;
        let mut ids = Vec::new();
        for i in 0..30 {
            let mut r = request(&["teams"]);
            r.context.insert("version".into(), json!(i));
            ids.push(a.send(r).await.unwrap().notification_id);
        }
        let (wa, wb) = (a.start_worker(), b.start_worker());
        for id in &ids {
            let d = a.wait(id, Duration::from_secs(20)).await.unwrap();
            assert_eq!(d[0].state, DeliveryState::Delivered, "{backend}: {d:?}");
            assert_eq!(d[0].attempts, 1, "{backend}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reqs = teams.requests();
        assert_eq!(reqs.len(), 30, "{backend}: every row sent exactly once");
        let mut titles: Vec<String> = reqs
            .iter()
            .map(|r| {
                r.json()["attachments"][0]["content"]["body"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        titles.sort();
        titles.dedup();
        assert_eq!(titles.len(), 30, "{backend}");
        wa.stop().await;
        wb.stop().await;
    }
}

/// A channel from elsewhere (e.g. the GitHub client crate) replaces a built-in one by name.
struct Recording(std::sync::Mutex<Vec<mlops_notify::Message>>);

#[async_trait::async_trait]
impl mlops_notify::Channel for Recording {
    fn name(&self) -> &'static str {
        "github"
    }
    async fn send(&self, m: &mlops_notify::Message) -> Result<(), mlops_notify::ChannelError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

#[tokio::test]
async fn a_channel_can_be_swapped_for_another_implementation() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/mlops.db", home.path().display());
    let recording = std::sync::Arc::new(Recording(Default::default()));
    let n = Notifier::new(fast_config(home.path(), &url))
        .await
        .unwrap()
        .with_channel(recording.clone());
    let mut r = request(&["github"]);
    r.issue_number = Some(42);
    let receipt = n.send(r).await.unwrap();
    let d = n
        .wait(&receipt.notification_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(d[0].state, DeliveryState::Delivered);
    let sent = recording.0.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].issue_number, Some(42));
    assert_eq!(sent[0].rendered.title, "✅ Training succeeded: churn v2");
}
