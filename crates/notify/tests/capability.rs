//! The Notification tools through the router, bad input, and secrets kept out of logs and errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FakeService, Reply, capture_logs, fast_config, notifier, secret};
use mlops_core::{Capability, ToolContext, ToolError, ToolRouter};
use mlops_notify::{GithubConfig, SlackConfig};
use mlops_notify::{NotifyCapability, NotifyConfig};
use serde_json::{Value, json};

struct Fixture {
    router: ToolRouter,
    home: tempfile::TempDir,
}

async fn fixture(edit: impl FnOnce(&mut NotifyConfig)) -> Fixture {
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/mlops.db", home.path().display());
    let mut config = fast_config(home.path(), &url);
    edit(&mut config);
    let cap = NotifyCapability::new(notifier(config).await);
    let router = ToolRouter::new(&[cap as Arc<dyn Capability>]).unwrap();
    Fixture { router, home }
}

impl Fixture {
    async fn call(&self, tool: &str, args: Value) -> Result<(Value, String), ToolError> {
        self.router
            .call(tool, args, ToolContext::default())
            .await
            .map(|o| (o.structured, o.text))
    }
    async fn err(&self, tool: &str, args: Value) -> String {
        match self.call(tool, args).await {
            Ok(o) => panic!("{tool} should fail: {o:?}"),
            Err(e) => {
                assert!(matches!(e, ToolError::Validation(_)), "{e:?}");
                e.to_string()
            }
        }
    }
}

#[tokio::test]
async fn tools_are_registered_under_the_notification_capability() {
    let f = fixture(|_| {}).await;
    let tools: Vec<(&str, &str)> = f.router.list().map(|(c, s)| (c, s.name)).collect();
    assert_eq!(
        tools,
        [
            ("notification", "send_notification"),
            ("notification", "list_notifications"),
            ("notification", "list_notification_templates"),
            ("notification", "render_notification_template"),
        ]
    );
    let spec = f.router.get("send_notification").unwrap();
    assert!(spec.annotations.open_world);
    assert!(spec.input_schema["properties"]["wait_seconds"].is_object());
}

#[tokio::test]
async fn send_then_list_by_state() {
    let f = fixture(|_| {}).await;
    let (out, text) = f
        .call(
            "send_notification",
            json!({"template": "retry_approval", "context": {"model_name": "churn", "task_token": "tt-1", "retry_count": 0, "max_retry": 2, "issue_number": 4}}),
        )
        .await
        .unwrap();
    assert_eq!(out["template"], "retry_approval");
    assert_eq!(
        out["channels"],
        json!([{"channel": "outbox_file", "state": "delivered", "attempts": 1}])
    );
    assert!(text.contains("outbox_file: delivered"), "{text}");
    let id = out["notification_id"].as_str().unwrap().to_string();

    let (out, _) = f
        .call(
            "send_notification",
            json!({"title": "Heads up", "message": "Data **drift** detected.", "wait_seconds": 0}),
        )
        .await
        .unwrap();
    assert_eq!(out["title"], "Heads up");
    assert_eq!(out["template"], "message");

    let (out, _) = f
        .call(
            "list_notifications",
            json!({"state": "delivered", "limit": 50}),
        )
        .await
        .unwrap();
    let listed: Vec<&str> = out["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["notification_id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&id.as_str()), "{out}");
    let (out, _) = f
        .call("list_notifications", json!({"notification_id": id}))
        .await
        .unwrap();
    assert_eq!(
        out["deliveries"][0]["title"],
        "⏸ Approval needed: retry training churn?"
    );
    let file = std::fs::read_to_string(f.home.path().join("notifications/outbox.jsonl")).unwrap();
    assert!(file.contains("/approve") && file.contains("tt-1"), "{file}");
}

#[tokio::test]
async fn templates_are_listed_and_previewed_with_user_overrides() {
    let f = fixture(|c| {
        c.template_dir = c.home.join("my-templates");
    })
    .await;
    let dir = f.home.path().join("my-templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("success.j2"),
        "{# Team success note #}{% block title %}🎉 {{ model_name }} shipped{% endblock %}{% block summary %}Well done, {{ team }}.{% endblock %}",
    )
    .unwrap();
    std::fs::write(dir.join("bad.j2"), "{% block title %}{{ x }{% endblock %}").unwrap();
    let (out, text) = f
        .call("list_notification_templates", json!({}))
        .await
        .unwrap();
    let names: Vec<&str> = out["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "bad",
            "drift",
            "error",
            "failure",
            "retry_approval",
            "success"
        ]
    );
    assert_eq!(out["default_channels"], json!(["outbox_file"]));
    let success = &out["templates"][5];
    assert_eq!(success["overrides_builtin"], true);
    assert_eq!(success["variables"], json!(["model_name", "team"]));
    assert!(text.contains("bad (broken: template `bad`"), "{text}");

    let (out, _) = f
        .call(
            "render_notification_template",
            json!({"template": "success", "context": {"model_name": "churn", "team": "ML", "metrics": {"rmse": 1.5}}, "channel": "teams"}),
        )
        .await
        .unwrap();
    assert_eq!(out["rendered"]["title"], "🎉 churn shipped");
    assert_eq!(
        out["payload"]["attachments"][0]["content"]["body"][2]["facts"],
        json!([{"title": "rmse", "value": "1.5"}])
    );
    // Previews send nothing.
    let (out, _) = f.call("list_notifications", json!({})).await.unwrap();
    assert_eq!(out["deliveries"], json!([]));
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_nothing_is_queued() {
    let dir_setup = |c: &mut NotifyConfig| {
        c.template_dir = c.home.join("t");
    };
    let f = fixture(dir_setup).await;
    std::fs::create_dir_all(f.home.path().join("t")).unwrap();
    std::fs::write(f.home.path().join("t/oops.j2"), "Title\n{% for x in %}\n").unwrap();
    let cases = [
        (
            json!({"channels": ["sms"], "title": "t", "message": "m"}),
            "unknown channel `sms`; channels are: github, slack, email, teams, discord, outbox_file",
        ),
        (
            json!({"channels": ["slack"], "title": "t", "message": "m"}),
            "channel `slack` is not configured on this server: set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL",
        ),
        (
            json!({"template": "sucess"}),
            "unknown template `sucess`; available: drift, error, failure, oops, retry_approval, success",
        ),
        (json!({"template": "oops"}), "syntax error on line 2"),
        (
            json!({"template": "failure", "context": {"model_name": "m"}}),
            "missing context value `reason`",
        ),
        (
            json!({"template": "success", "title": "x"}),
            "`title` comes from the template",
        ),
        (
            json!({"template": "success", "message": "x", "context": {"model_name": "m"}}),
            "give either `template`",
        ),
        (json!({}), "nothing to send"),
        (
            json!({"title": "t", "message": "m", "email_to": ["not-an-address"]}),
            "email_to: `not-an-address` is not a valid email address",
        ),
        (
            json!({"title": "t", "message": "m", "context": {"issue_number": "abc"}}),
            "issue_number must be a positive whole number, got `abc`",
        ),
        (
            json!({"title": "t", "message": "m", "wait_seconds": 600}),
            "wait_seconds must be between 0 and 60",
        ),
        (
            json!({"title": "t", "message": "m", "chanels": ["slack"]}),
            "unknown field `chanels`",
        ),
    ];
    for (args, expected) in cases {
        let e = f.err("send_notification", args.clone()).await;
        assert!(e.contains(expected), "{args}: {e}");
    }
    let e = f.err("list_notifications", json!({"limit": 0})).await;
    assert!(e.contains("limit must be between 1 and 200"), "{e}");
    let e = f.err("list_notifications", json!({"state": "lost"})).await;
    assert!(e.contains("unknown variant `lost`"), "{e}");
    let e = f
        .err(
            "render_notification_template",
            json!({"template": "success", "context": {"model_name": "m"}, "channel": "fax"}),
        )
        .await;
    assert!(e.contains("unknown channel `fax`"), "{e}");
    let (out, _) = f.call("list_notifications", json!({})).await.unwrap();
    assert_eq!(out["deliveries"], json!([]), "nothing was queued");
}

#[tokio::test]
async fn secrets_never_reach_logs_errors_or_the_outbox() {
    let slack_url_secret = "T000/B000/slack-canary-7f3a9c";
    let github_token = "ghp_canary_token_5d1e8b";
    let teams_secret = "teams-canary-0c4d2e";
    let (logs, _guard) = capture_logs();
    // Slack answers 404 and echoes the URL it was called on, as some services do.
    let slack = FakeService::start().await;
    slack.always(Reply::status(
        404,
        &format!("no_service for /services/{slack_url_secret}"),
    ));
    let github = FakeService::start().await;
    github.always(Reply::status(401, r#"{"message": "Bad credentials"}"#));
    // Teams points at a closed port: a connection error.
    let down = mlops_testkit::RefusedPort::new();
    let closed = format!("127.0.0.1:{}", down.port);
    let f = fixture(|c| {
        c.retry.max_attempts = 2;
        c.slack = Some(SlackConfig {
            webhook_url: Some(secret(&format!(
                "{}/services/{slack_url_secret}",
                slack.url
            ))),
            bot: None,
            api_url: slack.url.clone(),
        });
        c.github = Some(GithubConfig {
            token: secret(github_token),
            api_url: github.url.clone(),
            repository: Some("acme/models".into()),
        });
        c.teams_webhook_url = Some(secret(&format!("http://{closed}/hook/{teams_secret}")));
    })
    .await;
    let (out, text) = f
        .call(
            "send_notification",
            json!({"template": "error", "context": {"error": "boom", "issue_number": 3}, "wait_seconds": 10}),
        )
        .await
        .unwrap();
    let states: Vec<(&str, &str)> = out["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["channel"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("github", "failed"),
            ("slack", "failed"),
            ("teams", "failed")
        ],
        "{out}"
    );
    let teams_error = out["channels"][2]["last_error"].as_str().unwrap();
    assert!(
        teams_error.contains("could not reach Teams"),
        "{teams_error}"
    );
    let slack_error = out["channels"][1]["last_error"].as_str().unwrap();
    assert!(slack_error.contains("no_service for ***"), "{slack_error}");
    let (listed, list_text) = f.call("list_notifications", json!({})).await.unwrap();
    // A bad webhook URL in the configuration is refused without echoing it.
    let mut bad = std::collections::BTreeMap::new();
    bad.insert(
        "DISCORD_WEBHOOK_URL".to_string(),
        "ftp://discord-canary-91b2/x".to_string(),
    );
    let config_error = NotifyConfig::from_map(&bad).unwrap_err().to_string();

    let db = std::fs::read(f.home.path().join("mlops.db")).unwrap_or_default();
    let wal = std::fs::read(f.home.path().join("mlops.db-wal")).unwrap_or_default();
    let everything = format!(
        "{}\n{out}\n{text}\n{listed}\n{list_text}\n{config_error}\n{}\n{}",
        logs.text(),
        String::from_utf8_lossy(&db),
        String::from_utf8_lossy(&wal)
    );
    assert!(
        logs.text().contains("notification failed"),
        "the capture saw the failures: {}",
        logs.text()
    );
    for canary in [
        "slack-canary-7f3a9c",
        github_token,
        teams_secret,
        "discord-canary-91b2",
    ] {
        assert!(
            !everything.contains(canary),
            "`{canary}` leaked:\n{everything}"
        );
    }
}

#[tokio::test]
async fn without_a_worker_send_reports_pending_and_delivers_later() {
    let teams = FakeService::start().await;
    teams.script([Reply::status(500, "down")]);
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/mlops.db", home.path().display());
    let mut config = fast_config(home.path(), &url);
    config.retry.base_delay = Duration::from_millis(400);
    config.teams_webhook_url = Some(secret(&format!("{}/hook-pending-xyz", teams.url)));
    let n = notifier(config).await;
    let cap = NotifyCapability::new(n.clone());
    let router = ToolRouter::new(&[cap as Arc<dyn Capability>]).unwrap();
    let out = router
        .call(
            "send_notification",
            json!({"channels": ["teams"], "title": "t", "message": "m", "wait_seconds": 0.1}),
            ToolContext::default(),
        )
        .await
        .unwrap();
    let c = &out.structured["channels"][0];
    assert_eq!(c["state"], "pending", "{c}");
    assert!(
        c["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{c}"
    );
    assert!(c["next_attempt_at"].is_string(), "{c}");
    assert!(
        out.text.contains("teams: pending, will retry"),
        "{}",
        out.text
    );
    // The worker delivers it later.
    let worker = n.start_worker();
    let id = out.structured["notification_id"].as_str().unwrap();
    let d = n.wait(id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(d[0].state, mlops_notify::DeliveryState::Delivered);
    assert_eq!(teams.requests().len(), 2);
    worker.stop().await;
}

#[tokio::test]
async fn github_without_a_repository_is_not_a_channel() {
    let f = fixture(|c| {
        c.github = Some(GithubConfig {
            token: secret("ghp_no_repo_token_1"),
            api_url: "http://127.0.0.1:9".into(),
            repository: None,
        });
    })
    .await;
    let e = f
        .err(
            "send_notification",
            json!({"channels": ["github"], "issue_number": 3, "title": "t", "message": "m"}),
        )
        .await;
    assert!(
        e.contains("channel `github` is not configured on this server: set GITHUB_TOKEN and GITHUB_REPOSITORY"),
        "{e}"
    );
    let (out, _) = f
        .call("list_notification_templates", json!({}))
        .await
        .unwrap();
    assert_eq!(out["available_channels"], json!(["outbox_file"]));
}

#[tokio::test]
async fn from_config_opens_the_database_under_home() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db/mlops.db", home.path().display());
    let cap = NotifyCapability::from_config(home.path(), &url)
        .await
        .unwrap();
    let n = cap.notifier().clone();
    let worker = n.start_worker();
    let r = n
        .send(mlops_notify::NotificationRequest {
            channels: vec!["outbox_file".into()],
            title: Some("Hello".into()),
            message: Some("World".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let d = n
        .wait(&r.notification_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(d[0].state, mlops_notify::DeliveryState::Delivered);
    assert!(home.path().join("db/mlops.db").exists());
    assert!(home.path().join("notifications/outbox.jsonl").exists());
    worker.stop().await;
}
