//! The engine: interprets the state table, one leased execution at a time. Every Task state is a
//! tool call through the server's ToolRouter, with arguments built from the execution's context
//! (the step functions are in [`crate::steps`]); its output is merged back into the context. Each
//! transition is one database transaction.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mlops_core::{ToolContext, ToolError, ToolRouter};
use mlops_request::TrainingRequest;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::context::{Context, Timing};
use crate::definition::{self, BACKOFF, Kind, START, StateName};
use crate::error::WorkflowError;
use crate::steps;
use crate::steps::effects::{FAILED, RUNNING, SUCCEEDED, set_label};
use crate::store::{Execution, Status, Transition, WorkflowStore, now_ms};

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

/// Where a finished step sends the execution.
enum Next {
    /// On to this state at once, as its first attempt.
    State(StateName),
    /// Back to `state` at `run_at_ms`, with the lease given up so that whichever instance is free
    /// then takes it up: a Wait until its deadline, a failed step until its retry.
    Later {
        state: StateName,
        status: Status,
        attempt: i64,
        run_at_ms: i64,
    },
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

    /// Calls a tool with a timeout; a tool that overruns is told to stop.
    pub(crate) async fn call(
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
    pub(crate) async fn call_tool(
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
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The notification channels configured on this server.
    pub(crate) fn channels(&self) -> &[String] {
        &self.config.channels
    }

    /// Starts an execution of `request`; it runs on the worker (or `run_to_rest`).
    pub(crate) async fn start(
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
                START.as_str(),
                issue_number.map(|n| n as i64),
                &model_name,
                &value,
            )
            .await?;
        set_label(self, &context, RUNNING, &[FAILED, SUCCEEDED]).await;
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
            let state = StateName::parse(&execution.state)
                .map(definition::state)
                .ok_or_else(|| {
                    WorkflowError::Step(format!("unknown state `{}`", execution.state))
                })?;
            // A waiting execution that is due again has timed out: no decision came.
            if execution.status == Status::Waiting {
                self.store.expire_tokens(id).await?;
                context.reason =
                    Some("the operator did not answer before the approval timed out".into());
                let next = state.otherwise.unwrap_or(StateName::RollbackModel);
                if self
                    .transition(
                        id,
                        &owner,
                        0,
                        Ok(&json!({"decision": "timeout"})),
                        &context,
                        Next::State(next),
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
                .start_step(id, state.name.as_str(), attempt, &input, &owner)
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
            let result = steps::run(self, state, &mut context, id).await;
            heartbeat.abort();
            if self.store.is_cancelled(id).await? {
                self.store.release(id, &owner).await?;
                return Ok(());
            }
            let moved = match result.map(|o| o.branch(state)) {
                Ok(Ok((output, next))) => {
                    context
                        .outputs
                        .insert(state.name.as_str().into(), output.clone());
                    self.transition(id, &owner, seq, Ok(&output), &context, Next::State(next))
                        .await?
                }
                Ok(Err(deadline)) => {
                    let output = json!({"waiting_until_ms": deadline});
                    let waiting = Next::Later {
                        state: state.name,
                        status: Status::Waiting,
                        attempt: 1,
                        run_at_ms: deadline,
                    };
                    self.transition(id, &owner, seq, Ok(&output), &context, waiting)
                        .await?;
                    return Ok(());
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::warn!(execution_id = %id, state = state.name.as_str(), attempt, error = %message, "workflow step failed");
                    if (attempt as u32) <= state.retries {
                        // Try again after a backoff; the lease goes so any instance may retry.
                        let base = context
                            .timing
                            .backoff_ms
                            .map(Duration::from_millis)
                            .unwrap_or(BACKOFF);
                        let wait = definition::backoff(base, attempt as u32 + 1);
                        let retry = Next::Later {
                            state: state.name,
                            status: Status::Running,
                            attempt: attempt + 1,
                            run_at_ms: now_ms() + wait.as_millis() as i64,
                        };
                        self.transition(id, &owner, seq, Err(&message), &context, retry)
                            .await?;
                        return Ok(());
                    }
                    context.error = Some(json!({"state": state.name, "message": message}));
                    context.reason = Some(format!("{} failed: {message}", state.name));
                    let next = state.catch.unwrap_or(StateName::Failed);
                    self.transition(id, &owner, seq, Err(&message), &context, Next::State(next))
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

    /// Records the step's outcome and sends the execution to `next` (ending it at a Succeed or
    /// Fail state, which also gives up the lease).
    async fn transition(
        &self,
        id: &str,
        owner: &str,
        seq: i64,
        outcome: Result<&Value, &str>,
        context: &Context,
        next: Next,
    ) -> Result<Flow, WorkflowError> {
        let (state, status, attempt, run_at_ms, release) = match next {
            Next::State(state) => {
                let (status, release) = match definition::state(state).kind {
                    Kind::Succeed => (Status::Succeeded, true),
                    Kind::Fail => (Status::Failed, true),
                    _ => (Status::Running, false),
                };
                (state, status, 1, now_ms(), release)
            }
            Next::Later {
                state,
                status,
                attempt,
                run_at_ms,
            } => (state, status, attempt, run_at_ms, true),
        };
        let value = serde_json::to_value(context)
            .map_err(|e| WorkflowError::Step(format!("could not encode the context: {e}")))?;
        let moved = self
            .store
            .finish_step(
                id,
                owner,
                seq,
                outcome,
                Transition {
                    status,
                    state: state.as_str(),
                    attempt,
                    context: &value,
                    run_at_ms,
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
}
