//! What the GitHub webhook's verified events do: an issue labelled `mlops:train` starts its
//! training workflow, and an owner's `/approve`, `/retry` or `/reject` comment answers the approval
//! a waiting execution asked for. Both go through the tools (`start_workflow`,
//! `approve_workflow_step`, `comment_on_issue`), as any client would.

use std::sync::Arc;

use mlops_core::{ToolContext, ToolRouter};
use mlops_github::{ApprovalCommand, WebhookEvent};
use mlops_workflow::{Status, WorkflowEngine};
use serde_json::{Value, json};
use tokio::sync::mpsc;

async fn call(router: &ToolRouter, tool: &str, args: Value) -> Result<Value, String> {
    router
        .call(tool, args, ToolContext::default())
        .await
        .map(|out| out.structured)
        .map_err(|e| mlops_core::logging::mask_str(&e.to_string()))
}

/// Comments on an issue, best effort: a failure is logged, not returned.
async fn comment(router: &ToolRouter, issue: u64, body: &str) {
    if let Err(e) = call(
        router,
        "comment_on_issue",
        json!({"issue_number": issue, "body": body}),
    )
    .await
    {
        tracing::warn!(issue_number = issue, error = %e, "could not comment on the issue");
    }
}

/// Turns webhook events into workflow starts and approval decisions, one at a time.
pub(crate) async fn process_webhook_events(
    mut rx: mpsc::Receiver<WebhookEvent>,
    router: ToolRouter,
    workflows: Arc<WorkflowEngine>,
) {
    while let Some(event) = rx.recv().await {
        match event {
            WebhookEvent::TrainingRequested {
                delivery_id, issue, ..
            } => training_requested(&router, &workflows, &delivery_id, issue.number).await,
            WebhookEvent::Command {
                delivery_id,
                issue_number,
                command,
                arguments,
                user,
                ..
            } => {
                approval(
                    &router,
                    &workflows,
                    &delivery_id,
                    issue_number,
                    command,
                    &arguments,
                    &user,
                )
                .await
            }
        }
    }
}

/// The newest execution of `issue` in `status`, if any.
async fn active_execution(
    workflows: &WorkflowEngine,
    issue: u64,
    status: Status,
) -> Result<Option<mlops_workflow::Execution>, String> {
    let (executions, _) = workflows
        .store()
        .list(Some(status), Some(issue as i64), 1, 0)
        .await
        .map_err(|e| e.to_string())?;
    Ok(executions.into_iter().next())
}

async fn training_requested(
    router: &ToolRouter,
    workflows: &WorkflowEngine,
    delivery: &str,
    issue: u64,
) {
    // A label removed and added again must not start a second run beside the first.
    for status in [Status::Running, Status::Waiting] {
        match active_execution(workflows, issue, status).await {
            Ok(Some(e)) => {
                tracing::info!(delivery, issue_number = issue, execution_id = %e.id, "training already in progress; not starting another");
                comment(
                    router,
                    issue,
                    &format!(
                        "Training is already in progress for this issue (execution `{}`, {}); no new run was started.",
                        e.id,
                        e.status.as_str()
                    ),
                )
                .await;
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(delivery, issue_number = issue, error = %e, "cannot list the issue's executions")
            }
        }
    }
    match call(router, "start_workflow", json!({"issue_number": issue})).await {
        Ok(out) => {
            let id = out["execution"]["id"]
                .as_str()
                .or(out["id"].as_str())
                .unwrap_or("?");
            tracing::info!(
                delivery,
                issue_number = issue,
                execution_id = id,
                "workflow started from the webhook"
            );
            comment(
                router,
                issue,
                &format!("Training workflow started: execution `{id}`."),
            )
            .await;
        }
        // Invalid parameters were already commented on the issue by start_workflow.
        Err(e) if e.contains("commented on the issue") => {
            tracing::info!(delivery, issue_number = issue, error = %e, "training request rejected");
        }
        Err(e) => {
            tracing::warn!(delivery, issue_number = issue, error = %e, "cannot start the workflow");
            comment(
                router,
                issue,
                &format!("The training workflow could not be started:\n\n{e}"),
            )
            .await;
        }
    }
}

async fn approval(
    router: &ToolRouter,
    workflows: &WorkflowEngine,
    delivery: &str,
    issue: u64,
    command: ApprovalCommand,
    arguments: &str,
    user: &str,
) {
    let word = match command {
        ApprovalCommand::Approve => "/approve",
        ApprovalCommand::Reject => "/reject",
        ApprovalCommand::Retry => "/retry",
    };
    let waiting = match active_execution(workflows, issue, Status::Waiting).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(delivery, issue_number = issue, error = %e, "cannot list the issue's executions");
            comment(
                router,
                issue,
                &format!("`{word}` could not be applied: {e}"),
            )
            .await;
            return;
        }
    };
    let Some((execution, token)) = waiting.and_then(|e| {
        let token = e.context["task_token"].as_str()?.to_string();
        Some((e, token))
    }) else {
        tracing::info!(
            delivery,
            issue_number = issue,
            command = word,
            "no execution waiting for approval"
        );
        comment(
            router,
            issue,
            &format!("`{word}` by @{user}: no training run of this issue is waiting for approval."),
        )
        .await;
        return;
    };
    // `/retry` asks for the retry the execution is waiting on: an approval.
    let decision = match command {
        ApprovalCommand::Reject => "reject",
        ApprovalCommand::Approve | ApprovalCommand::Retry => "approve",
    };
    let mut args = json!({"task_token": token, "decision": decision, "actor": user});
    if !arguments.is_empty() {
        args["comment"] = json!(arguments);
    }
    match call(router, "approve_workflow_step", args).await {
        Ok(_) => {
            tracing::info!(delivery, issue_number = issue, execution_id = %execution.id, decision, "approval answered from an issue comment");
        }
        Err(e) => {
            tracing::warn!(delivery, issue_number = issue, execution_id = %execution.id, error = %e, "cannot answer the approval");
            comment(
                router,
                issue,
                &format!(
                    "`{word}` by @{user} could not be applied to execution `{}`: {e}",
                    execution.id
                ),
            )
            .await;
        }
    }
}
