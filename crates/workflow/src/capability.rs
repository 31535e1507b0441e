//! The workflow tools: start, status, list, cancel, approve.

use std::sync::Arc;
use std::time::Duration;

use mlops_core::{Annotations, Capability, ToolContext, ToolDef, ToolError, ToolResponse};
use mlops_request::{TrainingRequest, format_problems_comment, parse_training_request};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::context::Timing;
use crate::engine::WorkflowEngine;
use crate::store::{Decision, Execution, Status, Step};

/// The label an issue needs to start a run.
pub const TRAIN_LABEL: &str = "mlops:train";

/// Capability: the issue-driven workflow.
pub struct WorkflowCapability {
    engine: Arc<WorkflowEngine>,
}

impl WorkflowCapability {
    pub fn new(engine: Arc<WorkflowEngine>) -> Arc<Self> {
        Arc::new(Self { engine })
    }
}

impl Capability for WorkflowCapability {
    fn name(&self) -> &'static str {
        "workflow"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let e = self.engine.clone();
        vec![
            ToolDef::with(
                e.clone(),
                "start_workflow",
                "Start the training workflow",
                "Start the issue-driven training workflow: PrepareData → TuneHyperparameters (with a `tune:` block) → TrainModel → EvaluateModel → JudgeResults → RegisterModel → WriteHistory → NotifySuccess, with operator-approved retries and rollback on failure. Give `issue_number` (an issue labelled mlops:train; invalid parameters are commented back on it) or the issue text as `body` (a fenced YAML block or `key: value` lines, see the README). Returns the execution id; follow it with get_workflow_status.",
                Annotations::WRITES,
                |e, i: StartInput, _ctx: ToolContext| async move { start(&e, i).await },
            ),
            ToolDef::with(
                e.clone(),
                "get_workflow_status",
                "Get a workflow execution",
                "An execution's status (running, waiting, succeeded, failed, cancelled), current state, retry count, outputs so far, and its step history (each attempt's state, status, error and times).",
                Annotations::READ_ONLY,
                |e, i: ExecutionInput, _ctx| async move {
                    let execution = get(&e, &i.execution_id).await?;
                    let steps = e.store().steps(&i.execution_id).await?;
                    Ok::<_, ToolError>(StatusReport { execution, steps })
                },
            ),
            ToolDef::with(
                e.clone(),
                "list_workflows",
                "List workflow executions",
                "Workflow executions, newest first; filter by `status` or `issue_number`. Paginated with `limit` (1-100, default 20) and `offset`.",
                Annotations::READ_ONLY,
                |e, i: ListInput, _ctx| async move {
                    if !(1..=100).contains(&i.limit) || i.offset < 0 {
                        return Err(ToolError::validation(
                            "limit must be 1 to 100 and offset at least 0",
                        ));
                    }
                    let (mut executions, total) = e
                        .store()
                        .list(i.status, i.issue_number, i.limit, i.offset)
                        .await?;
                    mlops_core::fit_page(&mut executions);
                    let next_offset = (i.offset + (executions.len() as i64) < total)
                        .then_some(i.offset + executions.len() as i64);
                    Ok::<_, ToolError>(ListReport {
                        total,
                        executions,
                        next_offset,
                    })
                },
            ),
            ToolDef::with(
                e.clone(),
                "cancel_workflow",
                "Cancel a workflow execution",
                "Cancel a running or waiting execution. The step in progress finishes, nothing after it runs, and a pending approval token stops working.",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: true,
                    open_world: false,
                },
                |e, i: ExecutionInput, _ctx| async move {
                    let execution = get(&e, &i.execution_id).await?;
                    if execution.status.finished() {
                        return Err(ToolError::validation(format!(
                            "execution {} already ended ({})",
                            i.execution_id,
                            execution.status.as_str()
                        )));
                    }
                    e.store().cancel(&i.execution_id).await?;
                    let steps = e.store().steps(&i.execution_id).await?;
                    Ok(StatusReport {
                        execution: get(&e, &i.execution_id).await?,
                        steps,
                    })
                },
            ),
            ToolDef::with(
                e,
                "approve_workflow_step",
                "Answer an approval request",
                "Approve or reject the retry an execution is waiting for, with the task token from the approval request. On approval you may change hyperparameters for the retry (`hyperparameters`). A token can be answered once, before it expires.",
                Annotations::WRITES,
                |e, i: ApproveInput, _ctx| async move {
                    let decision = match i.decision.as_str() {
                        "approve" | "approved" => Decision::Approve,
                        "reject" | "rejected" => Decision::Reject,
                        other => {
                            return Err(ToolError::validation(format!(
                                "decision must be approve or reject (got `{other}`)"
                            )));
                        }
                    };
                    let overrides = i.hyperparameters.map(Value::Object);
                    let id = e
                        .store()
                        .decide(
                            &i.task_token,
                            decision,
                            i.actor.as_deref().unwrap_or("operator"),
                            i.comment.as_deref(),
                            overrides.as_ref(),
                        )
                        .await?;
                    e.wake();
                    let steps = e.store().steps(&id).await?;
                    Ok::<_, ToolError>(StatusReport {
                        execution: get(&e, &id).await?,
                        steps,
                    })
                },
            ),
        ]
    }
}

async fn get(e: &WorkflowEngine, id: &str) -> Result<Execution, ToolError> {
    e.store()
        .get(id)
        .await?
        .ok_or_else(|| ToolError::validation(format!("no workflow execution `{id}`")))
}

/// Input of `start_workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    /// An issue labelled `mlops:train` whose body holds the parameters.
    pub issue_number: Option<u64>,
    /// Or the parameters as issue text (YAML block or `key: value` lines).
    pub body: Option<String>,
    /// A title for `body` (default "Training request").
    pub title: Option<String>,
    /// For tests only: shorter per-state timeouts and backoff.
    pub timing: Option<Timing>,
}

async fn start(e: &WorkflowEngine, i: StartInput) -> Result<StatusReport, ToolError> {
    let (request, issue) = match (i.issue_number, &i.body) {
        (Some(n), None) => (request_from_issue(e, n).await?, Some(n)),
        (None, Some(body)) => {
            let title = i.title.as_deref().unwrap_or("Training request");
            let request = parse_training_request(title, body)
                .map_err(|problems| ToolError::validation(format_problems_comment(&problems)))?;
            (request, None)
        }
        _ => {
            return Err(ToolError::validation(
                "give either issue_number or body (the parameters as issue text)",
            ));
        }
    };
    let execution = e
        .start(request, issue, i.timing.unwrap_or_default())
        .await?;
    Ok(StatusReport {
        execution,
        steps: Vec::new(),
    })
}

/// Reads and parses a labelled issue; invalid parameters are commented back on it.
async fn request_from_issue(e: &WorkflowEngine, n: u64) -> Result<TrainingRequest, ToolError> {
    let issue = e
        .call_tool(
            "get_issue",
            json!({"issue_number": n}),
            Duration::from_secs(60),
        )
        .await?;
    let labelled = issue["issue"]["labels"]
        .as_array()
        .is_some_and(|l| l.iter().any(|x| x == TRAIN_LABEL));
    if !labelled {
        return Err(ToolError::validation(format!(
            "issue #{n} is not labelled `{TRAIN_LABEL}`; add the label to request training"
        )));
    }
    let parsed = e
        .call_tool(
            "parse_training_issue",
            json!({"issue_number": n, "comment_problems": true}),
            Duration::from_secs(60),
        )
        .await?;
    if parsed["valid"] != true {
        return Err(ToolError::validation(format!(
            "issue #{n} has invalid parameters (the problems were commented on the issue):\n{}",
            parsed["comment"].as_str().unwrap_or_default()
        )));
    }
    serde_json::from_value(parsed["request"].clone())
        .map_err(|err| ToolError::Execution(format!("the parsed request is not valid: {err}")))
}

/// Names an execution.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionInput {
    pub execution_id: String,
}

fn default_limit() -> i64 {
    20
}

/// Input of `list_workflows`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    pub status: Option<StatusFilter>,
    pub issue_number: Option<i64>,
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

/// An execution status to filter by.
pub type StatusFilter = Status;

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "running" => Ok(Status::Running),
            "waiting" => Ok(Status::Waiting),
            "succeeded" => Ok(Status::Succeeded),
            "failed" => Ok(Status::Failed),
            "cancelled" => Ok(Status::Cancelled),
            other => Err(serde::de::Error::custom(format!(
                "unknown status `{other}` (running, waiting, succeeded, failed, cancelled)"
            ))),
        }
    }
}

/// Input of `approve_workflow_step`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    /// The task token from the approval request.
    pub task_token: String,
    /// approve or reject.
    pub decision: String,
    /// Who decides (recorded).
    pub actor: Option<String>,
    pub comment: Option<String>,
    /// Hyperparameters to change for the retry (approve only).
    pub hyperparameters: Option<serde_json::Map<String, Value>>,
}

/// An execution with its step history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusReport {
    #[serde(flatten)]
    pub execution: Execution,
    pub steps: Vec<Step>,
}

impl ToolResponse for StatusReport {
    fn summary(&self) -> String {
        let e = &self.execution;
        let retry = e.context["retry_count"].as_u64().unwrap_or(0);
        let mut s = format!(
            "Execution {} ({}): {} at {}, retry {retry}",
            e.id,
            e.model_name,
            e.status.as_str(),
            e.state
        );
        if let Some(r) = e.context["reason"].as_str() {
            s.push_str(&format!("; {r}"));
        }
        if e.status == Status::Waiting
            && let Some(t) = e.context["task_token"].as_str()
        {
            s.push_str(&format!(
                ". Waiting for approval: call approve_workflow_step with task_token {t}"
            ));
        }
        s
    }
}

/// A page of executions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListReport {
    pub total: i64,
    pub executions: Vec<Execution>,
    pub next_offset: Option<i64>,
}

impl ToolResponse for ListReport {
    fn summary(&self) -> String {
        let lines: Vec<String> = self
            .executions
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} at {}",
                    e.id,
                    e.model_name,
                    e.status.as_str(),
                    e.state
                )
            })
            .collect();
        format!("{} executions in all:\n{}", self.total, lines.join("\n"))
    }
}
