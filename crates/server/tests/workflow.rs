//! The issue-driven workflow end to end over MCP, on generated data, with the embedded defaults
//! (SQLite, the local history repository, notifications in the outbox file): a passing run; a
//! failing run approved with changed parameters; retries exhausted, rejected and timed-out
//! approvals; an error in PrepareData; per-state timeouts; issues without the label or with bad
//! parameters; a server killed during TrainModel; and the ASL export accepted by a local AWS
//! stand-in.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

/// Issue text with the parameters in a YAML block.
fn issue(
    model: &str,
    algorithm: &str,
    hyperparameters: Value,
    threshold: f64,
    max_retry: u32,
) -> String {
    format!(
        "Please train.\n\n```yaml\ndataset: datasets/c.csv\ntarget_column: label\ntask_type: classification\nalgorithm: {algorithm}\nhyperparameters: {hyperparameters}\nmetric: accuracy\nthreshold: {threshold}\nmax_retry: {max_retry}\nnotify:\n  - github\nmodel_name: {model}\nseed: 3\n```\n"
    )
}

/// Fast backoff for tests; real runs use the state table's.
fn quick(extra: Value) -> Value {
    let mut t = json!({"backoff_ms": 20});
    if let Value::Object(m) = extra {
        t["timeouts_ms"] = Value::Object(m);
    }
    t
}

/// Starts a workflow from issue text and waits until it stops running; returns its id and its
/// status report then.
async fn run(s: &Server, body: String, timing: Value) -> (String, Value) {
    let r = s
        .ok("start_workflow", json!({"body": body, "timing": timing}))
        .await;
    let id = r["id"].as_str().unwrap().to_string();
    let report = settle(&s.client, &id, 120).await;
    (id, report)
}

/// Polls until the execution leaves `running` (or `until` says so); returns its status report.
async fn settle(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    id: &str,
    secs: u64,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = common::call(client, "get_workflow_status", json!({"execution_id": id})).await;
        assert!(!r.is_error, "{}", r.text);
        if r.structured["status"] != "running" {
            return r.structured;
        }
        assert!(
            Instant::now() < deadline,
            "still running after {secs} s: {}",
            r.structured
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn states(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["state"].as_str().unwrap(),
                s["status"].as_str().unwrap()
            )
        })
        .collect()
}

/// The token of the approval an execution waits for.
fn task_token(report: &Value) -> String {
    report["context"]["task_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Why an execution ended as it did.
fn reason(report: &Value) -> &str {
    report["context"]["reason"].as_str().unwrap()
}

/// The attempts of one state, in order.
fn attempts<'a>(report: &'a Value, state: &str) -> Vec<&'a Value> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == state)
        .collect()
}

fn history_files(s: &Server) -> Vec<String> {
    let dir = s.path("history-repo/training_history");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn outbox(s: &Server) -> String {
    std::fs::read_to_string(s.path("notifications/outbox.jsonl")).unwrap_or_default()
}

async fn production(s: &Server, model: &str) -> i64 {
    s.ok(
        "get_model_version",
        json!({"model_name": model, "stage": "Production"}),
    )
    .await["version"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn passing_run_and_approved_retry() {
    let s = Server::start().await;
    s.generate("classification", 3000, "datasets/c.csv");

    // A run that passes: registered in Production, history committed, success notified.
    let (id, done) = run(
        &s,
        issue(
            "wf-pass",
            "xgboost",
            json!({"n_estimators": 60, "max_depth": 4}),
            0.85,
            2,
        ),
        quick(json!({})),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        states(&done),
        [
            "PrepareData:succeeded",
            "TuneHyperparameters:succeeded",
            "TrainModel:succeeded",
            "EvaluateModel:succeeded",
            "JudgeResults:succeeded",
            "RegisterModel:succeeded",
            "WriteHistory:succeeded",
            "NotifySuccess:succeeded"
        ]
    );
    assert_eq!(production(&s, "wf-pass").await, 1);
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    assert_eq!(history_files(&s), [format!("train-{today}-001.md")]);
    let log = std::process::Command::new("git")
        .args([
            "-C",
            s.path("history-repo").to_str().unwrap(),
            "log",
            "--format=%s",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&log.stdout).contains(&id));
    let sent = outbox(&s);
    assert!(sent.contains("Training succeeded: wf-pass"));
    // Where the new Production version answers, and what it says about a row.
    assert!(sent.contains("/v2/models/wf-pass/infer"), "{sent}");
    assert!(sent.contains("Sample prediction: label "), "{sent}");

    // A run that fails its threshold, is approved with stronger settings, and passes.
    let (id, waiting) = run(
        &s,
        issue(
            "wf-retry",
            "random_forest",
            json!({"n_estimators": 1, "max_depth": 1}),
            0.92,
            2,
        ),
        quick(json!({})),
    )
    .await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    assert_eq!(waiting["state"], "WaitForOperatorInput");
    let token = task_token(&waiting);
    assert!(
        outbox(&s).contains(&token),
        "the approval request names the token"
    );
    s.err(
        "approve_workflow_step",
        json!({"task_token": "tok-nope", "decision": "approve"}),
        "no approval is waiting for that task token",
    )
    .await;
    s.err(
        "approve_workflow_step",
        json!({"task_token": token, "decision": "maybe"}),
        "decision must be approve or reject",
    )
    .await;
    s.ok(
        "approve_workflow_step",
        json!({
            "task_token": token, "decision": "approve", "actor": "alice",
            "hyperparameters": {"n_estimators": 60, "max_depth": 10}
        }),
    )
    .await;
    s.err(
        "approve_workflow_step",
        json!({"task_token": token, "decision": "approve"}),
        "already used",
    )
    .await;
    let done = settle(&s.client, &id, 120).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["context"]["retry_count"], 1);
    assert_eq!(attempts(&done, "TrainModel").len(), 2);
    assert_eq!(production(&s, "wf-retry").await, 1);
    assert_eq!(history_files(&s).len(), 2);
    let listed = s.ok("list_workflows", json!({"status": "succeeded"})).await;
    assert_eq!(listed["total"], 2);
}

#[tokio::test]
async fn failures_end_in_rollback_and_notification() {
    let s = Server::start().await;
    s.generate("classification", 2000, "datasets/c.csv");
    let weak = json!({"n_estimators": 1, "max_depth": 1});

    // Production v1 from a passing run, then a run that exhausts its retry: Production stays v1.
    let (_, done) = run(
        &s,
        issue("wf-roll", "xgboost", json!({"n_estimators": 40}), 0.85, 1),
        quick(json!({})),
    )
    .await;
    assert_eq!(done["status"], "succeeded");
    let (id, waiting) = run(
        &s,
        issue("wf-roll", "random_forest", weak.clone(), 0.95, 1),
        quick(json!({})),
    )
    .await;
    let token = task_token(&waiting);
    s.ok(
        "approve_workflow_step",
        json!({"task_token": token, "decision": "approve"}),
    )
    .await;
    let failed = settle(&s.client, &id, 120).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let st = states(&failed);
    let tail: Vec<&str> = st.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "JudgeResults:succeeded",
            "CheckRetryLimit:succeeded",
            "RollbackModel:succeeded",
            "NotifyFailure:succeeded"
        ]
    );
    assert!(reason(&failed).contains("after 1 retries"));
    assert_eq!(production(&s, "wf-roll").await, 1);
    let versions = s
        .ok("list_model_versions", json!({"model_name": "wf-roll"}))
        .await;
    assert_eq!(versions["total"], 1, "a failed run registers nothing");
    assert!(outbox(&s).contains("Training failed: wf-roll"));

    // Rejected, then a timed-out approval: both end failed, and the tokens stop working.
    let (id, waiting) = run(
        &s,
        issue("wf-reject", "random_forest", weak.clone(), 0.95, 2),
        quick(json!({})),
    )
    .await;
    let token = task_token(&waiting);
    s.ok(
        "approve_workflow_step",
        json!({"task_token": token, "decision": "reject", "comment": "data looks wrong"}),
    )
    .await;
    let failed = settle(&s.client, &id, 120).await;
    assert_eq!(failed["status"], "failed");
    assert!(reason(&failed).contains("rejected the retry: data looks wrong"));
    let (id, waiting) = run(
        &s,
        issue("wf-timeout", "random_forest", weak, 0.95, 2),
        quick(json!({"WaitForOperatorInput": 300})),
    )
    .await;
    let token = task_token(&waiting);
    let failed = settle_after_wait(&s, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(reason(&failed).contains("did not answer"));
    let late = s
        .call(
            "approve_workflow_step",
            json!({"task_token": token, "decision": "approve"}),
        )
        .await;
    assert!(
        late.is_error && (late.text.contains("expired") || late.text.contains("already used")),
        "{}",
        late.text
    );

    // An error in PrepareData: retried 3 times, then ErrorHandler → NotifyFailure.
    let body = issue("wf-error", "xgboost", json!({}), 0.5, 1)
        .replace("datasets/c.csv", "datasets/missing.csv");
    let (_, failed) = run(&s, body, quick(json!({}))).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        states(&failed),
        [
            "PrepareData:failed",
            "PrepareData:failed",
            "PrepareData:failed",
            "PrepareData:failed",
            "NotifyFailure:succeeded"
        ]
    );
    assert!(
        failed["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("missing.csv")
    );
    assert!(outbox(&s).contains("Workflow error in PrepareData"));

    // A per-state timeout: TrainModel stopped twice (one retry), then the failure path.
    let (_, failed) = run(
        &s,
        issue(
            "wf-slow",
            "random_forest",
            json!({"n_estimators": 5000}),
            0.5,
            1,
        ),
        quick(json!({"TrainModel": 300})),
    )
    .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let train = attempts(&failed, "TrainModel");
    assert_eq!(train.len(), 2);
    assert!(
        train[1]["error"]
            .as_str()
            .unwrap()
            .contains("did not finish within 0.3 s"),
        "{}",
        train[1]
    );
}

/// A waiting execution whose approval times out is picked up again by the worker.
async fn settle_after_wait(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s
            .ok("get_workflow_status", json!({"execution_id": id}))
            .await;
        if r["status"] == "failed" || r["status"] == "succeeded" {
            return r;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn issues_labels_and_bad_input() {
    let s = Server::start().await;
    s.generate("classification", 1500, "datasets/c.csv");
    let unlabelled = s
        .ok(
            "create_issue",
            json!({"title": "Train", "body": issue("m", "xgboost", json!({}), 0.8, 1)}),
        )
        .await;
    let n = unlabelled["issue"]["number"].as_u64().unwrap();
    s.err(
        "start_workflow",
        json!({"issue_number": n}),
        "is not labelled `mlops:train`",
    )
    .await;

    let bad = s
        .ok("create_issue", json!({"title": "Train", "body": "dataset: datasets/c.csv\nthreshold: high", "labels": ["mlops:train"]}))
        .await;
    let n = bad["issue"]["number"].as_u64().unwrap();
    s.err(
        "start_workflow",
        json!({"issue_number": n}),
        "has invalid parameters",
    )
    .await;
    let commented = s
        .ok(
            "get_issue",
            json!({"issue_number": n, "include_comments": true}),
        )
        .await;
    assert!(
        commented["comments"][0]["body"]
            .as_str()
            .unwrap()
            .contains("could not be started")
    );
    assert_eq!(
        s.ok("list_workflows", json!({})).await["total"],
        0,
        "no execution was started"
    );
    s.err(
        "start_workflow",
        json!({}),
        "give either issue_number or body",
    )
    .await;
    s.err(
        "get_workflow_status",
        json!({"execution_id": "wf-nope"}),
        "no workflow execution `wf-nope`",
    )
    .await;
    s.err(
        "list_workflows",
        json!({"limit": 0}),
        "limit must be 1 to 100",
    )
    .await;

    // A labelled, valid issue: the labels follow the run.
    let good = s
        .ok("create_issue", json!({"title": "Train", "body": issue("wf-issue", "xgboost", json!({"n_estimators": 30}), 0.8, 1), "labels": ["mlops:train"]}))
        .await;
    let n = good["issue"]["number"].as_u64().unwrap();
    let started = s
        .ok(
            "start_workflow",
            json!({"issue_number": n, "timing": quick(json!({}))}),
        )
        .await;
    let done = settle(&s.client, started["id"].as_str().unwrap(), 120).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let after = s
        .ok(
            "get_issue",
            json!({"issue_number": n, "include_comments": true}),
        )
        .await;
    let labels = after["issue"]["labels"].to_string();
    assert!(
        labels.contains("mlops:succeeded") && !labels.contains("mlops:running"),
        "{labels}"
    );
    assert!(after["comments"].to_string().contains("Training succeeded"));
}

#[tokio::test]
async fn killed_during_training_completes_once_after_restart() {
    let home = tempfile::tempdir().unwrap();
    let env = [("MLOPS_WORKFLOW_LEASE_SECONDS", "1")];
    let (a, pid) = Server::spawn(home.path(), &env).await;
    common::generate("classification", 4000, &home.path().join("datasets/c.csv"));
    let r = common::call(
        &a,
        "start_workflow",
        json!({
            "body": issue("wf-crash", "random_forest", json!({"n_estimators": 4000}), 0.8, 1),
            "timing": quick(json!({}))
        }),
    )
    .await;
    let id = r.structured["id"].as_str().unwrap().to_string();
    // Wait until TrainModel is under way, then kill the server without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = common::call(&a, "get_workflow_status", json!({"execution_id": id})).await;
        if st.structured["state"] == "TrainModel" {
            break;
        }
        assert!(Instant::now() < deadline, "{}", st.structured);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    drop(a);

    let b = Server::connect_with(home.path(), &env).await;
    let done = settle(&b, &id, 180).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let versions = common::call(&b, "list_model_versions", json!({"model_name": "wf-crash"})).await;
    assert_eq!(versions.structured["total"], 1, "registered exactly once");
    let history = std::fs::read_dir(home.path().join("history-repo/training_history"))
        .unwrap()
        .count();
    assert_eq!(history, 1, "one history file");
    assert_eq!(
        attempts(&done, "TrainModel").len(),
        2,
        "the killed attempt is recorded, then the resumed one"
    );
}

#[tokio::test]
async fn asl_export_is_accepted_by_step_functions() {
    let out = std::process::Command::new(common::BIN)
        .args(["workflow", "export-asl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let asl: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(asl["StartAt"], "PrepareData");
    assert_eq!(asl["States"]["TrainModel"]["TimeoutSeconds"], 3600);
    let Some(moto) = common::start_moto() else {
        return;
    };
    let created = std::process::Command::new("python3")
        .args([
            "-c",
            "import boto3,sys; c=boto3.client('stepfunctions',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing'); r=c.create_state_machine(name='mlops-train',definition=sys.stdin.read(),roleArn='arn:aws:iam::123456789012:role/sfn'); d=c.describe_state_machine(stateMachineArn=r['stateMachineArn']); print(d['status'], len(d['definition']))",
            &moto.endpoint(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&out.stdout)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let text = String::from_utf8_lossy(&created.stdout);
    assert!(text.starts_with("ACTIVE"), "{text}");
}

#[tokio::test]
async fn two_servers_share_one_postgres_queue() {
    let Some((url, _schema)) = mlops_db::testing::fresh_pg_schema("wfq").await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("MLOPS_DATABASE_URL", url.as_str()),
        ("MLOPS_WORKFLOW_LEASE_SECONDS", "30"),
    ];
    let a = Server::connect_with(home.path(), &env).await;
    let b = Server::connect_with(home.path(), &env).await;
    common::generate("classification", 600, &home.path().join("datasets/c.csv"));
    let mut ids = Vec::new();
    for i in 0..20 {
        let client = if i % 2 == 0 { &a } else { &b };
        let r = common::call(client, "start_workflow", json!({
            "body": issue("wf-queue", "xgboost", json!({"n_estimators": 10, "max_depth": 3}), 0.5, 1),
            "timing": quick(json!({}))
        }))
        .await;
        assert!(!r.is_error, "{}", r.text);
        ids.push(r.structured["id"].as_str().unwrap().to_string());
    }
    let mut workers = std::collections::BTreeSet::new();
    for id in &ids {
        let done = settle(&a, id, 300).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        // Every state succeeded exactly once and no attempt was left unfinished. A failed attempt
        // (a transient conflict, retried) is allowed and shown; the version and history counts
        // below prove no side effect happened twice.
        let steps = states(&done);
        let succeeded: Vec<&String> = steps.iter().filter(|s| s.ends_with(":succeeded")).collect();
        assert_eq!(succeeded.len(), 8, "{id}: {steps:?}");
        let mut names: Vec<&str> = succeeded
            .iter()
            .map(|s| s.split(':').next().unwrap())
            .collect();
        names.dedup();
        assert_eq!(names.len(), 8, "{id}: {steps:?}");
        assert!(
            !steps.iter().any(|s| s.ends_with(":started")),
            "{id}: {steps:?}"
        );
        for failed in done["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "failed")
        {
            eprintln!(
                "{id}: a retried attempt: {} {}",
                failed["state"], failed["error"]
            );
        }
        for step in done["steps"].as_array().unwrap() {
            workers.insert(step["worker"].as_str().unwrap().to_string());
        }
    }
    // Versions come in pages that fit the reply bound; follow next_offset.
    let mut numbers: Vec<i64> = Vec::new();
    let mut offset = Some(0);
    while let Some(o) = offset {
        let page = common::call(
            &a,
            "list_model_versions",
            json!({"model_name": "wf-queue", "limit": 100, "offset": o}),
        )
        .await;
        assert_eq!(page.structured["total"], 20);
        assert!(
            page.structured.get("truncated").is_none(),
            "a page fits whole"
        );
        numbers.extend(
            page.structured["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_i64().unwrap()),
        );
        offset = page.structured["next_offset"].as_i64();
    }
    numbers.sort();
    assert_eq!(numbers, (1..=20).collect::<Vec<_>>());
    let history = std::fs::read_dir(home.path().join("history-repo/training_history"))
        .unwrap()
        .count();
    assert_eq!(history, 20);
    assert_eq!(
        workers.len(),
        2,
        "both servers worked the queue: {workers:?}"
    );
}
