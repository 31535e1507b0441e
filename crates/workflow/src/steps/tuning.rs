//! TuneHyperparameters: with the issue's `tune:` block, a study on the training split whose best
//! settings TrainModel then uses. The study is named after the run, so a resumed attempt follows
//! the study it started (which a server taking it over resumes) instead of starting another; a
//! retry after a study that failed starts a fresh one; an operator-approved retry (a new run)
//! searches afresh.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Attempt, Outcome};
use crate::context::Context;
use crate::definition::StateName::PrepareData;
use crate::error::WorkflowError;

/// How often a running study is asked how it is doing.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) async fn tune_hyperparameters(
    attempt: &Attempt<'_>,
    c: &mut Context,
) -> Result<Outcome, WorkflowError> {
    let r = &c.request;
    let Some(tune) = &r.tune else {
        return Ok(Outcome::Next(json!({"tuned": false})));
    };
    let (study, start) = study_of(attempt).await?;
    let study = &study;
    // Settings the issue fixes stay fixed, unless the search covers them.
    let fixed: Map<String, Value> = r
        .hyperparameters
        .iter()
        .filter(|(k, _)| !tune.search_space.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if start {
        attempt
            .engine
            .call(
                "tune_hyperparameters",
                json!({
                    "study_name": study,
                    "task": r.task_type.as_str(),
                    "algorithm": r.algorithm,
                    "train_data_uri": c.text(PrepareData, "train_data_uri")?,
                    "hyperparameters": fixed,
                    "search_space": tune.search_space,
                    // The name for the metric; every tool reads it the same way.
                    "metric": r.metric,
                    "n_trials": tune.n_trials,
                    "timeout_seconds": tune.timeout_seconds,
                    "seed": r.seed.unwrap_or(42),
                    "wait": false,
                }),
                attempt.timeout,
            )
            .await?;
    }
    let deadline = Instant::now() + attempt.timeout;
    loop {
        let s = attempt
            .engine
            .call(
                "get_tuning_study",
                json!({"study_name": study}),
                attempt.timeout,
            )
            .await?;
        match s["status"].as_str() {
            Some("running") if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            Some("running") => {
                let _ = attempt
                    .engine
                    .call(
                        "cancel_tuning_study",
                        json!({"study_name": study}),
                        attempt.timeout,
                    )
                    .await;
                return Err(WorkflowError::Step(format!(
                    "tuning study `{study}` ran past the step's {} s and was cancelled",
                    attempt.timeout.as_secs()
                )));
            }
            Some("completed") => {
                return Ok(Outcome::Next(json!({
                    "tuned": true,
                    "study_name": study,
                    "metric": s["metric"],
                    "baseline_value": s["baseline_value"],
                    "best_value": s["best_trial"]["value"],
                    "best_trial": s["best_trial"]["number"],
                    "trials_complete": s["trial_counts"]["complete"],
                    "best_hyperparameters": s["best_hyperparameters"],
                })));
            }
            other => {
                return Err(WorkflowError::Step(format!(
                    "tuning study `{study}` ended {}: {}",
                    other.unwrap_or("without a status"),
                    s["error"].as_str().unwrap_or("no error recorded")
                )));
            }
        }
    }
}

/// The study this attempt follows, and whether it must start it: the attempt's own study when it
/// is running or finished (a resumed attempt), else a fresh one (`<run>-a2`, `-a3`, …) in place
/// of one that failed or was cancelled, so the state's retry searches again.
async fn study_of(attempt: &Attempt<'_>) -> Result<(String, bool), WorkflowError> {
    let mut name = attempt.run_name.clone();
    for n in 2..=MAX_STUDIES_PER_ATTEMPT + 1 {
        let found = attempt
            .engine
            .call(
                "get_tuning_study",
                json!({"study_name": name}),
                attempt.timeout,
            )
            .await;
        match found {
            Err(e) if e.to_string().contains("no tuning study named") => return Ok((name, true)),
            Err(e) => return Err(e),
            Ok(s) if s["status"] == "running" || s["status"] == "completed" => {
                return Ok((name, false));
            }
            Ok(_) => name = format!("{}-a{n}", attempt.run_name),
        }
    }
    Err(WorkflowError::Step(format!(
        "{MAX_STUDIES_PER_ATTEMPT} tuning studies of `{}` ended without a result; see list_tuning_studies",
        attempt.run_name
    )))
}

/// Studies one run may start before the step gives up (its retries together).
const MAX_STUDIES_PER_ATTEMPT: u32 = 10;
