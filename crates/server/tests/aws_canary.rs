//! The server against a local moto server (the AWS stand-in): secrets from Secrets Manager, logs
//! shipped to CloudWatch Logs, metrics to CloudWatch, artifacts on S3 with a KMS key made by KMS
//! `CreateKey`. A canary secret is configured and sent through a tool's arguments; no line on
//! stderr and no CloudWatch log event may contain it. Also the faults: Secrets Manager down at
//! start-up, CloudWatch Logs unreachable. Without `moto_server` on PATH these tests fail (CI
//! installs it).

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlops_aws::{AwsClient, AwsConfig, QueryClient, Service};
use rmcp::ServiceExt;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// moto, required: these tests have no skip path.
fn start_moto() -> common::Moto {
    common::Moto::start()
}

fn aws(endpoint: &str) -> AwsConfig {
    AwsConfig::with_static_credentials("us-east-1", "testing", "testing")
        .unwrap()
        .with_endpoint(endpoint)
        .unwrap()
}

/// The server on stdio with only `env` (and PATH), its stderr collected line by line.
async fn spawn_server(
    env: &[(&str, &str)],
) -> (
    RunningService<rmcp::RoleClient, ()>,
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (transport, stderr) =
        TokioChildProcess::builder(tokio::process::Command::new(common::BIN).configure(|cmd| {
            cmd.arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env);
        }))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let collected = lines.clone();
    let mut reader = tokio::io::BufReader::new(stderr.unwrap()).lines();
    // Ends when the server exits and its stderr closes.
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = reader.next_line().await {
            collected.lock().unwrap().push(line);
        }
    });
    (().serve(transport).await.unwrap(), lines, reader)
}

/// Every event of a log stream, oldest first.
async fn log_events(logs: &AwsClient, group: &str, stream: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut input =
            json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true});
        if let Some(t) = &token {
            input["nextToken"] = t.clone().into();
        }
        let page = logs.call("GetLogEvents", input).await.unwrap();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        out.extend(
            events
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_string()),
        );
        let next = page["nextForwardToken"].as_str().map(str::to_string);
        if events.is_empty() || next == token {
            return out;
        }
        token = next;
    }
}

#[tokio::test]
async fn a_canary_secret_never_reaches_stderr_or_cloudwatch() {
    let moto = start_moto();
    let config = aws(&moto.endpoint());
    let run = std::process::id();
    let prefix = format!("canary-{run}/");
    // The canary is a secret of its own (the webhook secret) and part of another (a webhook URL).
    let canary = format!("CANARY-{run}-d9f1c2b7e4a8");
    // Nothing listens on port 9: a delivery to the URL fails and its error is recorded, which must
    // not reveal the URL either. nothing listens on port 9, so a delivery fails and its
    // error is recorded, which must not reveal the URL either.
    let webhook = format!("http://127.0.0.1:9/services/T000/B000/{canary}");
    let sm = AwsClient::json(&config, Service::SECRETS_MANAGER, "secretsmanager");
    for (name, value) in [
        ("slack-webhook-url", webhook.as_str()),
        ("github-webhook-secret", canary.as_str()),
    ] {
        sm.call(
            "CreateSecret",
            json!({"Name": format!("{prefix}{name}"), "SecretString": value}),
        )
        .await
        .unwrap();
    }
    let kms = Service {
        signing_name: "kms",
        endpoint_prefix: "kms",
        env_id: "KMS",
    };
    let key = AwsClient::json(&config, kms, "TrentService")
        .call("CreateKey", json!({"Description": "mlops artifacts"}))
        .await
        .unwrap();
    let key_arn = key["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let bucket = format!("canary-{run}");
    assert!(
        moto.status("PUT", &format!("/{bucket}"), b"")
            .starts_with("HTTP/1.1 200")
    );

    let home = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let raw = local.path().join("raw.csv");
    let status = Command::new(common::BIN)
        .args([
            "datasets",
            "generate",
            "classification",
            "--rows",
            "300",
            "--out",
        ])
        .arg(&raw)
        .status()
        .unwrap();
    assert!(status.success());

    let group = format!("/mlops/canary-{run}");
    let namespace = format!("MLOpsCanary{run}");
    let home_path = home.path().display().to_string();
    let data_dirs = local.path().display().to_string();
    let (client, stderr, reader) = spawn_server(&[
        ("MLOPS_HOME", &home_path),
        ("LOG_LEVEL", "DEBUG"),
        ("AWS_ENDPOINT_URL", &moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("MLOPS_SECRETS_MANAGER", "1"),
        ("MLOPS_SECRETS_PREFIX", &prefix),
        ("CLOUDWATCH_LOG_GROUP", &group),
        ("CLOUDWATCH_LOG_STREAM", "server-1"),
        ("CLOUDWATCH_FLUSH_SECONDS", "0.5"),
        ("CLOUDWATCH_METRICS", "1"),
        ("CLOUDWATCH_METRICS_NAMESPACE", &namespace),
        ("CLOUDWATCH_METRICS_INTERVAL_SECONDS", "1"),
        ("MLOPS_S3_BUCKET", &bucket),
        ("MLOPS_S3_KMS_KEY_ID", &key_arn),
        ("MLOPS_DATA_DIRS", &data_dirs),
        ("MLOPS_NOTIFY_MAX_ATTEMPTS", "1"),
    ])
    .await;

    // Slack is configured: its webhook URL came from Secrets Manager.
    let templates = common::call(&client, "list_notification_templates", json!({})).await;
    assert!(!templates.is_error, "{}", templates.text);
    assert!(
        templates.structured["available_channels"]
            .as_array()
            .unwrap()
            .contains(&json!("slack")),
        "{}",
        templates.structured
    );
    let sent = common::call(
        &client,
        "send_notification",
        json!({"channels": ["slack"], "title": "canary", "message": "hello", "wait_seconds": 5}),
    )
    .await;
    assert!(!sent.text.contains(&canary), "{}", sent.text);
    // The canary in a tool's arguments is masked in the log line that records them.
    let probe = common::call(
        &client,
        "load_dataset",
        json!({"dataset_uri": format!("{}/{canary}.csv", local.path().display())}),
    )
    .await;
    assert!(probe.is_error);
    let saved = common::call(
        &client,
        "save_processed_data",
        json!({"dataset_uri": raw.display().to_string(), "output_name": "canary"}),
    )
    .await;
    assert!(!saved.is_error, "{}", saved.text);
    assert_eq!(
        saved.structured["uri"],
        format!("s3://{bucket}/processed/canary/raw.parquet")
    );

    // Closing stdin stops the server, which sends its last log lines and metrics before exiting.
    client.cancel().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the server exits")
        .unwrap();

    let stderr = stderr.lock().unwrap().clone();
    assert!(stderr.len() >= 8, "{stderr:#?}");
    for line in &stderr {
        assert!(!line.contains(&canary), "canary on stderr: {line}");
    }
    assert!(
        stderr.iter().any(|l| l.contains("tool call started")
            && l.contains("load_dataset")
            && l.contains("***")),
        "the canary argument is logged masked: {stderr:#?}"
    );

    let logs = AwsClient::json(&config, Service::CLOUDWATCH_LOGS, "Logs_20140328");
    let events = log_events(&logs, &group, "server-1").await;
    for event in &events {
        assert!(!event.contains(&canary), "canary in CloudWatch: {event}");
    }
    // Every line the server wrote to stderr arrived, in order.
    assert_eq!(events, stderr);

    let cw = QueryClient::new(&config, Service::CLOUDWATCH, "2010-08-01");
    let metrics = cw
        .call("ListMetrics", &[("Namespace".into(), namespace.clone())])
        .await
        .unwrap();
    for expected in [
        "<MetricName>ToolCalls</MetricName>",
        "<MetricName>ToolLatency</MetricName>",
        "<MetricName>ToolErrors</MetricName>",
        "<Value>save_processed_data</Value>",
    ] {
        assert!(metrics.contains(expected), "{expected}: {metrics}");
    }

    // The object is encrypted with the key from KMS (moto answers reads of SSE-KMS objects only
    // when signed, so boto3 asks).
    let head = Command::new("python3")
        .args(["-c", "import boto3,sys; h=boto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing').head_object(Bucket=sys.argv[2],Key='processed/canary/raw.parquet'); print(h['ServerSideEncryption'], h['SSEKMSKeyId'])"])
        .arg(moto.endpoint())
        .arg(&bucket)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).trim(),
        format!("aws:kms {key_arn}"),
        "{}",
        String::from_utf8_lossy(&head.stderr)
    );
}

#[tokio::test]
async fn secrets_manager_down_at_start_up_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let down = mlops_testkit::RefusedPort::new();
    let out = Command::new(common::BIN)
        .arg("--list-tools")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MLOPS_HOME", home.path())
        .env("MLOPS_SECRETS_MANAGER", "1")
        .env("AWS_ENDPOINT_URL", down.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "cannot read secret GITHUB_TOKEN from AWS Secrets Manager (mlops/github-token)"
        ) && stderr.contains("cannot reach AWS secretsmanager"),
        "{stderr}"
    );
}

#[tokio::test]
async fn cloudwatch_unreachable_leaves_tool_calls_and_stderr_working() {
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().display().to_string();
    let down = mlops_testkit::RefusedPort::new();
    let dead = down.url();
    let (client, stderr, reader) = spawn_server(&[
        ("MLOPS_HOME", &home_path),
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &dead),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("CLOUDWATCH_LOG_GROUP", "/mlops/unreachable"),
        ("CLOUDWATCH_FLUSH_SECONDS", "0.2"),
    ])
    .await;
    for _ in 0..5 {
        let started = Instant::now();
        let r = common::call(&client, "list_notification_templates", json!({})).await;
        assert!(!r.is_error, "{}", r.text);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a tool call never waits on CloudWatch"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    client.cancel().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the server exits despite unsent log lines")
        .unwrap();
    let stderr = stderr.lock().unwrap().clone();
    assert!(
        stderr
            .iter()
            .filter(|l| l.contains("tool call succeeded"))
            .count()
            == 5,
        "{stderr:#?}"
    );
    let warning: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("cannot ship log lines to CloudWatch Logs"))
        .collect();
    assert_eq!(warning.len(), 1, "warned once per outage: {stderr:#?}");
    let warning: Value = serde_json::from_str(warning[0]).unwrap();
    assert_eq!(warning["level"], "WARN");
}
