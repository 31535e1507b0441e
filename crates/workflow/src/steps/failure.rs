//! The failure path: undo this execution's promotion, if any, and tell the requester why the run
//! failed.

use serde_json::json;

use super::effects::{AWAITING, FAILED, RUNNING, notify, set_label};
use super::{Attempt, Outcome};
use crate::context::Context;
use crate::error::WorkflowError;

/// RollbackModel: a failed run promotes nothing, so only a promotion this execution made before
/// a later step failed is undone.
pub(super) async fn rollback_model(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let Some(version) = c.promoted_version else {
        return Ok(Outcome::Next(json!({
            "rolled_back": false,
            "note": "this execution promoted no version; Production is unchanged"
        })));
    };
    let out = attempt
        .engine
        .call(
            "rollback_model",
            json!({
                "model_name": c.model_name,
                "actor": "mlops-workflow",
                "reason": format!("execution {} failed after promoting version {version}", c.execution_id),
            }),
            attempt.timeout,
        )
        .await?;
    c.promoted_version = None;
    Ok(Outcome::Next(json!({"rolled_back": true, "rollback": out})))
}

/// NotifyFailure: the `error` template when a step failed, else `failure` with the reason.
pub(super) async fn notify_failure(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
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
    let sent = notify(attempt.engine, c, template, context, attempt.timeout).await?;
    set_label(attempt.engine, c, FAILED, &[RUNNING, AWAITING]).await;
    Ok(Outcome::Next(sent))
}
