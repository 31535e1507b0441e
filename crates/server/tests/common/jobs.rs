//! Training jobs driven through a raw MCP client: the helpers the backend tests share.

use std::path::Path;

use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Value, json};

use super::call;

pub type Client = RunningService<RoleClient, ()>;

/// Writes a generated classification table to `out`.
pub fn generate(rows: usize, out: &Path) {
    super::generate("classification", rows, out);
}

/// Calls a tool that must succeed; returns its structured content.
pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args.clone()).await;
    assert!(!r.is_error, "{tool} {args}: {}", r.text);
    r.structured
}

/// Calls a tool that must fail; returns its message.
pub async fn err(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args.clone()).await;
    assert!(r.is_error, "{tool} {args} should fail, got {}", r.text);
    r.text
}

/// Polls `get_training_metrics` until the job has `status`.
pub async fn wait_for(client: &Client, job: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let report = ok(
            client,
            "get_training_metrics",
            json!({"training_job_name": job}),
        )
        .await;
        if report["status"] == status {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "job {job} is not {status} after {within:?}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A small random-forest training request on `data`, with `extra` fields laid over it.
pub fn train_args(job: &str, data: &str, extra: Value) -> Value {
    let mut args = json!({
        "algorithm": "random_forest", "train_data_uri": data, "target_column": "label",
        "training_job_name": job, "hyperparameters": {"n_estimators": 20}
    });
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    args
}
