//! The retry loop: check the retry budget, ask the operator, wait for the answer, and count the
//! retry before the machine goes back to PrepareData.

use serde_json::{Value, json};

use super::effects::{AWAITING, RUNNING, notify, set_label};
use super::{Attempt, Outcome};
use crate::context::Context;
use crate::definition::{self, StateName};
use crate::error::WorkflowError;
use crate::store::now_ms;

/// CheckRetryLimit: ask the operator (next) while retries are left, else give up (otherwise).
pub(super) fn check_retry_limit(c: &mut Context) -> Outcome {
    let max_retry = c.request.max_retry;
    if c.retry_count < max_retry {
        return Outcome::Next(json!({"retry_count": c.retry_count, "max_retry": max_retry}));
    }
    c.reason = Some(format!(
        "{} after {} retries (max_retry {max_retry})",
        c.reason.clone().unwrap_or_default(),
        c.retry_count,
    ));
    Outcome::Otherwise(
        json!({"retry_count": c.retry_count, "max_retry": max_retry, "exhausted": true}),
    )
}

/// NotifyOperator: make the wait's task token and send the approval request.
pub(super) async fn notify_operator(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    // The token is made once per wait, so a retried notification reuses it.
    let token = match &c.task_token {
        Some(t) => t.clone(),
        None => {
            let t = format!("tok-{}", uuid::Uuid::new_v4().simple());
            c.task_token = Some(t.clone());
            t
        }
    };
    let wait = c.timeout(definition::state(StateName::WaitForOperatorInput));
    let deadline = now_ms() + wait.as_millis() as i64;
    attempt
        .engine
        .store()
        .create_token(&token, attempt.id, deadline)
        .await?;
    let mut context = c.notification_context();
    context.insert("task_token".into(), json!(token));
    notify(
        attempt.engine,
        c,
        "retry_approval",
        context,
        attempt.timeout,
    )
    .await?;
    set_label(attempt.engine, c, AWAITING, &[]).await;
    Ok(Outcome::Next(
        json!({"task_token": token, "expires_at_ms": deadline}),
    ))
}

/// WaitForOperatorInput: wait until the state's timeout for an answer; an approval (with its
/// changed hyperparameters) goes on, a rejection gives up.
pub(super) async fn wait_for_operator_input(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let Some(d) = c.decision.take() else {
        return Ok(Outcome::Wait(now_ms() + attempt.timeout.as_millis() as i64));
    };
    c.task_token = None;
    set_label(attempt.engine, c, RUNNING, &[AWAITING]).await;
    if d["decision"] == "approved" {
        if let Some(Value::Object(o)) = d.get("overrides") {
            for (k, v) in o {
                c.request.hyperparameters.insert(k.clone(), v.clone());
            }
        }
        return Ok(Outcome::Next(d));
    }
    c.reason = Some(format!(
        "the operator rejected the retry{}",
        d["comment"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    ));
    Ok(Outcome::Otherwise(d))
}

/// IncrementRetry: count the retry and forget the outputs of the try before.
pub(super) fn increment_retry(c: &mut Context) -> Outcome {
    use StateName::{EvaluateModel, JudgeResults, PrepareData, TrainModel};
    c.retry_count += 1;
    for stale in [PrepareData, TrainModel, EvaluateModel, JudgeResults] {
        c.outputs.remove(stale.as_str());
    }
    c.verdict = None;
    Outcome::Next(json!({"retry_count": c.retry_count}))
}
