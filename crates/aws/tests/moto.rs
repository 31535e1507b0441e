//! Secrets Manager, CloudWatch Logs and CloudWatch metrics against a local moto server, and the
//! faults around them: a store that is down, a missing secret, CloudWatch unreachable.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlops_aws::{
    AwsClient, AwsConfig, LogShipper, LogShipperOptions, MetricsPublisher, QueryClient,
    RetryPolicy, SecretsManager, Service,
};
use mlops_aws::{Datum, tool_data};
use mlops_core::ToolMetrics;
use mlops_core::logging::{mask_str, register_secret};
use mlops_core::secrets::{EnvSecrets, SecretChain};
use serde_json::{Value, json};
use support::{config, config_at, unique};

fn secrets_client() -> AwsClient {
    AwsClient::json(&config(), Service::SECRETS_MANAGER, "secretsmanager")
}

/// A writer the test can read back (stands in for stderr).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// A client configuration for a service that is down (`port` refuses connections), retrying
/// briefly so that the test sees the failure quickly.
fn unreachable_config(port: &mlops_testkit::RefusedPort) -> AwsConfig {
    config_at(&port.url()).with_retry(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    })
}

#[tokio::test]
async fn secrets_are_read_cached_and_rotated_after_the_ttl() {
    let prefix = format!("{}/", unique("mlops"));
    let sm = secrets_client();
    sm.call(
        "CreateSecret",
        json!({"Name": format!("{prefix}slack-webhook-url"), "SecretString": "https://hooks.slack.test/T000/B000/first-value"}),
    )
    .await
    .unwrap();
    let ttl = Duration::from_millis(800);
    let chain = SecretChain::new(
        vec![
            Arc::new(EnvSecrets::from_map(Default::default())),
            Arc::new(SecretsManager::new(&config(), &prefix)),
        ],
        ttl,
    );
    let first = chain
        .resolve(&["SLACK_WEBHOOK_URL", "SMTP_PASSWORD"])
        .await
        .unwrap();
    assert_eq!(
        first["SLACK_WEBHOOK_URL"],
        "https://hooks.slack.test/T000/B000/first-value"
    );
    assert!(
        !first.contains_key("SMTP_PASSWORD"),
        "a secret that does not exist is simply not set"
    );
    assert_eq!(
        mask_str("posting to https://hooks.slack.test/T000/B000/first-value"),
        "posting to ***"
    );

    let rotated_at = Instant::now();
    sm.call(
        "PutSecretValue",
        json!({"SecretId": format!("{prefix}slack-webhook-url"), "SecretString": "https://hooks.slack.test/T000/B000/second-value"}),
    )
    .await
    .unwrap();
    let cached = chain.get("SLACK_WEBHOOK_URL").await.unwrap().unwrap();
    if rotated_at.elapsed() < ttl {
        assert_eq!(
            cached, "https://hooks.slack.test/T000/B000/first-value",
            "within the TTL the cached value is used"
        );
    }
    tokio::time::sleep(ttl).await;
    assert_eq!(
        chain.get("SLACK_WEBHOOK_URL").await.unwrap().as_deref(),
        Some("https://hooks.slack.test/T000/B000/second-value")
    );
    assert_eq!(
        mask_str("https://hooks.slack.test/T000/B000/second-value"),
        "***"
    );
}

#[tokio::test]
async fn secrets_manager_down_at_start_up_names_the_secret() {
    let port = mlops_testkit::RefusedPort::new();
    let down = unreachable_config(&port);
    let chain = SecretChain::new(
        vec![
            Arc::new(EnvSecrets::from_map(
                [(
                    "SLACK_WEBHOOK_URL".to_string(),
                    "https://from.env/x".to_string(),
                )]
                .into(),
            )),
            Arc::new(SecretsManager::new(&down, "mlops/")),
        ],
        Duration::from_secs(60),
    );
    // A secret the environment provides never reaches the store...
    assert_eq!(
        chain.get("SLACK_WEBHOOK_URL").await.unwrap().as_deref(),
        Some("https://from.env/x")
    );
    // ...one that only the store has is a clear error.
    let e = chain
        .resolve(&["GITHUB_TOKEN"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "cannot read secret GITHUB_TOKEN from AWS Secrets Manager (mlops/github-token)"
        ) && e.contains("cannot reach AWS secretsmanager"),
        "{e}"
    );
}

#[tokio::test]
async fn log_lines_arrive_in_the_log_group_masked() {
    let group = unique("/mlops/test");
    let secret = "canary-logs-secret-0xC0FFEE";
    register_secret(secret);
    let mut options = LogShipperOptions::new(&group, "server-1");
    options.flush_interval = Duration::from_millis(200);
    let shipper = LogShipper::start(&config(), options);
    let stderr = Captured::default();
    let mut writer = shipper.writer(Box::new(stderr.clone()));
    for i in 0..25 {
        writeln!(
            writer,
            "{}",
            json!({"level": "INFO", "message": format!("line {i}")})
        )
        .unwrap();
    }
    // The log layer masks before writing; the shipper masks again in case a line was not.
    writeln!(
        writer,
        "{}",
        json!({"level": "WARN", "message": format!("leaked {secret}")})
    )
    .unwrap();
    assert_eq!(
        stderr.lines().len(),
        26,
        "every line reaches stderr at once"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    writeln!(writer, "{}", json!({"message": "after the first batch"})).unwrap();
    assert!(
        shipper.shutdown(Duration::from_secs(10)).await,
        "all lines sent"
    );

    let logs = AwsClient::json(&config(), Service::CLOUDWATCH_LOGS, "Logs_20140328");
    let out = logs
        .call(
            "GetLogEvents",
            json!({"logGroupName": group, "logStreamName": "server-1", "startFromHead": true}),
        )
        .await
        .unwrap();
    let messages: Vec<Value> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(messages.len(), 27, "{messages:?}");
    assert_eq!(messages[0]["message"], "line 0");
    assert_eq!(messages[25]["message"], "leaked ***");
    assert_eq!(messages[26]["message"], "after the first batch");
    assert!(!out.to_string().contains(secret));
}

#[tokio::test]
async fn cloudwatch_unreachable_leaves_stderr_flowing_and_counts_dropped_lines() {
    let port = mlops_testkit::RefusedPort::new();
    let down = unreachable_config(&port);
    let mut options = LogShipperOptions::new("/mlops/down", "s");
    options.flush_interval = Duration::from_millis(50);
    options.buffer_lines = 20;
    let shipper = LogShipper::start(&down, options);
    let stderr = Captured::default();
    let mut writer = shipper.writer(Box::new(stderr.clone()));
    let started = Instant::now();
    for i in 0..200 {
        writeln!(writer, "{{\"message\":\"line {i}\"}}").unwrap();
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    let write_time = started.elapsed();
    assert_eq!(stderr.lines().len(), 200, "stderr gets every line");
    assert!(
        write_time < Duration::from_secs(2),
        "writing never waits on CloudWatch: {write_time:?}"
    );
    // At most the buffer and one batch in flight are kept.
    assert!(
        shipper.dropped_lines() >= 160,
        "{}",
        shipper.dropped_lines()
    );
    assert!(
        !shipper.shutdown(Duration::from_secs(3)).await,
        "unsent lines are reported"
    );
}

#[tokio::test]
async fn tool_metrics_reach_cloudwatch() {
    let namespace = unique("MLOpsMCPTest");
    let m = ToolMetrics::default();
    m.record("load_dataset", "success", Duration::from_millis(12));
    m.record("load_dataset", "not_found", Duration::from_millis(3));
    m.record("train_model", "success", Duration::from_millis(900));
    let publisher = MetricsPublisher::new(&config(), &namespace);
    let handle = publisher.clone().spawn(Duration::from_secs(3600), move || {
        let mut data = tool_data(&m.take_window());
        data.push(Datum::count(
            "WorkflowExecutions",
            &[("Status", "succeeded")],
            4.0,
        ));
        async move { data }
    });
    // Stopping publishes once more: the data above goes out now, not in an hour.
    handle.shutdown(Duration::from_secs(10)).await;

    let cw = QueryClient::new(&config(), Service::CLOUDWATCH, "2010-08-01");
    let list = cw
        .call("ListMetrics", &[("Namespace".into(), namespace.clone())])
        .await
        .unwrap();
    for name in [
        "ToolCalls",
        "ToolErrors",
        "ToolLatency",
        "WorkflowExecutions",
    ] {
        assert!(
            list.contains(&format!("<MetricName>{name}</MetricName>")),
            "{name}: {list}"
        );
    }
    assert!(list.contains("<Value>load_dataset</Value>"), "{list}");

    let now = chrono::Utc::now();
    let stats = |metric: &str, statistic: &str| {
        let params = vec![
            ("Namespace".to_string(), namespace.clone()),
            ("MetricName".into(), metric.into()),
            ("Dimensions.member.1.Name".into(), "Tool".into()),
            ("Dimensions.member.1.Value".into(), "load_dataset".into()),
            (
                "StartTime".into(),
                (now - chrono::Duration::minutes(10)).to_rfc3339(),
            ),
            (
                "EndTime".into(),
                (now + chrono::Duration::minutes(10)).to_rfc3339(),
            ),
            ("Period".into(), "3600".into()),
            ("Statistics.member.1".into(), statistic.into()),
        ];
        let cw = cw.clone();
        async move { cw.call("GetMetricStatistics", &params).await.unwrap() }
    };
    let calls = stats("ToolCalls", "Sum").await;
    assert!(calls.contains("<Sum>2.0</Sum>"), "{calls}");
    let errors = stats("ToolErrors", "Sum").await;
    assert!(errors.contains("<Sum>1.0</Sum>"), "{errors}");
}
