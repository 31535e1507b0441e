//! Running a training job: naming, the wait-or-background choice, cancellation, the wall-clock
//! limit, and saving the model with its metrics history. Every algorithm goes through here.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mlops_core::{ArtifactStore, ModelArtifact, ModelManifest, ToolContext};
use serde_json::Value;

use mlops_ml::{FitControl, HISTORY_BLOB, MetricPoint, TrainedModel};

use crate::error::TrainError;
use crate::jobs::{Job, JobManager, JobSnapshot, JobStatus};

/// How long a stopped job waits for a fit that cannot be interrupted before giving up on it.
const ABANDON_AFTER: Duration = Duration::from_millis(500);

/// Checks a client-chosen job name.
pub fn check_job_name(name: &str) -> Result<(), TrainError> {
    mlops_core::check_folder_name("training_job_name", name).map_err(TrainError::invalid)
}

fn generated_job_name() -> String {
    let now = chrono::Utc::now();
    format!(
        "train-{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        now.timestamp_subsec_micros() % 0x10000
    )
}

/// How a job is started, from the tool's input.
#[derive(Clone)]
pub struct JobOptions {
    pub name: Option<String>,
    pub overwrite: bool,
    pub wait: bool,
    pub max_runtime_seconds: Option<u64>,
}

/// What a finished job hands back: its final metrics and the saved model's folder.
pub type JobResult = Result<(Value, String), TrainError>;

/// Starts a job named by `opts` running `body`; waits for it when asked, else returns at once.
pub async fn start_job<F, Fut>(
    store: &ArtifactStore,
    jobs: &Arc<JobManager>,
    opts: &JobOptions,
    algorithm: &str,
    body: F,
) -> Result<JobSnapshot, TrainError>
where
    F: FnOnce(Arc<Job>, String) -> Fut,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    let name = opts.name.clone().unwrap_or_else(generated_job_name);
    check_job_name(&name)?;
    let manifest_ref = ModelArtifact::manifest_ref(store, &ModelArtifact::folder_key(&name))?;
    if !opts.overwrite && store.exists(&manifest_ref).await? {
        return Err(TrainError::invalid(format!(
            "a model named `{name}` already exists; choose another training_job_name or pass overwrite: true"
        )));
    }
    if opts.overwrite {
        stop_running(jobs, &name).await;
    }
    let job = jobs.start(&name, algorithm).map_err(TrainError::invalid)?;
    jobs.record(&job.snapshot()).await;
    let span = tracing::info_span!("training_job", training_job_name = %name, algorithm);
    let work = body(job.clone(), name);
    let run = {
        let (job, jobs) = (job.clone(), jobs.clone());
        async move {
            // The record is refreshed while the job runs, so other servers see it is alive.
            let heartbeat = {
                let (job, jobs) = (job.clone(), jobs.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(crate::jobs::HEARTBEAT).await;
                        jobs.record(&job.snapshot()).await;
                    }
                })
            };
            let result = work.await;
            heartbeat.abort();
            match &result {
                Ok((metrics, uri)) => job.finish(
                    JobStatus::Completed,
                    metrics.clone(),
                    Some(uri.clone()),
                    None,
                ),
                Err(TrainError::Cancelled(_)) => job.finish(
                    JobStatus::Cancelled,
                    Value::Null,
                    None,
                    Some("cancelled".into()),
                ),
                Err(e) => job.finish(JobStatus::Failed, Value::Null, None, Some(e.to_string())),
            }
            jobs.record(&job.snapshot()).await;
            tracing::info!(status = ?job.snapshot().status, "training job ended");
            result
        }
    };
    // The job runs in its own task, so a caller that stops waiting (a dropped request, a
    // timed-out workflow step) cannot leave it half-finished; its cancel token stops it instead.
    let handle = tokio::spawn(tracing::Instrument::instrument(run, span));
    if opts.wait {
        handle
            .await
            .map_err(|e| TrainError::failed(format!("the training task stopped: {e}")))??;
    }
    Ok(job.snapshot())
}

/// Replacing a job that is still running (e.g. a retried workflow step): cancel it and wait,
/// briefly, for it to end.
async fn stop_running(jobs: &JobManager, name: &str) {
    let Some(old) = jobs.get(name) else { return };
    if old.snapshot().status != JobStatus::Running {
        return;
    }
    old.cancel.cancel();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while old.snapshot().status == JobStatus::Running && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a blocking fit off the async threads. It is stopped by the job's cancel token, by the
/// caller's (when the caller waits), or by the wall-clock limit: the fit sees the flag and should
/// return `Ok(None)`; one that cannot be interrupted is abandoned after a short grace so the job
/// still ends at once (its thread finishes in the background and its result is dropped).
pub async fn run_blocking<T: Send + 'static, E: Into<TrainError> + Send + 'static>(
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
    fit: impl FnOnce(&FitControl) -> Result<Option<T>, E> + Send + 'static,
) -> Result<T, TrainError> {
    let name = job.snapshot().training_job_name;
    let cancelled = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let timed_out = Arc::new(AtomicBool::new(false));
    let fit_done = tokio_util::sync::CancellationToken::new();
    {
        let (cancelled, stop, timed_out, fit_done) = (
            cancelled.clone(),
            stop.clone(),
            timed_out.clone(),
            fit_done.clone(),
        );
        let job_cancel = job.cancel.clone();
        let caller_cancel = opts.wait.then(|| ctx.cancel.clone());
        let limit = opts
            .max_runtime_seconds
            .map(Duration::from_secs)
            .unwrap_or(Duration::MAX);
        tokio::spawn(async move {
            let caller = async {
                match caller_cancel {
                    Some(t) => t.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = fit_done.cancelled() => return,
                _ = job_cancel.cancelled() => {}
                _ = caller => {}
                _ = tokio::time::sleep(limit) => timed_out.store(true, Ordering::Relaxed),
            }
            cancelled.store(true, Ordering::Relaxed);
            stop.cancel();
        });
    }
    let control = {
        let (job, metrics_job, progress) = (job.clone(), job.clone(), ctx.progress_fn());
        FitControl::new(
            cancelled.clone(),
            move |done, total, message: String| {
                job.set_progress(done as f64 / total.max(1) as f64, Some(message.clone()));
                if let Some(p) = &progress {
                    p(done as f64, Some(total as f64), Some(message));
                }
            },
            move |step, metric, value| metrics_job.push_metric(step, metric, value),
        )
    };
    let mut handle = tokio::task::spawn_blocking(move || fit(&control));
    let outcome = tokio::select! {
        r = &mut handle => Some(r),
        _ = stop.cancelled() => tokio::time::timeout(ABANDON_AFTER, &mut handle).await.ok(),
    };
    fit_done.cancel();
    let stopped = || {
        if timed_out.load(Ordering::Relaxed) {
            TrainError::TimedOut {
                name: name.clone(),
                seconds: opts.max_runtime_seconds.unwrap_or(0),
            }
        } else {
            TrainError::Cancelled(name.clone())
        }
    };
    match outcome {
        None => Err(stopped()),
        Some(joined) => {
            let result = joined
                .map_err(|e| TrainError::failed(format!("the training thread stopped: {e}")))?;
            match result.map_err(Into::into)? {
                Some(v) if !cancelled.load(Ordering::Relaxed) => Ok(v),
                _ => Err(stopped()),
            }
        }
    }
}

/// Saves `model` as `models/<name>/` with the job's metrics history beside it; returns the folder.
pub async fn save_model(
    store: &ArtifactStore,
    job: &Job,
    model: &TrainedModel,
    manifest: ModelManifest,
) -> Result<String, TrainError> {
    let history: Vec<MetricPoint> = job.full_history();
    let history = serde_json::to_vec(&history)
        .map_err(|e| TrainError::failed(format!("could not encode the metrics history: {e}")))?;
    let mut artifact = model.to_artifact(
        manifest,
        vec![(HISTORY_BLOB, "application/json", Bytes::from(history))],
    )?;
    let saved = artifact.save(store).await?;
    Ok(mlops_core::folder_of(saved.uri()).to_string())
}

/// A manifest with the fields every job fills the same way.
pub fn manifest(
    name: &str,
    model: &TrainedModel,
    task: &str,
    feature_names: Vec<String>,
    hyperparameters: Value,
    metrics: Value,
) -> ModelManifest {
    ModelManifest {
        format_version: 0,
        name: name.into(),
        algorithm: model.algorithm().into(),
        task: task.into(),
        feature_names,
        target: None,
        classes: Vec::new(),
        hyperparameters,
        metrics,
        pipeline: None,
        training_data_uri: None,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        blobs: Default::default(),
    }
}
