//! The engine: interprets the state table, one leased execution at a time. Every Task state is a
//! tool call through the server's ToolRouter, with arguments built from the execution's context;
//! its output is merged back into the context. Each transition is one database transaction.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mlops_core::{ToolContext, ToolError, ToolRouter};
use mlops_github::{MetricGoal, TrainingRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::definition::{self, BACKOFF, Kind, START, State};
use crate::error::WorkflowError;
use crate::history;
use crate::store::{Execution, Status, Transition, WorkflowStore, now_ms};

/// Labels that follow an execution's state on its issue.
const RUNNING: &str = "mlops:running";
const AWAITING: &str = "mlops:awaiting-approval";
const SUCCEEDED: &str = "mlops:succeeded";
const FAILED: &str = "mlops:failed";

/// Timing of an execution. Production uses the state table's values; tests shrink them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Per-state timeouts in milliseconds, by state name, replacing the table's.
    #[serde(default)]
    pub timeouts_ms: BTreeMap<String, u64>,
    /// First backoff between attempts in milliseconds (default 2000; doubles each retry).
    pub backoff_ms: Option<u64>,
}

/// The execution's context: the request and what each step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Context {
    pub execution_id: String,
    pub request: TrainingRequest,
    pub model_name: String,
    pub issue_number: Option<u64>,
    pub retry_count: u32,
    #[serde(default)]
    pub timing: Timing,
    /// Outputs by state name (the latest attempt that succeeded).
    #[serde(default)]
    pub outputs: Map<String, Value>,
    /// The judgement: pass, fail or error, and why.
    pub verdict: Option<String>,
    pub reason: Option<String>,
    /// The error that sent the execution to the failure path.
    pub error: Option<Value>,
    /// Set when an operator answered (cleared when used).
    pub decision: Option<Value>,
    pub task_token: Option<String>,
    /// Versions this execution promoted to Production (rolled back on a later failure).
    #[serde(default)]
    pub promoted_version: Option<i64>,
}

impl Context {
    fn output(&self, state: &str, field: &str) -> Option<&Value> {
        self.outputs.get(state).and_then(|o| o.get(field))
    }

    fn text(&self, state: &str, field: &str) -> Result<String, WorkflowError> {
        self.output(state, field)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| {
                WorkflowError::Invalid(format!("the {state} step produced no `{field}`"))
            })
    }

    fn timeout(&self, s: &State) -> Duration {
        self.timing
            .timeouts_ms
            .get(s.name)
            .map(|ms| Duration::from_millis(*ms))
            .unwrap_or(s.timeout)
    }

    fn classification(&self) -> bool {
        self.request.task_type.as_str() == "classification"
    }

    /// The facts notification templates are given.
    fn notification_context(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("model_name".into(), json!(self.model_name));
        c.insert("execution_id".into(), json!(self.execution_id));
        c.insert("metric".into(), json!(self.request.metric));
        c.insert("threshold".into(), json!(self.request.threshold));
        c.insert("retry_count".into(), json!(self.retry_count));
        c.insert("max_retry".into(), json!(self.request.max_retry));
        if let Some(n) = self.issue_number {
            c.insert("issue_number".into(), json!(n));
        }
        if let Some(r) = &self.reason {
            c.insert("reason".into(), json!(r));
        }
        if let Some(m) = self
            .outputs
            .get("EvaluateModel")
            .and_then(|o| o.get("metrics"))
        {
            c.insert("metrics".into(), m.clone());
        }
        c
    }
}

/// How this server's engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a claimed execution stays ours without renewal.
    pub lease: Duration,
    /// How often the worker looks for due executions when nothing woke it.
    pub poll: Duration,
    /// This worker's name in leases and step records.
    pub worker_id: String,
    /// Notification channels configured on this server; a request's other channels are skipped
    /// (and noted), and with none left notifications go to the outbox file.
    pub channels: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            channels: Vec::new(),
        }
    }
}

/// Starts, drives, and answers questions about workflow executions.
pub struct WorkflowEngine {
    store: WorkflowStore,
    router: OnceLock<ToolRouter>,
    config: EngineConfig,
    wake: Notify,
}

/// A running worker; stop it to end the loop (running steps finish first).
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What the driver does after a transition.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The execution reached Succeeded or Failed.
    Ended,
    /// Another worker holds the lease now (or the execution was cancelled).
    Lost,
}

/// What a step did.
enum Outcome {
    /// Go to the state's `next` with this output.
    Next(Value),
    /// Go to the state's `otherwise` branch with this output.
    Otherwise(Value),
    /// Stop and wait for an operator until the deadline (ms since the epoch).
    Wait(i64),
}

impl Outcome {
    /// The output and the state to go to, or the deadline to wait until.
    fn branch(self, s: &State) -> Result<(Value, &'static str), i64> {
        match self {
            Outcome::Next(v) => Ok((v, s.next.unwrap_or("Failed"))),
            Outcome::Otherwise(v) => Ok((v, s.otherwise.unwrap_or("Failed"))),
            Outcome::Wait(deadline) => Err(deadline),
        }
    }
}

fn tool_error(tool: &str, e: ToolError) -> WorkflowError {
    WorkflowError::Step(format!("{tool}: {e}"))
}

impl WorkflowEngine {
    pub fn new(store: WorkflowStore, config: EngineConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            router: OnceLock::new(),
            config,
            wake: Notify::new(),
        })
    }

    /// Gives the engine the router it calls tools through (built after the engine's own tools).
    pub fn attach(&self, router: ToolRouter) {
        let _ = self.router.set(router);
    }

    pub fn store(&self) -> &WorkflowStore {
        &self.store
    }

    fn router(&self) -> Result<&ToolRouter, WorkflowError> {
        self.router
            .get()
            .ok_or_else(|| WorkflowError::Step("the workflow engine has no tool router yet".into()))
    }

    async fn call(
        &self,
        tool: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, WorkflowError> {
        let cancel = CancellationToken::new();
        let ctx = ToolContext::new(cancel.clone(), None);
        let call = self.router()?.call(tool, args, ctx);
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(out)) => Ok(out.structured),
            Ok(Err(e)) => Err(tool_error(tool, e)),
            Err(_) => {
                // Long tools (training) watch this token and stop.
                cancel.cancel();
                Err(WorkflowError::Step(format!(
                    "{tool} did not finish within {} s",
                    timeout.as_secs_f64()
                )))
            }
        }
    }

    /// Calls a tool as the workflow does (for the workflow's own tools).
    pub async fn call_tool(
        &self,
        tool: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, ToolError> {
        self.call(tool, args, timeout)
            .await
            .map_err(ToolError::from)
    }

    /// Makes the worker look for due executions now (e.g. after an approval).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Best effort: label changes and comments never fail an execution.
    async fn quietly(&self, tool: &str, args: Value) {
        if let Err(e) = self.call(tool, args, Duration::from_secs(60)).await {
            tracing::warn!(tool, error = %e, "workflow side effect failed");
        }
    }

    async fn set_label(&self, c: &Context, add: &str, remove: &[&str]) {
        let Some(n) = c.issue_number else { return };
        self.quietly("add_labels", json!({"issue_number": n, "labels": [add]}))
            .await;
        for label in remove {
            self.quietly("remove_label", json!({"issue_number": n, "label": label}))
                .await;
        }
    }

    /// Sends a templated notification on the request's configured channels (the outbox file when
    /// none is). Without a GitHub token the "github" channel becomes a comment on the local issue.
    async fn notify(
        &self,
        c: &Context,
        template: &str,
        context: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, WorkflowError> {
        let requested: Vec<&str> = c.request.notify.iter().map(|n| n.kind.as_str()).collect();
        let mut channels: Vec<&str> = requested
            .iter()
            .copied()
            .filter(|k| self.config.channels.iter().any(|c| c == k))
            .filter(|k| *k != "github" || c.issue_number.is_some())
            .collect();
        if channels.is_empty() {
            channels.push("outbox_file");
        }
        let out = self
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
        let local_comment =
            requested.contains(&"github") && !self.config.channels.iter().any(|k| k == "github");
        if let (true, Some(n)) = (local_comment, c.issue_number) {
            let rendered = self
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
            self.call(
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

    /// Starts an execution of `request`; it runs on the worker (or `run_to_rest`).
    pub async fn start(
        &self,
        request: TrainingRequest,
        issue_number: Option<u64>,
        timing: Timing,
    ) -> Result<Execution, WorkflowError> {
        if !matches!(request.task_type.as_str(), "classification" | "regression") {
            return Err(WorkflowError::Invalid(format!(
                "the workflow trains classification and regression models; `{}` requests are not supported yet",
                request.task_type.as_str()
            )));
        }
        if request.target_column.is_none() {
            return Err(WorkflowError::Invalid(
                "the request has no target_column".into(),
            ));
        }
        let now = chrono::Utc::now();
        let id = format!(
            "wf-{}-{}",
            now.format("%Y%m%d-%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let model_name = request
            .model_name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", request.task_type.as_str(), request.algorithm))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>();
        let context = Context {
            execution_id: id.clone(),
            request,
            model_name: model_name.clone(),
            issue_number,
            retry_count: 0,
            timing,
            outputs: Map::new(),
            verdict: None,
            reason: None,
            error: None,
            decision: None,
            task_token: None,
            promoted_version: None,
        };
        let value = serde_json::to_value(&context)
            .map_err(|e| WorkflowError::Step(format!("could not encode the context: {e}")))?;
        self.store
            .create(
                &id,
                START,
                issue_number.map(|n| n as i64),
                &model_name,
                &value,
            )
            .await?;
        self.set_label(&context, RUNNING, &[FAILED, SUCCEEDED])
            .await;
        tracing::info!(execution_id = %id, "workflow execution started");
        self.wake.notify_one();
        self.store
            .get(&id)
            .await?
            .ok_or_else(|| WorkflowError::Step("the new execution vanished".into()))
    }

    /// Starts the background worker that claims and drives due executions.
    pub fn start_worker(self: &Arc<Self>) -> WorkerHandle {
        let (stop, mut stopped) = watch::channel(false);
        let engine = self.clone();
        let task = tokio::spawn(async move {
            loop {
                if *stopped.borrow() {
                    break;
                }
                match engine
                    .store
                    .claim_due(&engine.config.worker_id, engine.config.lease, 4)
                    .await
                {
                    Ok(ids) => {
                        let mut runs = tokio::task::JoinSet::new();
                        for id in ids {
                            let engine = engine.clone();
                            runs.spawn(async move { engine.drive(&id).await });
                        }
                        while let Some(r) = runs.join_next().await {
                            if let Ok(Err(e)) = r {
                                tracing::warn!(error = %e, "driving a workflow execution failed");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming workflow executions failed"),
                }
                tokio::select! {
                    _ = engine.wake.notified() => {}
                    _ = tokio::time::sleep(engine.config.poll) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        WorkerHandle { stop, task }
    }

    /// Claims and drives executions here until `id` ends or waits for an operator (the CLI's
    /// `run-issue`, which has no background worker).
    pub async fn run_to_rest(&self, id: &str) -> Result<Execution, WorkflowError> {
        loop {
            for claimed in self
                .store
                .claim_due(&self.config.worker_id, self.config.lease, 4)
                .await?
            {
                self.drive(&claimed).await?;
            }
            let e = self
                .store
                .get(id)
                .await?
                .ok_or_else(|| WorkflowError::Invalid(format!("no execution `{id}`")))?;
            if e.status != Status::Running {
                return Ok(e);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a claimed execution state by state while we hold its lease.
    async fn drive(&self, id: &str) -> Result<(), WorkflowError> {
        let owner = self.config.worker_id.clone();
        loop {
            let Some(execution) = self.store.get(id).await? else {
                return Ok(());
            };
            if execution.status.finished() {
                self.store.release(id, &owner).await?;
                return Ok(());
            }
            let mut context: Context =
                serde_json::from_value(execution.context.clone()).map_err(|e| {
                    WorkflowError::Step(format!("the stored context is not valid: {e}"))
                })?;
            let state = definition::state(&execution.state).ok_or_else(|| {
                WorkflowError::Step(format!("unknown state `{}`", execution.state))
            })?;
            // A waiting execution that is due again has timed out: no decision came.
            if execution.status == Status::Waiting {
                self.store.expire_tokens(id).await?;
                context.reason =
                    Some("the operator did not answer before the approval timed out".into());
                let next = state.otherwise.unwrap_or("RollbackModel");
                if self
                    .transition(
                        id,
                        &owner,
                        0,
                        Ok(&json!({"decision": "timeout"})),
                        &context,
                        next,
                    )
                    .await?
                    != Flow::Continue
                {
                    return Ok(());
                }
                continue;
            }
            let attempt = execution.attempt;
            let input = json!({"state": state.name, "attempt": attempt, "retry_count": context.retry_count});
            let seq = self
                .store
                .start_step(id, state.name, attempt, &input, &owner)
                .await?;

            // Renew the lease while the step runs; a step whose lease we lose is abandoned.
            let heartbeat = {
                let (store, owner, lease, id) = (
                    self.store.clone(),
                    owner.clone(),
                    self.config.lease,
                    id.to_string(),
                );
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(lease / 3).await;
                        if !matches!(store.renew(&id, &owner, lease).await, Ok(true)) {
                            break;
                        }
                    }
                })
            };
            let result = self.run_state(state, &mut context, id).await;
            heartbeat.abort();
            if self.store.is_cancelled(id).await? {
                self.store.release(id, &owner).await?;
                return Ok(());
            }
            let moved = match result.map(|o| o.branch(state)) {
                Ok(Ok((output, next))) => {
                    context.outputs.insert(state.name.into(), output.clone());
                    self.transition(id, &owner, seq, Ok(&output), &context, next)
                        .await?
                }
                Ok(Err(deadline)) => {
                    let output = json!({"waiting_until_ms": deadline});
                    let value = self.encode(&context)?;
                    self.store
                        .finish_step(
                            id,
                            &owner,
                            seq,
                            Ok(&output),
                            Transition {
                                status: Status::Waiting,
                                state: state.name,
                                attempt: 1,
                                context: &value,
                                run_at_ms: deadline,
                                release: true,
                            },
                        )
                        .await?;
                    return Ok(());
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::warn!(execution_id = %id, state = state.name, attempt, error = %message, "workflow step failed");
                    if (attempt as u32) <= state.retries {
                        // Try again after a backoff; the lease goes so any instance may retry.
                        let base = context
                            .timing
                            .backoff_ms
                            .map(Duration::from_millis)
                            .unwrap_or(BACKOFF);
                        let wait = definition::backoff(base, attempt as u32 + 1);
                        let value = self.encode(&context)?;
                        self.store
                            .finish_step(
                                id,
                                &owner,
                                seq,
                                Err(&message),
                                Transition {
                                    status: Status::Running,
                                    state: state.name,
                                    attempt: attempt + 1,
                                    context: &value,
                                    run_at_ms: now_ms() + wait.as_millis() as i64,
                                    release: true,
                                },
                            )
                            .await?;
                        return Ok(());
                    }
                    context.error = Some(json!({"state": state.name, "message": message}));
                    context.reason = Some(format!("{} failed: {message}", state.name));
                    let next = state.catch.unwrap_or("Failed");
                    self.transition(id, &owner, seq, Err(&message), &context, next)
                        .await?
                }
            };
            match moved {
                Flow::Continue => {}
                Flow::Ended => return Ok(()),
                Flow::Lost => {
                    tracing::warn!(execution_id = %id, "lost the lease; another worker has this execution");
                    return Ok(());
                }
            }
        }
    }

    fn encode(&self, context: &Context) -> Result<Value, WorkflowError> {
        serde_json::to_value(context)
            .map_err(|e| WorkflowError::Step(format!("could not encode the context: {e}")))
    }

    /// Moves to `next` at once, as its first attempt (ending the execution at a Succeed or Fail
    /// state, which also gives up the lease).
    async fn transition(
        &self,
        id: &str,
        owner: &str,
        seq: i64,
        outcome: Result<&Value, &str>,
        context: &Context,
        next: &str,
    ) -> Result<Flow, WorkflowError> {
        let kind = definition::state(next).map(|s| s.kind);
        let (status, release) = match kind {
            Some(Kind::Succeed) => (Status::Succeeded, true),
            Some(Kind::Fail) => (Status::Failed, true),
            _ => (Status::Running, false),
        };
        let value = self.encode(context)?;
        let moved = self
            .store
            .finish_step(
                id,
                owner,
                seq,
                outcome,
                Transition {
                    status,
                    state: next,
                    attempt: 1,
                    context: &value,
                    run_at_ms: now_ms(),
                    release,
                },
            )
            .await?;
        Ok(match (moved, status.finished()) {
            (false, _) => Flow::Lost,
            (true, true) => {
                tracing::info!(execution_id = %id, status = status.as_str(), "workflow execution ended");
                Flow::Ended
            }
            (true, false) => Flow::Continue,
        })
    }

    /// Does one state's work.
    async fn run_state(
        &self,
        s: &State,
        c: &mut Context,
        id: &str,
    ) -> Result<Outcome, WorkflowError> {
        let timeout = c.timeout(s);
        let r = &c.request;
        let run_name = format!("{id}-r{}", c.retry_count);
        match s.name {
            "PrepareData" => {
                let out = self
                    .call("preprocess_supervised", json!({
                        "dataset_uri": r.dataset,
                        "target_column": r.target_column,
                        "task_type": r.task_type.as_str(),
                        "split": {"validation_fraction": 0.15, "test_fraction": 0.15, "seed": r.seed.unwrap_or(42)},
                        "output_name": run_name,
                        "format": "parquet",
                    }), timeout)
                    .await?;
                Ok(Outcome::Next(json!({
                    "train_data_uri": out["train_data_uri"],
                    "validation_data_uri": out["validation_data_uri"],
                    "test_data_uri": out["test_data_uri"],
                    "pipeline_uri": out["pipeline_uri"],
                })))
            }
            "TrainModel" => {
                let tool = if c.classification() {
                    "train_supervised_classifier"
                } else {
                    "train_supervised_regressor"
                };
                let out = self
                    .call(
                        tool,
                        json!({
                            "algorithm": r.algorithm,
                            "train_data_uri": c.text("PrepareData", "train_data_uri")?,
                            "validation_data_uri": c.output("PrepareData", "validation_data_uri"),
                            "training_job_name": run_name,
                            "hyperparameters": r.hyperparameters,
                            "seed": r.seed.unwrap_or(42),
                            // A retried or resumed step trains again under the same name.
                            "overwrite": true,
                            "max_runtime_seconds": timeout.as_secs().max(1),
                        }),
                        timeout,
                    )
                    .await?;
                Ok(Outcome::Next(json!({
                    "training_job_name": run_name,
                    "model_uri": out["model_uri"],
                    "metrics": out["metrics"],
                })))
            }
            "EvaluateModel" => {
                let tool = if c.classification() {
                    "evaluate_classifier"
                } else {
                    "evaluate_regressor"
                };
                let out = self
                    .call(
                        tool,
                        json!({
                            "model_uri": c.text("TrainModel", "model_uri")?,
                            "test_data_uri": c.text("PrepareData", "test_data_uri")?,
                        }),
                        timeout,
                    )
                    .await?;
                let metrics: Map<String, Value> = out
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(_, v)| v.is_number())
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Outcome::Next(json!({"metrics": metrics})))
            }
            "JudgeResults" => {
                let metrics = c
                    .output("EvaluateModel", "metrics")
                    .cloned()
                    .unwrap_or(Value::Null);
                let metric = &r.metric;
                // The issue's name (`f1`) and the evaluation's key (`f1_macro`) are one metric.
                let value = metrics
                    .get(mlops_core::metric_names::storage_key(metric))
                    .and_then(Value::as_f64);
                let Some(value) = value.filter(|v| v.is_finite()) else {
                    c.verdict = Some("error".into());
                    c.reason = Some(format!("the evaluation has no `{metric}` to judge"));
                    return Err(WorkflowError::Step(c.reason.clone().unwrap_or_default()));
                };
                let passed = r.metric_goal.passes(value, r.threshold);
                let op = if r.metric_goal == MetricGoal::Maximize {
                    "≥"
                } else {
                    "≤"
                };
                let verdict = if passed { "pass" } else { "fail" };
                c.verdict = Some(verdict.into());
                c.reason = Some(format!(
                    "{metric} {value:.4} {} {op} {} required",
                    if passed { "meets" } else { "misses" },
                    r.threshold
                ));
                let out = json!({"verdict": verdict, "metric": metric, "value": value, "threshold": r.threshold});
                Ok(if passed {
                    Outcome::Next(out)
                } else {
                    Outcome::Otherwise(out)
                })
            }
            "CheckRetryLimit" => Ok(if c.retry_count < r.max_retry {
                Outcome::Next(json!({"retry_count": c.retry_count, "max_retry": r.max_retry}))
            } else {
                c.reason = Some(format!(
                    "{} after {} retries (max_retry {})",
                    c.reason.clone().unwrap_or_default(),
                    c.retry_count,
                    r.max_retry
                ));
                Outcome::Otherwise(
                    json!({"retry_count": c.retry_count, "max_retry": r.max_retry, "exhausted": true}),
                )
            }),
            "NotifyOperator" => {
                // The token is made once per wait, so a retried notification reuses it.
                let token = match &c.task_token {
                    Some(t) => t.clone(),
                    None => {
                        let t = format!("tok-{}", uuid::Uuid::new_v4().simple());
                        c.task_token = Some(t.clone());
                        t
                    }
                };
                let wait = definition::state("WaitForOperatorInput")
                    .map(|w| c.timeout(w))
                    .unwrap_or_default();
                let deadline = now_ms() + wait.as_millis() as i64;
                self.store.create_token(&token, id, deadline).await?;
                let mut context = c.notification_context();
                context.insert("task_token".into(), json!(token));
                self.notify(c, "retry_approval", context, timeout).await?;
                self.set_label(c, AWAITING, &[]).await;
                Ok(Outcome::Next(
                    json!({"task_token": token, "expires_at_ms": deadline}),
                ))
            }
            "WaitForOperatorInput" => match c.decision.take() {
                None => {
                    let deadline = now_ms() + c.timeout(s).as_millis() as i64;
                    Ok(Outcome::Wait(deadline))
                }
                Some(d) => {
                    c.task_token = None;
                    self.set_label(c, RUNNING, &[AWAITING]).await;
                    if d["decision"] == "approved" {
                        if let Some(Value::Object(o)) = d.get("overrides") {
                            for (k, v) in o {
                                c.request.hyperparameters.insert(k.clone(), v.clone());
                            }
                        }
                        Ok(Outcome::Next(d))
                    } else {
                        c.reason = Some(format!(
                            "the operator rejected the retry{}",
                            d["comment"]
                                .as_str()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ));
                        Ok(Outcome::Otherwise(d))
                    }
                }
            },
            "IncrementRetry" => {
                c.retry_count += 1;
                for stale in ["PrepareData", "TrainModel", "EvaluateModel", "JudgeResults"] {
                    c.outputs.remove(stale);
                }
                c.verdict = None;
                Ok(Outcome::Next(json!({"retry_count": c.retry_count})))
            }
            "RegisterModel" => self.register(c, &run_name, timeout).await,
            "WriteHistory" => {
                let content = history::markdown(c);
                let out = self
                    .call("commit_training_history", json!({
                        "content": content,
                        "message": format!("Training history for {} ({})", c.model_name, c.execution_id),
                    }), timeout)
                    .await?;
                Ok(Outcome::Next(out))
            }
            "NotifySuccess" => {
                let mut context = c.notification_context();
                if let Some(v) = c.promoted_version {
                    context.insert("version".into(), json!(v));
                }
                let sent = self.notify(c, "success", context, timeout).await?;
                self.set_label(c, SUCCEEDED, &[RUNNING, AWAITING]).await;
                Ok(Outcome::Next(sent))
            }
            "RollbackModel" => {
                let Some(version) = c.promoted_version else {
                    return Ok(Outcome::Next(json!({
                        "rolled_back": false,
                        "note": "this execution promoted no version; Production is unchanged"
                    })));
                };
                let out = self
                    .call("rollback_model", json!({
                        "model_name": c.model_name,
                        "actor": "mlops-workflow",
                        "reason": format!("execution {} failed after promoting version {version}", c.execution_id),
                    }), timeout)
                    .await?;
                c.promoted_version = None;
                Ok(Outcome::Next(json!({"rolled_back": true, "rollback": out})))
            }
            "NotifyFailure" => {
                let mut context = c.notification_context();
                let template = match &c.error {
                    Some(e) => {
                        context.insert("step".into(), e["state"].clone());
                        context.insert("error".into(), e["message"].clone());
                        "error"
                    }
                    None => {
                        context
                            .entry("reason")
                            .or_insert(json!("the model did not pass"));
                        "failure"
                    }
                };
                let sent = self.notify(c, template, context, timeout).await?;
                self.set_label(c, FAILED, &[RUNNING, AWAITING]).await;
                Ok(Outcome::Next(sent))
            }
            other => Err(WorkflowError::Step(format!("state `{other}` has no work"))),
        }
    }

    /// Registers, approves and promotes the model. Resumed after a crash, it first looks for the
    /// version this execution already registered, so a model is never registered twice.
    async fn register(
        &self,
        c: &mut Context,
        run_name: &str,
        timeout: Duration,
    ) -> Result<Outcome, WorkflowError> {
        let run_key = format!("{}/{}", c.execution_id, c.retry_count);
        let found = self
            .call(
                "search_models",
                json!({
                    "name_pattern": c.model_name,
                    "tags": {"mlops.run": run_key},
                    "limit": 1,
                }),
                timeout,
            )
            .await?;
        let existing = found["versions"]
            .as_array()
            .and_then(|v| v.first())
            .and_then(|v| v["version"].as_i64());
        let version = match existing {
            Some(v) => v,
            None => {
                let metrics: BTreeMap<String, f64> = c
                    .output("EvaluateModel", "metrics")
                    .and_then(Value::as_object)
                    .map(|o| {
                        o.iter()
                            .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                            .collect()
                    })
                    .unwrap_or_default();
                let out = self
                    .call("register_model", json!({
                        "model_name": c.model_name,
                        "model_uri": c.text("TrainModel", "model_uri")?,
                        "metrics": metrics,
                        "tags": {"mlops.run": run_key},
                        "description": format!("Trained by workflow execution {}", c.execution_id),
                        "lineage": {
                            "dataset_uri": c.request.dataset,
                            "training_job_name": run_name,
                            "execution_id": c.execution_id,
                            "issue_number": c.issue_number,
                        },
                    }), timeout)
                    .await?;
                out["version"].as_i64().ok_or_else(|| {
                    WorkflowError::Step("register_model returned no version".into())
                })?
            }
        };
        self.call(
            "set_model_approval",
            json!({
                "model_name": c.model_name, "version": version, "approval_status": "Approved",
                "actor": "mlops-workflow", "reason": c.reason,
            }),
            timeout,
        )
        .await
        .or_else(already_done)?;
        self.call(
            "transition_model_stage",
            json!({
                "model_name": c.model_name, "version": version, "stage": "Production",
                "archive_existing": true, "actor": "mlops-workflow",
            }),
            timeout,
        )
        .await
        .or_else(already_done)?;
        c.promoted_version = Some(version);
        Ok(Outcome::Next(
            json!({"model_name": c.model_name, "version": version, "stage": "Production"}),
        ))
    }
}

/// A repeated approval or promotion (a resumed step) is not an error.
fn already_done(e: WorkflowError) -> Result<Value, WorkflowError> {
    let text = e.to_string();
    if text.contains("already") {
        Ok(Value::Null)
    } else {
        Err(e)
    }
}
