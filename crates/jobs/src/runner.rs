//! Running a job: the wait-or-background choice, a heartbeat while it runs, cancellation (its
//! own token, or the caller's while the caller waits) and the wall-clock limit, and a blocking
//! body run off the async threads with a [`FitControl`] that reports into the job.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mlops_core::ToolContext;
use mlops_ml::FitControl;
use serde_json::Value;

use crate::job::{Job, JobSnapshot, JobStatus};
use crate::manager::{HEARTBEAT, JobManager};

/// How long a stopped job waits for work that cannot be interrupted before giving up on it.
const ABANDON_AFTER: Duration = Duration::from_millis(500);

/// How a job is started, from the tool's input.
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub name: Option<String>,
    pub overwrite: bool,
    pub wait: bool,
    pub max_runtime_seconds: Option<u64>,
}

/// What a finished job hands back: its final metrics and where its result was saved.
pub type JobOutput = (Value, Option<String>);

/// Why a job ended early, as the runner sees it; each kind of job turns it into its own error.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job could not start (a running job has its name).
    #[error("{0}")]
    Refused(String),
    #[error("job `{0}` was cancelled")]
    Cancelled(String),
    #[error("job `{name}` ran past its limit of {seconds} s and was stopped")]
    TimedOut { name: String, seconds: u64 },
    #[error("{0}")]
    Failed(String),
}

/// A job kind's error: made from the runner's, and telling a cancellation from a failure (a
/// cancelled job is recorded as cancelled, not failed).
pub trait JobFailure: From<JobError> + std::fmt::Display + Send + 'static {
    fn is_cancellation(&self) -> bool;
}

/// Starts `body` as the job `name` (already checked by the caller), labelled `label` (e.g. the
/// algorithm), inside `span`; waits for it when `opts.wait`, else returns at once.
pub async fn start_job<E, F, Fut>(
    jobs: &Arc<JobManager>,
    name: String,
    label: &str,
    opts: &JobOptions,
    span: tracing::Span,
    body: F,
) -> Result<JobSnapshot, E>
where
    E: JobFailure,
    F: FnOnce(Arc<Job>, String) -> Fut,
    Fut: Future<Output = Result<JobOutput, E>> + Send + 'static,
{
    if opts.overwrite {
        jobs.stop(&name).await;
    }
    let job = jobs
        .start(&name, label)
        .map_err(|e| E::from(JobError::Refused(e)))?;
    jobs.record(&job.snapshot()).await;
    let work = body(job.clone(), name);
    let run = {
        let (job, jobs) = (job.clone(), jobs.clone());
        async move {
            // The record is refreshed while the job runs, so other servers see it is alive.
            let heartbeat = {
                let (job, jobs) = (job.clone(), jobs.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(HEARTBEAT).await;
                        jobs.record(&job.snapshot()).await;
                    }
                })
            };
            let result = work.await;
            heartbeat.abort();
            match &result {
                Ok((metrics, uri)) => {
                    job.finish(JobStatus::Completed, metrics.clone(), uri.clone(), None)
                }
                Err(e) if e.is_cancellation() => job.finish(
                    JobStatus::Cancelled,
                    Value::Null,
                    None,
                    Some("cancelled".into()),
                ),
                Err(e) => job.finish(JobStatus::Failed, Value::Null, None, Some(e.to_string())),
            }
            jobs.record(&job.snapshot()).await;
            tracing::info!(status = ?job.snapshot().status, "job ended");
            result
        }
    };
    // The job runs in its own task, so a caller that stops waiting (a dropped request, a
    // timed-out workflow step) cannot leave it half-finished; its cancel token stops it instead.
    let handle = tokio::spawn(tracing::Instrument::instrument(run, span));
    if opts.wait {
        handle
            .await
            .map_err(|e| E::from(JobError::Failed(format!("the job's task stopped: {e}"))))??;
    }
    Ok(job.snapshot())
}

/// Runs blocking work off the async threads. It is stopped by the job's cancel token, by the
/// caller's (when the caller waits), or by the wall-clock limit: the work sees the flag and should
/// return `Ok(None)`; work that cannot be interrupted is abandoned after a short grace so the job
/// still ends at once (its thread finishes in the background and its result is dropped).
pub async fn run_blocking<T, E, W>(
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
    work: impl FnOnce(&FitControl) -> Result<Option<T>, W> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: JobFailure,
    W: Into<E> + Send + 'static,
{
    let name = job.snapshot().name;
    let cancelled = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let timed_out = Arc::new(AtomicBool::new(false));
    let work_done = tokio_util::sync::CancellationToken::new();
    {
        let (cancelled, stop, timed_out, work_done) = (
            cancelled.clone(),
            stop.clone(),
            timed_out.clone(),
            work_done.clone(),
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
                _ = work_done.cancelled() => return,
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
    let mut handle = tokio::task::spawn_blocking(move || work(&control));
    let outcome = tokio::select! {
        r = &mut handle => Some(r),
        _ = stop.cancelled() => tokio::time::timeout(ABANDON_AFTER, &mut handle).await.ok(),
    };
    work_done.cancel();
    let stopped = || {
        E::from(if timed_out.load(Ordering::Relaxed) {
            JobError::TimedOut {
                name: name.clone(),
                seconds: opts.max_runtime_seconds.unwrap_or(0),
            }
        } else {
            JobError::Cancelled(name.clone())
        })
    };
    match outcome {
        None => Err(stopped()),
        Some(joined) => {
            let result = joined
                .map_err(|e| E::from(JobError::Failed(format!("the job's thread stopped: {e}"))))?;
            match result.map_err(Into::into)? {
                Some(v) if !cancelled.load(Ordering::Relaxed) => Ok(v),
                _ => Err(stopped()),
            }
        }
    }
}
