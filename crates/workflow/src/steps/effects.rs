//! Side effects the steps share: the labels that follow an execution on its issue, and
//! notifications on the request's channels.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::engine::WorkflowEngine;
use crate::error::WorkflowError;

/// Labels that follow an execution's state on its issue.
pub(crate) const RUNNING: &str = "mlops:running";
pub(crate) const AWAITING: &str = "mlops:awaiting-approval";
pub(crate) const SUCCEEDED: &str = "mlops:succeeded";
pub(crate) const FAILED: &str = "mlops:failed";

/// Best effort: label changes and comments never fail an execution.
async fn quietly(engine: &WorkflowEngine, tool: &str, args: Value) {
    if let Err(e) = engine.call(tool, args, Duration::from_secs(60)).await {
        tracing::warn!(tool, error = %e, "workflow side effect failed");
    }
}

/// Adds `add` to the execution's issue and removes `remove` (nothing without an issue).
pub(crate) async fn set_label(engine: &WorkflowEngine, c: &Context, add: &str, remove: &[&str]) {
    let Some(n) = c.issue_number else { return };
    quietly(
        engine,
        "add_labels",
        json!({"issue_number": n, "labels": [add]}),
    )
    .await;
    for label in remove {
        quietly(
            engine,
            "remove_label",
            json!({"issue_number": n, "label": label}),
        )
        .await;
    }
}

/// Sends a templated notification on the request's configured channels (the outbox file when
/// none is). Without a GitHub token the "github" channel becomes a comment on the local issue.
pub(crate) async fn notify(
    engine: &WorkflowEngine,
    c: &Context,
    template: &str,
    context: Map<String, Value>,
    timeout: Duration,
) -> Result<Value, WorkflowError> {
    let configured = engine.channels();
    let requested: Vec<&str> = c.request.notify.iter().map(|n| n.kind.as_str()).collect();
    let mut channels: Vec<&str> = requested
        .iter()
        .copied()
        .filter(|k| configured.iter().any(|c| c == k))
        .filter(|k| *k != "github" || c.issue_number.is_some())
        .collect();
    if channels.is_empty() {
        channels.push("outbox_file");
    }
    let out = engine
        .call(
            "send_notification",
            json!({
                "channels": channels,
                "template": template,
                "context": context,
                "issue_number": c.issue_number,
            }),
            timeout,
        )
        .await?;
    let local_comment = requested.contains(&"github") && !configured.iter().any(|k| k == "github");
    if let (true, Some(n)) = (local_comment, c.issue_number) {
        let rendered = engine
            .call(
                "render_notification_template",
                json!({"template": template, "context": context}),
                timeout,
            )
            .await?;
        let r = &rendered["rendered"];
        let body = format!(
            "### {}\n\n{}",
            r["title"].as_str().unwrap_or_default(),
            r["body"]
                .as_str()
                .filter(|b| !b.is_empty())
                .or(r["summary"].as_str())
                .unwrap_or_default()
        );
        engine
            .call(
                "comment_on_issue",
                json!({"issue_number": n, "body": body}),
                timeout,
            )
            .await?;
    }
    Ok(
        json!({"channels": channels, "notification": out["notification_id"], "issue_comment": local_comment}),
    )
}
