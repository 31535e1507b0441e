//! Monitors over MCP with the real binary: a scheduled monitor finds drift, notifies and opens
//! one retraining issue the workflow can parse; the whole loop — workflow-trained v1 served with
//! the log on, drifted requests, the monitor, a retraining issue, the workflow training v2 on the
//! new data, the endpoint answering with v2; and on PostgreSQL two servers run each tick once.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Server;
use common::churn::{in_production, table, write};
use serde_json::{Value, json};

/// Held by the tests whose timing matters (every-second ticks) or that load both cores (checks
/// of 400k rows), so they do not run at once.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Polls `tool` until `done` holds for its result (or fails after `secs`).
async fn until(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    args: Value,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = common::call(client, tool, args.clone()).await;
        assert!(!r.is_error, "{tool}: {}", r.text);
        if done(&r.structured) {
            return r.structured;
        }
        assert!(
            Instant::now() < deadline,
            "{tool} after {secs} s: {}",
            r.structured
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_scheduled_monitor_notifies_and_opens_one_valid_retraining_issue() {
    let s = Server::start().await;
    write(
        s.home.path(),
        "datasets/train.csv",
        &table(2000, 1, false).0,
    );
    write(
        s.home.path(),
        "datasets/drifted.csv",
        &table(1500, 8, true).0,
    );
    in_production(&s.client, "churn", "churn-rf").await;

    // Bad monitors are refused before they are stored.
    for (args, expected) in [
        (
            json!({"name": "m", "model_name": "churn", "cron": "61 * * * *"}),
            "is not a cron pattern",
        ),
        (
            json!({"name": "m", "model_name": "churn"}),
            "give one of every_seconds",
        ),
        (
            json!({"name": "m", "model_name": "churn", "every_seconds": 5, "thresholds": {"psi": {"warn": 0.5, "drift": 0.1}}}),
            "thresholds.psi",
        ),
        (
            json!({"name": "m", "model_name": "churn", "every_seconds": 5, "actions": {"open_retraining_issue": true}}),
            "retrain.data_uri",
        ),
        (
            json!({"name": "m", "model_name": "churn", "every_seconds": 5, "retrain": {"metric": "accurasy"}}),
            "not a metric name",
        ),
    ] {
        s.err("create_monitor", args, expected).await;
    }

    let created = s
        .ok(
            "create_monitor",
            json!({
                "name": "churn-watch", "model_name": "churn", "every_seconds": 1,
                "data_uri": "datasets/drifted.csv",
                "actions": {"open_retraining_issue": true},
                "retrain": {"data_uri": "datasets/drifted.csv"}
            }),
        )
        .await;
    assert_eq!(created["paused"], false);
    s.err(
        "create_monitor",
        json!({"name": "churn-watch", "model_name": "churn", "every_seconds": 1}),
        "already exists",
    )
    .await;

    // Three ticks, each finding the same drift.
    let runs = until(
        &s.client,
        "list_monitor_runs",
        json!({"name": "churn-watch"}),
        60,
        |r| {
            r["runs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["status"] == "done")
                .count()
                >= 3
        },
    )
    .await;
    s.ok("pause_monitor", json!({"name": "churn-watch"})).await;
    let failed: Vec<&Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let done: Vec<&Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "done")
        .collect();
    for r in &done {
        assert_eq!(r["verdict"], "drift", "{r}");
        assert_eq!(r["notified"], true, "{r}");
        let drifted: Vec<&str> = r["drifted_features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(drifted, ["income", "region", "age"]);
    }
    let ticks: BTreeSet<&str> = done
        .iter()
        .map(|r| r["scheduled_for"].as_str().unwrap())
        .collect();
    assert_eq!(ticks.len(), done.len(), "a tick ran twice: {runs}");

    // One retraining request at a time: every run points at the same open issue.
    let issues: BTreeSet<i64> = done
        .iter()
        .map(|r| r["issue_number"].as_i64().unwrap())
        .collect();
    assert_eq!(issues.len(), 1, "{runs}");
    let number = *issues.iter().next().unwrap();
    let listed = s
        .ok(
            "list_issues",
            json!({"labels": ["mlops:train"], "state": "all"}),
        )
        .await;
    assert_eq!(listed["issues"].as_array().unwrap().len(), 1, "{listed}");
    let parsed = s
        .ok("parse_training_issue", json!({"issue_number": number}))
        .await;
    assert_eq!(parsed["valid"], true, "{parsed}");
    let request = &parsed["request"];
    assert_eq!(request["dataset"], "datasets/drifted.csv");
    assert_eq!(request["algorithm"], "random_forest");
    assert_eq!(request["target_column"], "label");
    assert_eq!(request["model_name"], "churn");

    // The drift notifications are in the outbox.
    let sent = s.ok("list_notifications", json!({"limit": 50})).await;
    let drift: Vec<&Value> = sent["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["template"] == "drift")
        .collect();
    assert!(drift.len() >= 3, "{sent}");
    assert!(
        drift[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("📉 Drift detected: churn"),
        "{sent}"
    );

    let view = s.ok("get_monitor", json!({"name": "churn-watch"})).await;
    assert_eq!(view["paused"], true);
    s.ok("delete_monitor", json!({"name": "churn-watch"})).await;
    s.err(
        "get_monitor",
        json!({"name": "churn-watch"}),
        "no monitor named",
    )
    .await;
}

#[tokio::test]
async fn the_loop_closes_drift_to_retraining_to_the_new_version_answering() {
    let home = tempfile::tempdir().unwrap();
    let client = Server::connect_with(
        home.path(),
        &[("MLOPS_PREDICTION_LOG_FLUSH_SECONDS", "0.2")],
    )
    .await;
    let s = Server { home, client };
    write(
        s.home.path(),
        "datasets/train.csv",
        &table(2000, 1, false).0,
    );
    let (drifted_csv, drifted_records) = table(1500, 8, true);
    write(s.home.path(), "datasets/fresh-labelled.csv", &drifted_csv);

    // v1: trained, judged, registered and promoted by the workflow.
    let body = "```yaml\ndataset: datasets/train.csv\ntarget_column: label\ntask_type: classification\nalgorithm: random_forest\nhyperparameters: {n_estimators: 20}\nmetric: accuracy\nthreshold: 0.6\nmodel_name: churn\nseed: 3\n```\n";
    let started = s.ok("start_workflow", json!({"body": body})).await;
    let v1 = until(
        &s.client,
        "get_workflow_status",
        json!({"execution_id": started["id"]}),
        120,
        |r| r["status"] != "running",
    )
    .await;
    assert_eq!(v1["status"], "succeeded", "{v1}");
    let answer = s
        .ok(
            "predict",
            json!({"model_name": "churn", "records": [drifted_records[0].clone()]}),
        )
        .await;
    assert_eq!(answer["version"], 1, "{answer}");

    // Served with the log on, it receives drifted requests.
    s.ok("set_prediction_logging", json!({"model_name": "churn"}))
        .await;
    for chunk in drifted_records.chunks(500) {
        s.ok("predict", json!({"model_name": "churn", "records": chunk}))
            .await;
    }
    until(
        &s.client,
        "detect_drift",
        json!({"model_name": "churn"}),
        30,
        |r| r["current_rows"] == 1500,
    )
    .await;

    // The monitor watches the log; on drift it opens a retraining issue and starts the workflow.
    s.ok(
        "create_monitor",
        json!({
            "name": "churn-loop", "model_name": "churn", "every_seconds": 2, "window_seconds": 3600,
            "actions": {"open_retraining_issue": true, "start_workflow": true},
            "retrain": {"data_uri": "datasets/fresh-labelled.csv", "threshold": 0.6}
        }),
    )
    .await;
    let runs = until(
        &s.client,
        "list_monitor_runs",
        json!({"name": "churn-loop"}),
        60,
        |r| {
            r["runs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["execution_id"].is_string())
        },
    )
    .await;
    s.ok("pause_monitor", json!({"name": "churn-loop"})).await;
    let fired = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["execution_id"].is_string())
        .unwrap()
        .clone();
    assert_eq!(fired["verdict"], "drift", "{fired}");
    let issue = fired["issue_number"].as_i64().unwrap();
    let parsed = s
        .ok("parse_training_issue", json!({"issue_number": issue}))
        .await;
    assert_eq!(parsed["valid"], true, "{parsed}");

    // The workflow trains v2 on the new data and promotes it; the endpoint answers with it.
    let v2 = until(
        &s.client,
        "get_workflow_status",
        json!({"execution_id": fired["execution_id"]}),
        180,
        |r| r["status"] != "running",
    )
    .await;
    assert_eq!(v2["status"], "succeeded", "{v2}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = s
            .ok(
                "predict",
                json!({"model_name": "churn", "records": [drifted_records[0].clone()]}),
            )
            .await;
        if answer["version"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "still answering with {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The notification of the drift landed in the outbox.
    let sent = s.ok("list_notifications", json!({"limit": 100})).await;
    assert!(
        sent["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["template"] == "drift"),
        "{sent}"
    );
    // Against the data v2 learned from, the log no longer drifts.
    let after = s.ok("detect_drift", json!({"model_name": "churn"})).await;
    assert_eq!(after["model_version"], 2);
    assert_eq!(
        after["comparison"]["drifted_features"],
        json!([]),
        "{after}"
    );
}

#[tokio::test]
async fn two_servers_on_postgres_run_each_tick_once() {
    let _serial = TIMING.lock().await;
    let Some((url, _schema)) = mlops_db::testing::fresh_pg_schema("mon").await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("MLOPS_DATABASE_URL", url.as_str()),
        ("MLOPS_MONITOR_LEASE_SECONDS", "5"),
    ];
    let a = Server::connect_with(home.path(), &env).await;
    let b = Server::connect_with(home.path(), &env).await;
    write(home.path(), "datasets/train.csv", &table(800, 1, false).0);
    write(home.path(), "datasets/fresh.csv", &table(300, 2, false).0);
    let ok = |r: common::Reply| {
        assert!(!r.is_error, "{}", r.text);
        r.structured
    };
    in_production(&a, "churn", "rf").await;
    ok(common::call(&b, "create_monitor", json!({
        "name": "every-second", "model_name": "churn", "every_seconds": 1, "data_uri": "datasets/fresh.csv"
    })).await);
    tokio::time::sleep(Duration::from_secs(20)).await;
    ok(common::call(&a, "pause_monitor", json!({"name": "every-second"})).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = ok(common::call(
        &a,
        "list_monitor_runs",
        json!({"name": "every-second", "limit": 500}),
    )
    .await);
    let runs = runs["runs"].as_array().unwrap();
    let checks = ok(common::call(
        &b,
        "list_drift_checks",
        json!({"model_name": "churn", "limit": 500}),
    )
    .await);
    let checks = checks["checks"].as_array().unwrap();
    // Each tick once: one run per tick, one check per run, every run finished on one try.
    assert!(runs.len() >= 15, "{} runs in 20 s", runs.len());
    assert_eq!(
        checks.len(),
        runs.len(),
        "checks {checks:?} vs runs {runs:?}"
    );
    let mut ticks: Vec<i64> = runs
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(r["scheduled_for"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    ticks.sort();
    for r in runs {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
    }
    // No tick skipped while both ran.
    for w in ticks.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "ticks {ticks:?}");
    }
    let runners: BTreeSet<&str> = runs.iter().map(|r| r["runner"].as_str().unwrap()).collect();
    eprintln!("ticks run by {} servers: {runners:?}", runners.len());
}

#[tokio::test]
async fn metrics_report_drift_per_model_and_monitor_outcomes() {
    const TOKEN: &str = "monitor-token-0123456789abcdef";
    let s = common::http::HttpServer::start(&[("MLOPS_HTTP_TOKENS", TOKEN)]).await;
    let client = s.client(Some(TOKEN)).await;
    write(s.home.path(), "datasets/train.csv", &table(800, 1, false).0);
    write(
        s.home.path(),
        "datasets/drifted.csv",
        &table(500, 8, true).0,
    );
    let ok = |r: common::Reply| {
        assert!(!r.is_error, "{}", r.text);
        r.structured
    };
    in_production(&client, "churn", "rf").await;
    ok(common::call(&client, "create_monitor", json!({
        "name": "churn-watch", "model_name": "churn", "every_seconds": 1, "data_uri": "datasets/drifted.csv",
        "actions": {"notify": false}
    })).await);
    until(
        &client,
        "list_monitor_runs",
        json!({"name": "churn-watch"}),
        30,
        |r| {
            r["runs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["status"] == "done")
        },
    )
    .await;
    ok(common::call(&client, "pause_monitor", json!({"name": "churn-watch"})).await);
    let text = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let severity = text
        .lines()
        .find_map(|l| l.strip_prefix("mlops_drift_severity{model=\"churn\"} "))
        .unwrap_or_else(|| panic!("no drift severity for churn in {text}"));
    assert!(severity.parse::<f64>().unwrap() > 1.0, "{text}");
    let drifted = text
        .lines()
        .find_map(|l| l.strip_prefix("mlops_drift_drifted_features{model=\"churn\"} "))
        .unwrap_or_else(|| panic!("no drifted-feature count for churn in {text}"));
    assert!(drifted.parse::<f64>().unwrap() >= 2.0, "{text}");
    assert!(
        text.contains("mlops_monitor_runs{monitor=\"churn-watch\",outcome=\"drift\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_killed_mid_check_is_taken_over_without_a_second_issue() {
    let _serial = TIMING.lock().await;
    let Some((url, _schema)) = mlops_db::testing::fresh_pg_schema("monkill").await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("MLOPS_DATABASE_URL", url.as_str()),
        ("MLOPS_MONITOR_LEASE_SECONDS", "3"),
    ];
    let (a, a_pid) = Server::spawn(home.path(), &env).await;
    write(home.path(), "datasets/train.csv", &table(800, 1, false).0);
    // Big enough that a check takes a while: the kill lands inside it.
    write(
        home.path(),
        "datasets/drifted.csv",
        &table(400_000, 8, true).0,
    );
    let ok = |r: common::Reply| {
        assert!(!r.is_error, "{}", r.text);
        r.structured
    };
    in_production(&a, "churn", "rf").await;
    ok(common::call(&a, "create_monitor", json!({
        "name": "big", "model_name": "churn", "every_seconds": 5, "data_uri": "datasets/drifted.csv",
        "actions": {"open_retraining_issue": true, "notify": false},
        "retrain": {"data_uri": "datasets/train.csv"}
    })).await);
    // Kill -9 the only server as soon as it is inside a run.
    let running = until(&a, "list_monitor_runs", json!({"name": "big"}), 30, |r| {
        r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "running")
    })
    .await;
    std::process::Command::new("kill")
        .args(["-9", &a_pid.to_string()])
        .status()
        .unwrap();
    let tick = running["runs"][0]["scheduled_for"]
        .as_str()
        .unwrap()
        .to_string();

    // Another server takes the tick over once the lease lapses, and finishes it.
    let b = Server::connect_with(home.path(), &env).await;
    let runs = until(&b, "list_monitor_runs", json!({"name": "big"}), 90, |r| {
        r["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["scheduled_for"] == tick.as_str() && r["status"] != "running")
    })
    .await;
    ok(common::call(&b, "pause_monitor", json!({"name": "big"})).await);
    let taken = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scheduled_for"] == tick.as_str())
        .unwrap();
    assert_eq!(taken["status"], "done", "{taken}");
    assert_eq!(taken["attempts"], 2, "{taken}");
    assert_eq!(taken["verdict"], "drift", "{taken}");
    let issue = taken["issue_number"].as_i64().unwrap();
    let listed = ok(common::call(
        &b,
        "list_issues",
        json!({"labels": ["mlops:train"], "state": "all"}),
    )
    .await);
    let numbers: Vec<i64> = listed["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [issue],
        "one retraining issue, however often the tick ran"
    );
}

#[test]
fn the_drift_demo_runs_the_loop_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["drift-demo", "--rows", "1200"])
        .env_clear()
        .env("MLOPS_HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("drift found"), "{text}");
    assert!(text.contains("answers with version 2"), "{text}");
}
