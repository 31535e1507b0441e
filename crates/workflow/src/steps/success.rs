//! The success path: register the model and make it Production, commit the training history,
//! and tell the requester.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::effects::{AWAITING, RUNNING, SUCCEEDED, notify, set_label};
use super::{Attempt, Outcome};
use crate::context::Context;
use crate::definition::StateName::{EvaluateModel, TrainModel};
use crate::error::WorkflowError;
use crate::history;

/// RegisterModel: register, approve and promote the model. Resumed after a crash, it first looks
/// for the version this execution already registered, so a model is never registered twice.
pub(super) async fn register_model(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let (engine, timeout) = (attempt.engine, attempt.timeout);
    let run_key = format!("{}/{}", c.execution_id, c.retry_count);
    let found = engine
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
    let version =
        match existing {
            Some(v) => v,
            None => {
                let metrics: BTreeMap<String, f64> = c
                    .output(EvaluateModel, "metrics")
                    .and_then(Value::as_object)
                    .map(|o| {
                        o.iter()
                            .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                            .collect()
                    })
                    .unwrap_or_default();
                let out = engine
                .call("register_model", json!({
                    "model_name": c.model_name,
                    "model_uri": c.text(TrainModel, "model_uri")?,
                    "metrics": metrics,
                    "tags": {"mlops.run": run_key},
                    "description": format!("Trained by workflow execution {}", c.execution_id),
                    "lineage": {
                        "dataset_uri": c.request.dataset,
                        "training_job_name": attempt.run_name,
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
    engine
        .call(
            "set_model_approval",
            json!({
                "model_name": c.model_name, "version": version, "approval_status": "Approved",
                "actor": "mlops-workflow", "reason": c.reason,
            }),
            timeout,
        )
        .await
        .or_else(already_done)?;
    engine
        .call(
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

/// A repeated approval or promotion (a resumed step) is not an error.
fn already_done(e: WorkflowError) -> Result<Value, WorkflowError> {
    let text = e.to_string();
    if text.contains("already") {
        Ok(Value::Null)
    } else {
        Err(e)
    }
}

/// WriteHistory: commit the run's record under `training_history/`.
pub(super) async fn write_history(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let content = history::markdown(c);
    let out = attempt
        .engine
        .call(
            "commit_training_history",
            json!({
                "content": content,
                "message": format!("Training history for {} ({})", c.model_name, c.execution_id),
            }),
            attempt.timeout,
        )
        .await?;
    Ok(Outcome::Next(out))
}

/// NotifySuccess: tell the requester which version is in Production, where it is served, and
/// what it says about a row of the issue's data.
pub(super) async fn notify_success(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let mut context = c.notification_context();
    if let Some(v) = c.promoted_version {
        context.insert("version".into(), json!(v));
        context.insert(
            "endpoint".into(),
            json!(format!("/v2/models/{}/infer", c.model_name)),
        );
        if let Some(sample) = sample_prediction(attempt, c).await {
            context.insert("sample_prediction".into(), json!(sample));
        }
    }
    let sent = notify(attempt.engine, c, "success", context, attempt.timeout).await?;
    set_label(attempt.engine, c, SUCCEEDED, &[RUNNING, AWAITING]).await;
    Ok(Outcome::Next(sent))
}

/// What the Production version says about the first row of the issue's dataset, in words (e.g.
/// `label 1 (probability 0.93)`); nothing when it cannot be had, which never fails the run.
async fn sample_prediction(attempt: &Attempt<'_>, c: &Context) -> Option<String> {
    let (engine, timeout) = (attempt.engine, attempt.timeout);
    let sampled = async {
        let page = engine
            .call(
                "load_dataset",
                json!({"dataset_uri": c.request.dataset, "limit": 1, "profile": false}),
                timeout,
            )
            .await?;
        engine
            .call(
                "predict",
                json!({"model_name": c.model_name, "records": page["rows"]}),
                timeout,
            )
            .await
    };
    let predicted = match sampled.await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(execution_id = %c.execution_id, error = %e, "no sample prediction for the success notification");
            return None;
        }
    };
    let first = predicted["predictions"].get(0)?;
    let version = predicted["version"].as_i64()?;
    let said = match (first.get("label"), first.get("value")) {
        (Some(label), _) => {
            let label = label.as_str().unwrap_or_default();
            let p = first["probabilities"][label].as_f64().unwrap_or(f64::NAN);
            format!("label {label} (probability {p:.3})")
        }
        (None, Some(value)) => format!(
            "value {}",
            value.as_f64().map_or("?".into(), |v| format!("{v:.4}"))
        ),
        (None, None) => first.to_string(),
    };
    Some(format!(
        "{said} for the first row of the dataset (version {version})"
    ))
}
