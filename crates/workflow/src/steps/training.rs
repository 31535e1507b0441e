//! The training steps: prepare the data, train, evaluate on the held-out split, and judge the
//! chosen metric against the threshold.

use mlops_core::metric_names;
use mlops_request::MetricGoal;
use serde_json::{Map, Value, json};

use super::{Attempt, Outcome};
use crate::context::Context;
use crate::definition::StateName::{EvaluateModel, PrepareData, TrainModel, TuneHyperparameters};
use crate::error::WorkflowError;

/// PrepareData: split and preprocess the dataset.
pub(super) async fn prepare_data(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let r = &c.request;
    let out = attempt
        .engine
        .call("preprocess_supervised", json!({
            "dataset_uri": r.dataset,
            "target_column": r.target_column,
            "task_type": r.task_type.as_str(),
            "split": {"validation_fraction": 0.15, "test_fraction": 0.15, "seed": r.seed.unwrap_or(42)},
            "output_name": attempt.run_name,
            "format": "parquet",
        }), attempt.timeout)
        .await?;
    Ok(Outcome::Next(json!({
        "train_data_uri": out["train_data_uri"],
        "validation_data_uri": out["validation_data_uri"],
        "test_data_uri": out["test_data_uri"],
        "pipeline_uri": out["pipeline_uri"],
    })))
}

/// TrainModel: train on the prepared split and wait for the job.
pub(super) async fn train_model(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let r = &c.request;
    let tool = if c.classification() {
        "train_supervised_classifier"
    } else {
        "train_supervised_regressor"
    };
    // A tuned run trains with the study's best settings (the fixed ones among them).
    let hyperparameters = c
        .output(TuneHyperparameters, "best_hyperparameters")
        .filter(|h| h.is_object())
        .cloned()
        .unwrap_or_else(|| json!(r.hyperparameters));
    let out = attempt
        .engine
        .call(
            tool,
            json!({
                "algorithm": r.algorithm,
                "train_data_uri": c.text(PrepareData, "train_data_uri")?,
                "validation_data_uri": c.output(PrepareData, "validation_data_uri"),
                "training_job_name": attempt.run_name,
                "hyperparameters": hyperparameters,
                "seed": r.seed.unwrap_or(42),
                // A retried or resumed step trains again under the same name.
                "overwrite": true,
                "max_runtime_seconds": attempt.timeout.as_secs().max(1),
            }),
            attempt.timeout,
        )
        .await?;
    Ok(Outcome::Next(json!({
        "training_job_name": attempt.run_name,
        "model_uri": out["model_uri"],
        "metrics": out["metrics"],
    })))
}

/// EvaluateModel: score the model on the test split; the numbers are kept as its metrics.
pub(super) async fn evaluate_model(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let tool = if c.classification() {
        "evaluate_classifier"
    } else {
        "evaluate_regressor"
    };
    let out = attempt
        .engine
        .call(
            tool,
            json!({
                "model_uri": c.text(TrainModel, "model_uri")?,
                "test_data_uri": c.text(PrepareData, "test_data_uri")?,
            }),
            attempt.timeout,
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

/// JudgeResults: pass (next) or fail (otherwise) on the request's metric and threshold; an error
/// when the evaluation lacks the metric.
pub(super) fn judge_results(c: &mut Context) -> Result<Outcome, WorkflowError> {
    let r = &c.request;
    let metrics = c
        .output(EvaluateModel, "metrics")
        .cloned()
        .unwrap_or(Value::Null);
    let metric = &r.metric;
    // The name (`f1`) and the evaluation's key (`f1_macro`) are one metric.
    let value = metrics
        .get(metric_names::storage_key(metric))
        .and_then(Value::as_f64);
    let Some(value) = value.filter(|v| v.is_finite()) else {
        let reason = format!("the evaluation has no `{metric}` to judge");
        c.verdict = Some("error".into());
        c.reason = Some(reason.clone());
        return Err(WorkflowError::Step(reason));
    };
    let passed = r.metric_goal.passes(value, r.threshold);
    let op = if r.metric_goal == MetricGoal::Maximize {
        "≥"
    } else {
        "≤"
    };
    let verdict = if passed { "pass" } else { "fail" };
    let reason = format!(
        "{metric} {value:.4} {} {op} {} required",
        if passed { "meets" } else { "misses" },
        r.threshold
    );
    let out =
        json!({"verdict": verdict, "metric": metric, "value": value, "threshold": r.threshold});
    c.verdict = Some(verdict.into());
    c.reason = Some(reason);
    Ok(if passed {
        Outcome::Next(out)
    } else {
        Outcome::Otherwise(out)
    })
}
