//! The monitor scheduler: every server polls for due monitors, claims one with a lease (only one
//! server wins), runs the check for that tick, acts on drift, and schedules the next tick after
//! now — so a server that was down runs a missed monitor once, not once per missed tick. A server
//! killed mid-check loses its lease; another takes the tick over, and what the first had done
//! (the issue it opened) is found and not done again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mlops_core::{Selector, ToolContext, ToolError, ToolRouter, metric_names};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::capability::Shared;
use crate::detect::{DetectDriftInput, DriftResult, detect_drift};
use crate::monitors::{Monitor, Outcome};
use crate::sources::watched_model;

/// How often a server looks for due monitors.
const POLL: Duration = Duration::from_millis(250);
/// Monitors one server runs at once.
const AT_ONCE: i64 = 4;

/// The running scheduler; stop it before the process exits.
pub struct SchedulerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SchedulerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

pub fn start(shared: Arc<Shared>) -> SchedulerHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            if *stopped.borrow() {
                break;
            }
            match shared
                .monitors
                .claim_due(&shared.owner, shared.lease.as_millis() as i64, AT_ONCE)
                .await
            {
                Ok(claimed) => {
                    let mut runs = tokio::task::JoinSet::new();
                    for (name, tick) in claimed {
                        let shared = shared.clone();
                        runs.spawn(async move {
                            if let Err(e) = run_tick(&shared, &name, tick).await {
                                tracing::warn!(monitor = %name, error = %e, "a monitor run failed");
                            }
                        });
                    }
                    while runs.join_next().await.is_some() {}
                }
                Err(e) => tracing::warn!(error = %e, "claiming due monitors failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stopped.changed() => {}
            }
        }
    });
    SchedulerHandle { stop, task }
}

/// Runs one claimed tick of one monitor.
async fn run_tick(shared: &Shared, name: &str, tick: i64) -> Result<(), ToolError> {
    let monitor = shared.monitors.require(name).await?;
    let schedule = monitor.spec.validate()?;
    let next = schedule.next_due(at(tick), Utc::now())?;
    let Some(run) = shared.monitors.begin_run(name, tick, &shared.owner).await? else {
        // Another server finished this tick; only the schedule moves on.
        return shared
            .monitors
            .advance(name, tick, &shared.owner, next)
            .await;
    };
    let mut outcome = Outcome {
        verdict: run.verdict.clone(),
        check_id: run.check_id.clone(),
        drifted_features: run.drifted_features.clone(),
        issue_number: run.issue_number,
        execution_id: run.execution_id.clone(),
        notified: run.notified,
        error: None,
    };
    if let Err(e) = check_and_act(shared, &monitor, tick, &mut outcome).await {
        tracing::warn!(monitor = %name, error = %e, "monitor check failed");
        outcome.error = Some(e.to_string());
    }
    shared
        .monitors
        .finish(name, tick, &shared.owner, &outcome, next)
        .await
}

fn at(tick: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(tick)
        .single()
        .unwrap_or_else(Utc::now)
}

async fn check_and_act(
    shared: &Shared,
    monitor: &Monitor,
    tick: i64,
    outcome: &mut Outcome,
) -> Result<(), ToolError> {
    let spec = &monitor.spec;
    let router = shared.router()?;
    let result = if outcome.check_id.is_none() {
        let window = match spec.window_seconds {
            Some(s) => chrono::Duration::seconds(s as i64),
            None => spec.validate()?.period(at(tick))?,
        };
        let input = DetectDriftInput {
            model_name: Some(spec.model_name.clone()),
            data_uri: spec.data_uri.clone(),
            since: Some((at(tick) - window).to_rfc3339()),
            until: Some(at(tick).to_rfc3339()),
            thresholds: spec.thresholds,
            ..Default::default()
        };
        let result = detect_drift(&shared.store, Some(router), &shared.checks, input).await?;
        outcome.check_id = Some(result.check_id.clone());
        outcome.verdict = Some(match &result.comparison {
            Some(c) => c.verdict.as_str().to_string(),
            None => result.status.clone(),
        });
        outcome.drifted_features = result
            .comparison
            .as_ref()
            .map(|c| c.drifted_features.clone())
            .unwrap_or_default();
        shared
            .monitors
            .note_progress(&spec.name, tick, outcome)
            .await?;
        Some(result)
    } else {
        None
    };
    let acting = match outcome.verdict.as_deref() {
        Some("drift") => true,
        Some("warn") => spec.actions.on_warn,
        _ => false,
    };
    if !acting {
        return Ok(());
    }
    if spec.actions.open_retraining_issue && outcome.issue_number.is_none() {
        let marker = format!("<!-- mlops-monitor:{}:{tick} -->", spec.name);
        let issue = match find_issue(router, &spec.name, &marker).await? {
            Some(n) => n,
            None => open_issue(shared, router, monitor, result.as_ref(), &marker, outcome).await?,
        };
        outcome.issue_number = Some(issue);
        shared
            .monitors
            .note_progress(&spec.name, tick, outcome)
            .await?;
    }
    if spec.actions.start_workflow
        && outcome.execution_id.is_none()
        && let Some(issue) = outcome.issue_number
    {
        let started = call(router, "start_workflow", json!({"issue_number": issue})).await?;
        outcome.execution_id = started["id"].as_str().map(String::from);
        shared
            .monitors
            .note_progress(&spec.name, tick, outcome)
            .await?;
    }
    if spec.actions.notify && !outcome.notified {
        let mut context = json!({
            "model_name": spec.model_name,
            "monitor": spec.name,
            "drifted_features": outcome.drifted_features,
        });
        if let Some(r) = &result {
            if let Some(v) = r.model_version {
                context["version"] = json!(v);
            }
            if let Some(uri) = &r.report_html_uri {
                context["report"] = json!(uri);
            }
        }
        if let Some(issue) = outcome.issue_number {
            context["retraining_issue"] = json!(issue);
        }
        call(
            router,
            "send_notification",
            json!({"template": "drift", "context": context, "channels": spec.actions.channels, "wait_seconds": 0}),
        )
        .await?;
        outcome.notified = true;
    }
    Ok(())
}

async fn call(router: &ToolRouter, tool: &str, args: Value) -> Result<Value, ToolError> {
    Ok(router
        .call(tool, args, ToolContext::default())
        .await?
        .structured)
}

/// The retraining issue to use for this tick: the one it opened before (found by its marker, in
/// any state), or one this monitor opened earlier that is still open — one request at a time.
async fn find_issue(
    router: &ToolRouter,
    monitor: &str,
    marker: &str,
) -> Result<Option<i64>, ToolError> {
    let listed = call(
        router,
        "list_issues",
        json!({"labels": ["mlops:train"], "state": "all", "limit": 100}),
    )
    .await?;
    let issues = listed["issues"].as_array().cloned().unwrap_or_default();
    let body = |i: &Value| i["body"].as_str().unwrap_or_default().to_string();
    let ours = format!("<!-- mlops-monitor:{monitor}:");
    let found = issues
        .iter()
        .find(|i| body(i).contains(marker))
        .or_else(|| {
            issues
                .iter()
                .find(|i| i["state"] == "open" && body(i).contains(&ours))
        });
    Ok(found.and_then(|i| i["number"].as_i64()))
}

/// Opens the issue the workflow retrains from: the Production version's algorithm,
/// hyperparameters, target and task, with the monitor's `retrain` settings laid over them.
async fn open_issue(
    shared: &Shared,
    router: &ToolRouter,
    monitor: &Monitor,
    result: Option<&DriftResult>,
    marker: &str,
    outcome: &Outcome,
) -> Result<i64, ToolError> {
    let spec = &monitor.spec;
    let model = watched_model(
        &shared.store,
        Some(router),
        None,
        Some(&spec.model_name),
        Selector::production(),
    )
    .await?
    .ok_or_else(|| ToolError::Execution("the watched model was not found".into()))?;
    let m = &model.artifact.manifest;
    let retrain = &spec.retrain;
    let dataset = retrain
        .data_uri
        .clone()
        .or_else(|| spec.data_uri.clone())
        .ok_or_else(|| ToolError::validation("the monitor has no data to retrain on"))?;
    let metric = match &retrain.metric {
        Some(m) => m.clone(),
        None => metric_names::default_for(&m.task)
            .map(|d| d.name.to_string())
            .ok_or_else(|| {
                ToolError::validation(format!(
                    "set retrain.metric: a {} model has no default metric",
                    m.task
                ))
            })?,
    };
    let threshold = match retrain.threshold {
        Some(t) => t,
        None => {
            // The score the Production version had at training, less a little room.
            let key = metric_names::storage_key(&metric);
            let recorded = ["validation", "train"]
                .iter()
                .find_map(|p| m.metrics.get(format!("{p}_{key}")).and_then(Value::as_f64));
            match recorded {
                Some(r) if metric_names::lower_is_better(&metric) => r * 1.1,
                Some(r) => r - 0.05,
                None => {
                    return Err(ToolError::validation(format!(
                        "set retrain.threshold: `{}` has no recorded {metric} to start from",
                        spec.model_name
                    )));
                }
            }
        }
    };
    let algorithm = retrain
        .algorithm
        .clone()
        .unwrap_or_else(|| m.algorithm.clone());
    let mut hyperparameters = match &retrain.hyperparameters {
        Some(h) => Value::Object(h.clone()),
        None => m.hyperparameters.clone(),
    };
    // A model records its seed with its settings; a training request takes it on its own line.
    let seed = hyperparameters
        .as_object_mut()
        .and_then(|h| h.remove("seed"))
        .and_then(|s| s.as_u64());
    let mut yaml = format!(
        "dataset: {dataset}\ntask_type: {}\nalgorithm: {algorithm}\nmetric: {metric}\nthreshold: {threshold}\nmodel_name: {}\n",
        m.task, spec.model_name
    );
    if let Some(t) = &m.target {
        yaml.push_str(&format!("target_column: {t}\n"));
    }
    if let Some(seed) = seed {
        yaml.push_str(&format!("seed: {seed}\n"));
    }
    if hyperparameters.as_object().is_some_and(|h| !h.is_empty()) {
        // JSON is YAML: a flow mapping keeps every value's type.
        yaml.push_str(&format!("hyperparameters: {hyperparameters}\n"));
    }
    let why = match result {
        Some(r) => format!(
            "drift in {} of `{}`{} (check `{}`, report {})",
            outcome.drifted_features.join(", "),
            spec.model_name,
            r.model_version
                .map(|v| format!(" version {v}"))
                .unwrap_or_default(),
            r.check_id,
            r.report_html_uri.as_deref().unwrap_or("not written")
        ),
        None => format!(
            "drift in {} of `{}`",
            outcome.drifted_features.join(", "),
            spec.model_name
        ),
    };
    let body = format!(
        "Monitor `{}` found {why}. Retrain on fresh data:\n\n```yaml\n{yaml}```\n\n{marker}\n",
        spec.name
    );
    let created = call(
        router,
        "create_issue",
        json!({
            "title": format!("Retrain {}: drift detected by monitor {}", spec.model_name, spec.name),
            "body": body,
            "labels": ["mlops:train"],
        }),
    )
    .await?;
    created["issue"]["number"]
        .as_i64()
        .ok_or_else(|| ToolError::Execution("create_issue returned no issue number".into()))
}
