//! Long-running tools as MCP tasks (SEP-2663) for a client that declares the tasks extension:
//! a training call answers with a task handle, `tasks/get` shows it working and then its result,
//! `tasks/cancel` stops a training job (recorded as cancelled), quick tools still answer at once,
//! and an unknown task id is an error.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig,
    GetTaskParams, Implementation, TaskPayload, TaskStatus,
};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

async fn tasks_client(home: &std::path::Path) -> RunningService<RoleClient, ClientConfig> {
    let config = ClientConfig::new(
        ClientCapabilities::builder().enable_tasks().build(),
        Implementation::new("tasks-test", "0"),
    );
    config
        .serve(common::server_process(home, &[]))
        .await
        .unwrap()
}

fn params(tool: &str, args: Value) -> CallToolRequestParams {
    let Value::Object(arguments) = args else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(tool.to_string()).with_arguments(arguments)
}

/// Calls a quick tool, which answers at once even for a tasks client.
async fn quick(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    args: Value,
) -> Value {
    match client.call_tool_once(params(tool, args)).await.unwrap() {
        CallToolResponse::Complete(c) => {
            assert_ne!(c.is_error, Some(true), "{tool}: {c:?}");
            c.structured_content.unwrap_or_default()
        }
        other => panic!("{tool} should answer at once, got {other:?}"),
    }
}

/// Polls `tasks/get` until the task ends; returns every status seen and the final payload.
async fn wait_for(
    client: &RunningService<RoleClient, ClientConfig>,
    id: &str,
) -> (Vec<TaskStatus>, TaskPayload) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let t = client.get_task(GetTaskParams::new(id)).await.unwrap().task;
        seen.push(t.task.status);
        if t.task.status.is_terminal() {
            return (seen, t.payload);
        }
        assert!(Instant::now() < deadline, "task {id} did not end: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn training_runs_as_a_task_and_can_be_cancelled() {
    let s = Server::start().await;
    s.generate("classification", 3000, "datasets/c.csv");
    s.generate("classification", 30000, "datasets/big.csv");
    let client = tasks_client(s.home.path()).await;

    // A training call becomes a task; its result is the tool's usual result.
    let r = client
        .call_tool_once(params(
            "train_supervised_classifier",
            json!({"algorithm": "random_forest", "train_data_uri": "datasets/c.csv",
                   "target_column": "label", "training_job_name": "rf-task",
                   "hyperparameters": {"n_estimators": 60}}),
        ))
        .await
        .unwrap();
    let CallToolResponse::Task(created) = r else {
        panic!("expected a task, got {r:?}")
    };
    assert_eq!(created.task.status, TaskStatus::Working);
    let (seen, payload) = wait_for(&client, &created.task.task_id).await;
    assert_eq!(seen.last(), Some(&TaskStatus::Completed), "{seen:?}");
    let TaskPayload::Completed { result } = payload else {
        panic!("{payload:?}")
    };
    let structured = &result["structuredContent"];
    assert_eq!(structured["status"], "completed", "{result:?}");
    assert_eq!(structured["training_job_name"], "rf-task");
    assert!(structured["metrics"]["train_accuracy"].as_f64().unwrap() > 0.8);
    assert!(s.path("models/rf-task/manifest.json").exists());

    let page = quick(
        &client,
        "load_dataset",
        json!({"dataset_uri": "datasets/c.csv", "limit": 1}),
    )
    .await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);

    // Cancelling a long training task stops the job.
    let r = client
        .call_tool_once(params(
            "train_supervised_classifier",
            json!({"algorithm": "random_forest", "train_data_uri": "datasets/big.csv",
                   "target_column": "label", "training_job_name": "rf-long",
                   "hyperparameters": {"n_estimators": 5000}}),
        ))
        .await
        .unwrap();
    let CallToolResponse::Task(long) = r else {
        panic!("expected a task, got {r:?}")
    };
    // Wait until the job is really training before cancelling it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = client
            .call_tool_once(params(
                "get_training_metrics",
                json!({"training_job_name": "rf-long"}),
            ))
            .await
            .unwrap();
        if let CallToolResponse::Complete(c) = &m
            && c.structured_content
                .as_ref()
                .is_some_and(|v| v["status"] == "running")
        {
            break;
        }
        assert!(Instant::now() < deadline, "rf-long never started: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .cancel_task(CancelTaskParams::new(long.task.task_id.clone()))
        .await
        .unwrap();
    let (seen, payload) = wait_for(&client, &long.task.task_id).await;
    assert_eq!(seen.last(), Some(&TaskStatus::Cancelled), "{seen:?}");
    assert!(matches!(payload, TaskPayload::Cancelled), "{payload:?}");
    let m = quick(
        &client,
        "get_training_metrics",
        json!({"training_job_name": "rf-long"}),
    )
    .await;
    assert_eq!(m["status"], "cancelled", "{m}");
    assert!(!s.path("models/rf-long/manifest.json").exists());

    let unknown = client
        .get_task(GetTaskParams::new("no-such-task"))
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("no-such-task"), "{unknown}");
    client.cancel().await.unwrap();
}
