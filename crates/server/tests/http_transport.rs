//! `mlops-mcp serve --http`: the real binary on a local port. Health and readiness, the `/mcp`
//! guards (bearer tokens, Origin, body limit), MCP over streamable HTTP with rmcp's own client and
//! with raw JSON-RPC posts, the refusal to serve unauthenticated on a public address, graceful
//! shutdown on SIGTERM, per-token rate limits, two instances sharing one PostgreSQL and artifact
//! store, and the GitHub webhook end to end: a signed `labeled` event starts a
//! workflow that succeeds, and a signed `/approve` comment answers a waiting one.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{HttpServer, serve_command};

use hmac::{Hmac, Mac};
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-token-0123456789abcdef";
const SECRET: &str = "webhook-secret-for-tests";
const ACCEPT: &str = "application/json, text/event-stream";

/// POSTs a GitHub delivery, signed with `secret`, to the server's webhook.
async fn deliver(
    s: &HttpServer,
    event: &str,
    delivery: &str,
    payload: &Value,
    secret: &str,
) -> (u16, Value) {
    let body = serde_json::to_vec(payload).unwrap();
    let r = s
        .http
        .post(s.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature(secret, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A response header that the test expects, as text.
fn header<'r>(r: &'r reqwest::Response, name: &str) -> &'r str {
    r.headers()[name].to_str().unwrap()
}

/// `sha256=<hex>` HMAC of `body`, as GitHub signs deliveries.
fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> Value {
    let Value::Object(arguments) = args.clone() else {
        panic!("arguments must be an object")
    };
    let r: CallToolResult = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await
        .unwrap();
    assert!(r.is_error != Some(true), "{tool} {args}: {:?}", r.content);
    r.structured_content.unwrap_or(Value::Null)
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-http-test", "version": "1"}
    }})
}

/// The JSON-RPC message in a response that is either JSON or an event stream.
fn rpc_message(text: &str) -> Value {
    if let Ok(v) = serde_json::from_str(text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in {text}"))
}

#[tokio::test]
async fn health_guards_mcp_and_graceful_shutdown() {
    let mut s = HttpServer::start(&[(
        "MLOPS_HTTP_TOKENS",
        &format!("other-token-0123456789,{TOKEN}"),
    )])
    .await;

    let ready = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["artifact_store"], "ok");

    // No token, a wrong token, a foreign Origin, an oversized body.
    let post = |token: Option<&str>| {
        let mut r = s
            .http
            .post(s.url("/mcp"))
            .header("accept", ACCEPT)
            .header("content-type", "application/json");
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r
    };
    let r = post(None).json(&initialize_body()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = header(&r, "www-authenticate").to_string();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let text = r.text().await.unwrap();
    assert!(text.contains("MLOPS_HTTP_TOKENS"), "{text}");
    let r = post(Some("wrong-token-0123456789abcdef"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").contains("invalid_token"));
    let text = r.text().await.unwrap();
    assert!(!text.contains(TOKEN), "a token leaked: {text}");
    let r = post(Some(TOKEN))
        .header("origin", "https://evil.example")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let big = vec![b' '; 5 * 1024 * 1024];
    let r = post(Some(TOKEN)).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // A huge declared length is refused before its body is sent.
    let mut tcp = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 12];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&answer), "HTTP/1.1 413");

    // Raw JSON-RPC, as curl or any HTTP client would: initialize, then tools/list in the session.
    let r = post(Some(TOKEN))
        .header("origin", "http://localhost:3000")
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let session = r
        .headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_string();
    let init = rpc_message(&r.text().await.unwrap());
    assert_eq!(
        init["result"]["serverInfo"]["name"],
        "unified-mlops-mcp-server"
    );
    let r = post(Some(TOKEN))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = post(Some(TOKEN))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = rpc_message(&r.text().await.unwrap());
    let tools = list["result"]["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t["name"] == "train_supervised_classifier")
    );

    // Closing the session.
    let r = s
        .http
        .delete(s.url("/mcp"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // rmcp's own streamable HTTP client: initialize, tools/list, tools/call.
    s.generate(500, "datasets/c.csv");
    let client = s.client(Some(TOKEN)).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("unified-mlops-mcp-server")
    );
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.len() > 30, "{} tools", tools.len());
    let loaded = call(
        &client,
        "load_dataset",
        json!({"dataset_uri": "datasets/c.csv"}),
    )
    .await;
    assert_eq!(loaded["row_count"], 500, "{loaded}");
    // An unknown tool is a protocol error, over HTTP as over stdio.
    let err = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no_such_tool"), "{err}");

    // SIGTERM during a tool call: no new connections, the call finishes, the process exits 0.
    s.generate(20_000, "datasets/big.csv");
    let started = Instant::now();
    let training = tokio::spawn(async move {
        let r = client
            .call_tool(
                CallToolRequestParams::new("train_supervised_classifier").with_arguments(
                    json!({
                        "algorithm": "random_forest",
                        "train_data_uri": "datasets/big.csv",
                        "target_column": "label",
                        "training_job_name": "during-shutdown",
                        "hyperparameters": {"n_estimators": 200}
                    })
                    .as_object()
                    .unwrap()
                    .clone(),
                ),
            )
            .await;
        (r, started.elapsed(), client)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = started.elapsed();
    let pid = s.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.http.get(s.url("/healthz")).send().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (r, took, client) = training.await.unwrap();
    let r = r.expect("the call in flight at SIGTERM is answered");
    assert!(r.is_error != Some(true), "{:?}", r.content);
    let job = r.structured_content.unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    eprintln!("training took {took:?}; SIGTERM after {signalled:?}");
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = s.child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 30 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn refuses_unauthenticated_public_address() {
    let home = tempfile::tempdir().unwrap();
    let out = serve_command(home.path(), "0.0.0.0:0", &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MLOPS_HTTP_TOKENS") && err.contains("--allow-unauthenticated"),
        "{err}"
    );
    let out = serve_command(home.path(), "0.0.0.0:0", &[("MLOPS_HTTP_TOKENS", "short")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("16 characters"), "{err}");
    assert!(!err.contains("short"), "the token leaked: {err}");
}

fn issue_body(model: &str, threshold: f64, max_retry: u32) -> String {
    format!(
        "Please train.\n\n```yaml\ndataset: datasets/c.csv\ntarget_column: label\ntask_type: classification\nalgorithm: random_forest\nhyperparameters: {{n_estimators: 20}}\nmetric: accuracy\nthreshold: {threshold}\nmax_retry: {max_retry}\nnotify:\n  - github\nmodel_name: {model}\nseed: 3\n```\n"
    )
}

/// A GitHub `issues` `labeled` payload for issue `number`.
fn labeled(number: u64, title: &str, body: &str) -> Value {
    json!({
        "action": "labeled",
        "label": {"name": "mlops:train"},
        "issue": {
            "number": number, "title": title, "body": body, "state": "open",
            "labels": [{"name": "mlops:train"}], "user": {"login": "alice"}
        },
        "repository": {"full_name": "acme/models"},
        "sender": {"login": "alice"}
    })
}

fn comment(number: u64, text: &str) -> Value {
    json!({
        "action": "created",
        "issue": {"number": number, "title": "t", "state": "open"},
        "comment": {
            "id": 7, "body": text, "author_association": "OWNER",
            "user": {"login": "alice", "type": "User"}
        },
        "repository": {"full_name": "acme/models"},
        "sender": {"login": "alice"}
    })
}

/// Files an issue labelled for training over MCP; returns its number.
async fn file_issue(client: &RunningService<RoleClient, ()>, title: &str, body: &str) -> u64 {
    let issue = call(
        client,
        "create_issue",
        json!({"title": title, "body": body, "labels": ["mlops:train"]}),
    )
    .await;
    issue["issue"]["number"].as_u64().unwrap()
}

/// Polls the issue's newest execution until `done` says so; returns its status report.
async fn wait_execution(
    client: &RunningService<RoleClient, ()>,
    issue: u64,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = call(client, "list_workflows", json!({"issue_number": issue})).await;
        if let Some(id) = list["executions"][0]["id"].as_str() {
            let report = call(client, "get_workflow_status", json!({"execution_id": id})).await;
            if done(&report) {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "issue #{issue}: not done after {secs} s: {report}"
            );
        } else {
            assert!(
                Instant::now() < deadline,
                "issue #{issue}: no execution after {secs} s"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn states(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn github_webhook_starts_and_approves_workflows() {
    let s = HttpServer::start(&[("GITHUB_WEBHOOK_SECRET", SECRET)]).await;
    s.generate(800, "datasets/c.csv");
    // Without MLOPS_HTTP_TOKENS on a loopback address, /mcp needs no token.
    let client = s.client(None).await;

    // A labelled issue whose run passes.
    let body = issue_body("hook-pass", 0.6, 1);
    let n = file_issue(&client, "Train hook-pass", &body).await;
    let payload = labeled(n, "Train hook-pass", &body);
    let (status, reply) = deliver(&s, "issues", "d-1", &payload, "wrong-secret").await;
    assert_eq!(status, 401, "{reply}");
    let (status, reply) = deliver(&s, "issues", "d-1", &payload, SECRET).await;
    assert_eq!(status, 202, "{reply}");
    let (status, reply) = deliver(&s, "issues", "d-1", &payload, SECRET).await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("duplicate")));
    let done = wait_execution(&client, n, 180, |r| r["status"] != "running").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(states(&done).contains(&"RegisterModel".to_string()));
    let runs = call(&client, "list_workflows", json!({"issue_number": n})).await;
    assert_eq!(runs["total"], 1, "one delivery, one run: {runs}");

    // A run that misses its threshold waits for an operator; `/approve` in a comment answers it.
    let body = issue_body("hook-wait", 0.999, 1);
    let m = file_issue(&client, "Train hook-wait", &body).await;
    let (status, _) = deliver(
        &s,
        "issues",
        "d-2",
        &labeled(m, "Train hook-wait", &body),
        SECRET,
    )
    .await;
    assert_eq!(status, 202);
    let waiting = wait_execution(&client, m, 180, |r| r["status"] != "running").await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    let (status, reply) = deliver(
        &s,
        "issue_comment",
        "d-3",
        &comment(m, "/approve try again"),
        SECRET,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    // Approved: it retries (IncrementRetry → PrepareData), misses again and, out of retries, fails.
    let done = wait_execution(&client, m, 180, |r| {
        r["status"] != "running" && r["status"] != "waiting"
    })
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    let states = states(&done);
    assert!(states.contains(&"IncrementRetry".to_string()), "{states:?}");
    assert_eq!(
        states.iter().filter(|s| *s == "TrainModel").count(),
        2,
        "{states:?}"
    );

    // A command from someone who may not give it is ignored.
    let mut untrusted = comment(m, "/approve");
    untrusted["comment"]["author_association"] = json!("NONE");
    let (status, reply) = deliver(&s, "issue_comment", "d-4", &untrusted, SECRET).await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("ignored")));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn readyz_reports_an_unreachable_artifact_store() {
    // An S3 endpoint nobody listens on: the process is alive, not ready.
    let down = mlops_testkit::RefusedPort::new();
    let endpoint = down.url();
    let s = HttpServer::start(&[
        ("MLOPS_S3_BUCKET", "mlops-readyz"),
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ])
    .await;
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    assert_ne!(body["checks"]["artifact_store"], "ok", "{body}");
}

#[tokio::test]
async fn metrics_count_tool_calls_and_report_the_database() {
    let s = HttpServer::start(&[]).await;
    s.generate(300, "datasets/c.csv");
    let client = s.client(None).await;
    call(
        &client,
        "load_dataset",
        json!({"dataset_uri": "datasets/c.csv"}),
    )
    .await;
    let bad = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("load_dataset").with_arguments(
                json!({"dataset_uri": "datasets/none.csv"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(bad.is_error, Some(true));
    call(
        &client,
        "train_supervised_classifier",
        json!({
            "algorithm": "xgboost", "train_data_uri": "datasets/c.csv", "target_column": "label",
            "training_job_name": "m", "hyperparameters": {"n_estimators": 5}
        }),
    )
    .await;
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for expected in [
        "mlops_tool_calls_total{tool=\"load_dataset\",outcome=\"success\"} 1",
        "mlops_tool_calls_total{tool=\"load_dataset\",outcome=\"validation\"} 1",
        "mlops_tool_call_duration_seconds_count{tool=\"load_dataset\"} 2",
        "mlops_training_jobs{status=\"completed\"} 1",
        "# TYPE mlops_workflow_executions gauge",
        "# TYPE mlops_notifications gauge",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

#[tokio::test]
async fn requests_over_a_tokens_rate_get_429_and_other_tokens_are_unaffected() {
    const OTHER: &str = "other-token-0123456789";
    let s = HttpServer::start(&[
        ("MLOPS_HTTP_TOKENS", &format!("{TOKEN},{OTHER}")),
        ("MLOPS_HTTP_RATE_LIMIT", "1"),
        ("MLOPS_HTTP_RATE_BURST", "4"),
    ])
    .await;
    let post = |token: &str| {
        s.http
            .post(s.url("/mcp"))
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .json(&initialize_body())
            .send()
    };
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let r = post(TOKEN).await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            refused = Some(r);
        }
    }
    assert_eq!(statuses[..4], [200; 4], "the burst passes: {statuses:?}");
    assert!(statuses[4..].contains(&429), "{statuses:?}");
    let r = refused.unwrap();
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let text = r.text().await.unwrap();
    assert!(
        text.contains("MLOPS_HTTP_RATE_LIMIT") && !text.contains(TOKEN),
        "{text}"
    );
    // The other token has its own budget.
    assert_eq!(post(OTHER).await.unwrap().status(), 200);
    // And the first one recovers once its bucket refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(TOKEN).await.unwrap().status(), 200);
}

#[tokio::test]
async fn two_instances_share_one_postgres_and_artifact_store() {
    let Some((url, _schema)) = mlops_db::testing::fresh_pg_schema("http2").await else {
        return;
    };
    let env = [
        ("MLOPS_HTTP_TOKENS", TOKEN),
        ("MLOPS_DATABASE_URL", url.as_str()),
    ];
    let a = HttpServer::start(&env).await;
    let b = a.beside(&env).await;
    assert_ne!(a.base, b.base);
    a.generate(1500, "datasets/shared.csv");
    let on_a = a.client(Some(TOKEN)).await;
    let on_b = b.client(Some(TOKEN)).await;

    // Train and register through instance A ...
    let trained = call(
        &on_a,
        "train_supervised_classifier",
        json!({"algorithm": "random_forest", "train_data_uri": "datasets/shared.csv",
               "target_column": "label", "training_job_name": "shared-rf",
               "hyperparameters": {"n_estimators": 20}}),
    )
    .await;
    let registered = call(
        &on_a,
        "register_model",
        json!({"model_name": "shared", "model_uri": trained["model_uri"],
               "metrics": {"accuracy": trained["metrics"]["train_accuracy"]}}),
    )
    .await;
    assert_eq!(registered["version"], 1, "{registered}");

    // ... and read it through instance B: the same registry, jobs and artifacts.
    let got = call(
        &on_b,
        "get_model_version",
        json!({"model_name": "shared", "version": 1}),
    )
    .await;
    assert_eq!(got["artifact_uri"], trained["model_uri"], "{got}");
    assert_eq!(got["lineage"]["training_job_name"], "shared-rf", "{got}");
    let metrics = call(
        &on_b,
        "get_training_metrics",
        json!({"training_job_name": "shared-rf"}),
    )
    .await;
    assert_eq!(metrics["status"], "completed", "{metrics}");
    let loaded = call(
        &on_b,
        "load_model",
        json!({"model_uri": trained["model_uri"]}),
    )
    .await;
    assert_eq!(loaded["algorithm"], "random_forest", "{loaded}");
    // A second registration on B takes the next version number.
    let again = call(
        &on_b,
        "register_model",
        json!({"model_name": "shared", "model_uri": trained["model_uri"]}),
    )
    .await;
    assert_eq!(again["version"], 2, "{again}");
    on_a.cancel().await.unwrap();
    on_b.cancel().await.unwrap();
}
