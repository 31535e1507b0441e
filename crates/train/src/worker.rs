//! The `train-worker` side of a remote job: runs a spec from the artifact store with the code the
//! local backend runs, then writes the job's final report beside the spec as `result.json`, where
//! the server that submitted the job reads it.

use mlops_core::{ArtifactStore, ToolContext};
use serde_json::Value;

use crate::error::TrainError;
use crate::runner::start_job;
use crate::spec::{RESULT_FILE, SPEC_FILE, TrainingSpec, execute};
use mlops_jobs::JobOptions;
use mlops_jobs::{JobManager, JobSnapshot, JobStatus};

/// Runs the job of the spec at `spec_uri` (`.../jobs/<job>/spec.json`) to its end and writes its
/// report; returns the report, whose status says whether the training succeeded. An error means
/// no report could be written (an unreadable spec, an unreachable store).
pub async fn run_spec(store: &ArtifactStore, spec_uri: &str) -> Result<JobSnapshot, TrainError> {
    let folder = spec_uri.trim().strip_suffix(SPEC_FILE).ok_or_else(|| {
        TrainError::invalid(format!(
            "the spec must be a job's `{SPEC_FILE}` (jobs/<job>/{SPEC_FILE}), got `{spec_uri}`"
        ))
    })?;
    let result_ref = store.resolve(&format!("{folder}{RESULT_FILE}"))?;
    let spec_ref = store.resolve(spec_uri)?;
    let spec: TrainingSpec = serde_json::from_slice(&store.get(&spec_ref).await?).map_err(|e| {
        TrainError::invalid(format!("`{}` is not a training spec: {e}", spec_ref.uri()))
    })?;
    let name = spec.training_job_name.clone();
    let algorithm = spec.task.algorithm_name();
    let jobs = JobManager::new();
    // The server checked the name and `overwrite` when it submitted the job.
    let opts = JobOptions {
        name: Some(name.clone()),
        overwrite: true,
        wait: true,
        max_runtime_seconds: spec.max_runtime_seconds,
    };
    let outcome = match spec.plan() {
        Ok(plan) => {
            let (s, o) = (store.clone(), opts.clone());
            start_job(store, &jobs, &opts, algorithm, |job, name| {
                let spec = TrainingSpec {
                    training_job_name: name,
                    ..spec
                };
                execute(s, spec, plan, job, ToolContext::default(), o)
            })
            .await
        }
        Err(e) => Err(e),
    };
    let job = match jobs.get(&name) {
        Some(job) => job,
        None => jobs.start(&name, algorithm).map_err(TrainError::invalid)?,
    };
    // It failed before it started (its settings, its name) or its task panicked: that is its end.
    if job.snapshot().status == JobStatus::Running {
        let error = outcome.err().map(|e| e.to_string());
        job.finish(JobStatus::Failed, Value::Null, None, error);
    }
    let report = job.snapshot();
    let body = serde_json::to_vec_pretty(&report)
        .map_err(|e| TrainError::failed(format!("could not encode the job's report: {e}")))?;
    store.put(&result_ref, body.into()).await?;
    Ok(report)
}
