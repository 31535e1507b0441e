//! Where training jobs run (`MLOPS_TRAINING_BACKEND`): `local` (the default) fits in this process;
//! `ray` and `sagemaker` run this project's binary as `train-worker` on another machine. For those
//! the server writes the job's spec to `jobs/<job>/spec.json`, submits the worker, follows the remote
//! job (cancellation, the wall-clock limit and state changes as progress), and at the end reads the
//! worker's `jobs/<job>/result.json` and verifies the model's checksums, so the job reports exactly
//! as a local one does.

mod ray;
mod sagemaker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mlops_core::{ArtifactStore, ModelArtifact, StoreError, ToolContext};
use mlops_ml::TrainedModel;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use ray::RayBackend;
pub use sagemaker::{SageMakerBackend, SageMakerSettings};

use crate::error::TrainError;
use crate::runner::JobResult;
use crate::spec::{RESULT_FILE, SPEC_FILE, TrainingSpec};
use mlops_jobs::JobOptions;
use mlops_jobs::{Job, JobSnapshot, JobStatus};

/// How often a remote job is polled unless `MLOPS_TRAINING_POLL_SECONDS` says otherwise.
const DEFAULT_POLL: Duration = Duration::from_secs(5);
/// How long a remote job that succeeded may take to show its result before it counts as failed.
/// A worker writes its result before it exits, so this is only a margin; it also covers stand-ins
/// such as moto, which report a SageMaker job completed the moment it is created.
const RESULT_GRACE: Duration = Duration::from_secs(60);
/// Failed polls in a row (the backend or the store unreachable) before a job is given up.
const MAX_POLL_ERRORS: u32 = 5;
/// Settings a worker needs to open the same artifact store, forwarded to it when set. Credentials
/// are never forwarded (Ray shows a job's environment in its dashboard): workers use their own
/// role or environment.
const WORKER_ENV: [&str; 9] = [
    "MLOPS_DATA_DIRS",
    "MLOPS_S3_KMS_KEY_ID",
    "MLOPS_KMS_KEY_ID",
    "MLOPS_MAX_TABLE_BYTES",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "LOG_LEVEL",
];

/// A remote job's state, as its backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStatus {
    /// Queued or running; the text names the state for progress messages (`PENDING`, `InProgress (Training)`).
    Running(String),
    Succeeded,
    /// Failed, with the backend's reason.
    Failed(String),
    Stopped,
}

/// A service that runs `train-worker --spec <uri>` somewhere and reports on it.
#[async_trait::async_trait]
pub trait TrainingBackend: Send + Sync {
    /// For messages: `ray`, `sagemaker`.
    fn name(&self) -> &'static str;
    /// Refuses, before a job starts, a spec this backend cannot run (a missing setting, data it
    /// cannot reach).
    fn check(&self, spec: &TrainingSpec) -> Result<(), TrainError>;
    /// Starts a worker on the spec at `spec_uri`; returns the backend's id of the job.
    async fn submit(&self, spec_uri: &str, spec: &TrainingSpec) -> Result<String, TrainError>;
    async fn status(&self, id: &str) -> Result<RemoteStatus, TrainError>;
    async fn stop(&self, id: &str) -> Result<(), TrainError>;
}

/// Where the training tools run their jobs.
#[derive(Clone, Default)]
pub enum Backend {
    /// In this process.
    #[default]
    Local,
    Remote(RemoteTraining),
}

impl Backend {
    /// The backend the settings name (the environment's names): `MLOPS_TRAINING_BACKEND`
    /// (`local`, `ray`, `sagemaker`), `MLOPS_TRAINING_POLL_SECONDS`; for ray
    /// `MLOPS_RAY_DASHBOARD_URL` (or `RAY_ADDRESS`) and `MLOPS_WORKER_COMMAND` (default: this
    /// executable); for sagemaker `SAGEMAKER_ROLE_ARN`, `MLOPS_SAGEMAKER_IMAGE`,
    /// `MLOPS_SAGEMAKER_INSTANCE_TYPE` and the AWS settings of the environment. Nothing is
    /// contacted here; a setting a job needs but that is missing fails that job's tool call.
    pub fn from_map(
        values: &BTreeMap<String, String>,
        store: &ArtifactStore,
    ) -> Result<Self, TrainError> {
        let get = |k: &str| {
            values
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut env: BTreeMap<String, String> = WORKER_ENV
            .iter()
            .filter_map(|k| get(k).map(|v| (k.to_string(), v)))
            .collect();
        env.insert("MLOPS_ARTIFACT_ROOT".into(), store.root_display().into());
        let backend: Arc<dyn TrainingBackend> = match get("MLOPS_TRAINING_BACKEND").as_deref() {
            None | Some("local") => return Ok(Backend::Local),
            Some("ray") => {
                let (var, url) = match (get("MLOPS_RAY_DASHBOARD_URL"), get("RAY_ADDRESS")) {
                    (Some(url), _) => ("MLOPS_RAY_DASHBOARD_URL", url),
                    (None, Some(url)) => ("RAY_ADDRESS", url),
                    (None, None) => {
                        return Err(TrainError::invalid(
                            "MLOPS_TRAINING_BACKEND=ray needs the Ray dashboard's address: set MLOPS_RAY_DASHBOARD_URL (or RAY_ADDRESS), e.g. http://127.0.0.1:8265",
                        ));
                    }
                };
                let command = match get("MLOPS_WORKER_COMMAND") {
                    Some(c) => c,
                    None => {
                        let exe = std::env::current_exe().map_err(|e| {
                            TrainError::invalid(format!(
                                "cannot find this executable for the Ray worker ({e}); set MLOPS_WORKER_COMMAND"
                            ))
                        })?;
                        shell_quote(&exe.display().to_string())
                    }
                };
                Arc::new(RayBackend::new(var, &url, command, env)?)
            }
            Some("sagemaker") => {
                let root = store.root_display();
                if !root.starts_with("s3://") {
                    return Err(TrainError::invalid(format!(
                        "MLOPS_TRAINING_BACKEND=sagemaker needs the artifact root on S3 (MLOPS_S3_BUCKET or MLOPS_ARTIFACT_ROOT=s3://...), where the training job reads its spec and data and writes the model; it is {root}"
                    )));
                }
                let aws = mlops_aws::AwsConfig::from_env().map_err(|e| {
                    TrainError::invalid(format!("MLOPS_TRAINING_BACKEND=sagemaker: {e}"))
                })?;
                Arc::new(SageMakerBackend::new(
                    &aws,
                    SageMakerSettings {
                        role_arn: get("SAGEMAKER_ROLE_ARN"),
                        image: get("MLOPS_SAGEMAKER_IMAGE"),
                        instance_type: get("MLOPS_SAGEMAKER_INSTANCE_TYPE")
                            .unwrap_or_else(|| "ml.m5.xlarge".into()),
                        output_root: root.to_string(),
                        kms_key_id: get("MLOPS_S3_KMS_KEY_ID").or_else(|| get("MLOPS_KMS_KEY_ID")),
                        env,
                    },
                ))
            }
            Some(other) => {
                return Err(TrainError::invalid(format!(
                    "MLOPS_TRAINING_BACKEND must be local, ray or sagemaker, got `{other}`"
                )));
            }
        };
        let poll = match get("MLOPS_TRAINING_POLL_SECONDS") {
            None => DEFAULT_POLL,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| (0.05..=3600.0).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    TrainError::invalid(format!(
                        "MLOPS_TRAINING_POLL_SECONDS must be a number of seconds from 0.05 to 3600, got `{v}`"
                    ))
                })?,
        };
        Ok(Backend::Remote(RemoteTraining::new(backend, poll)))
    }

    /// `local`, `ray` or `sagemaker`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Remote(r) => r.backend.name(),
        }
    }
}

/// Training jobs run by a remote backend, polled every `poll`.
#[derive(Clone)]
pub struct RemoteTraining {
    backend: Arc<dyn TrainingBackend>,
    poll: Duration,
}

impl RemoteTraining {
    pub fn new(backend: Arc<dyn TrainingBackend>, poll: Duration) -> Self {
        Self { backend, poll }
    }

    /// Makes every location in `spec` absolute, so the worker resolves them as this server does,
    /// and lets the backend refuse what it cannot run, all before the job starts.
    pub(crate) fn prepare(
        &self,
        store: &ArtifactStore,
        mut spec: TrainingSpec,
    ) -> Result<TrainingSpec, TrainError> {
        if !spec.data_uri.is_empty() {
            spec.data_uri = store.resolve(&spec.data_uri)?.uri().to_string();
        }
        for uri in [&mut spec.pipeline_uri, &mut spec.validation_data_uri]
            .into_iter()
            .flatten()
        {
            *uri = store.resolve(uri)?.uri().to_string();
        }
        self.backend.check(&spec)?;
        Ok(spec)
    }

    /// The body of a remote job: writes the spec, submits the worker, follows it to its end.
    pub(crate) async fn run(
        self,
        store: ArtifactStore,
        spec: TrainingSpec,
        job: Arc<Job>,
        ctx: ToolContext,
        opts: JobOptions,
    ) -> JobResult {
        let name = spec.training_job_name.clone();
        let spec_ref = store.key(&format!("jobs/{name}/{SPEC_FILE}"))?;
        let result_ref = store.key(&format!("jobs/{name}/{RESULT_FILE}"))?;
        // A result left by an earlier job of this name must not be taken for this one's.
        store.delete(&result_ref).await?;
        let body = serde_json::to_vec_pretty(&spec)
            .map_err(|e| TrainError::failed(format!("could not encode the training spec: {e}")))?;
        store.put(&spec_ref, body.into()).await?;
        let backend = self.backend.name();
        let id = self.backend.submit(spec_ref.uri(), &spec).await?;
        tracing::info!(backend, remote_job = %id, "training job submitted");
        report(&job, &ctx, format!("submitted to {backend} as `{id}`"));
        // A caller that waits can stop the job by going away, as with a local job.
        let caller = if opts.wait {
            ctx.cancel.clone()
        } else {
            CancellationToken::new()
        };
        let deadline = opts
            .max_runtime_seconds
            .map(|s| Instant::now() + Duration::from_secs(s));
        let mut state = String::new();
        let mut succeeded_at: Option<Instant> = None;
        let mut errors = 0;
        loop {
            let past_limit = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = job.cancel.cancelled() => {
                    return Err(self.stop(&id, &job, TrainError::Cancelled(name)).await);
                }
                _ = caller.cancelled() => {
                    return Err(self.stop(&id, &job, TrainError::Cancelled(name)).await);
                }
                _ = past_limit => {
                    let seconds = opts.max_runtime_seconds.unwrap_or(0);
                    return Err(self.stop(&id, &job, TrainError::TimedOut { name, seconds }).await);
                }
                _ = tokio::time::sleep(self.poll) => {}
            }
            // The status before the result: a worker writes its result before it exits, so a
            // result missing after a final status is not merely late.
            let polled = match self.backend.status(&id).await {
                Ok(status) => read_result(&store, &result_ref)
                    .await
                    .map(|result| (status, result)),
                Err(e) => Err(e),
            };
            let (status, result) = match polled {
                Ok(p) => {
                    errors = 0;
                    p
                }
                Err(e) => {
                    errors += 1;
                    if errors >= MAX_POLL_ERRORS {
                        return Err(e);
                    }
                    tracing::warn!(backend, remote_job = %id, error = %e, "could not poll the remote training job");
                    continue;
                }
            };
            if let Some(result) = result {
                return adopt(&store, &spec, &job, result).await;
            }
            match status {
                RemoteStatus::Running(now) => {
                    if now != state {
                        report(&job, &ctx, format!("{backend} job `{id}`: {now}"));
                        state = now;
                    }
                }
                RemoteStatus::Succeeded => {
                    let since = *succeeded_at.get_or_insert_with(Instant::now);
                    if since.elapsed() >= RESULT_GRACE {
                        return Err(TrainError::Remote(format!(
                            "the {backend} job `{id}` ended without writing {}",
                            result_ref.uri()
                        )));
                    }
                }
                RemoteStatus::Failed(reason) => {
                    return Err(TrainError::Remote(format!(
                        "the {backend} job `{id}` failed: {reason}"
                    )));
                }
                RemoteStatus::Stopped => {
                    return Err(TrainError::Remote(format!(
                        "the {backend} job `{id}` was stopped outside this server"
                    )));
                }
            }
        }
    }

    /// Stops the remote job; the job ends with `reason` even when that fails (the failure is
    /// logged and left as the job's message).
    async fn stop(&self, id: &str, job: &Job, reason: TrainError) -> TrainError {
        let backend = self.backend.name();
        if let Err(e) = self.backend.stop(id).await {
            tracing::warn!(backend, remote_job = %id, error = %e, "could not stop the remote training job");
            job.set_progress(
                0.0,
                Some(format!(
                    "could not stop {backend} job `{id}`, which may still be running: {e}"
                )),
            );
        }
        reason
    }
}

/// A state change, on the job and to a caller that asked for progress.
fn report(job: &Job, ctx: &ToolContext, message: String) {
    job.set_progress(0.0, Some(message.clone()));
    ctx.progress(0.0, Some(1.0), Some(message));
}

/// The worker's final report, when it has written one.
async fn read_result(
    store: &ArtifactStore,
    r: &mlops_core::ArtifactRef,
) -> Result<Option<JobSnapshot>, TrainError> {
    match store.get(r).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            TrainError::Remote(format!("the worker's result {} is not valid: {e}", r.uri()))
        }),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Ends the job as the worker's report says, once its model passes the checks `load_model` makes.
async fn adopt(
    store: &ArtifactStore,
    spec: &TrainingSpec,
    job: &Job,
    result: JobSnapshot,
) -> JobResult {
    match result.status {
        JobStatus::Completed => {
            let uri = result.output_uri.ok_or_else(|| {
                TrainError::Remote("the training worker reported no model location".into())
            })?;
            if spec.trial.is_some() {
                // A tuning trial saves no model: its scores are its result.
            } else if spec.task.saves_model() {
                let artifact = ModelArtifact::load(store, &uri).await?;
                TrainedModel::from_artifact(&artifact)?;
            } else if !store.exists(&store.resolve(&uri)?).await? {
                return Err(TrainError::Remote(format!(
                    "the training worker's result `{uri}` does not exist"
                )));
            }
            for p in result.metrics_history {
                job.push_metric(p.step, &p.metric, p.value);
            }
            Ok((result.metrics, uri))
        }
        JobStatus::Cancelled => Err(TrainError::Cancelled(spec.training_job_name.clone())),
        JobStatus::Failed | JobStatus::Running => {
            Err(TrainError::Remote(result.error.unwrap_or_else(|| {
                "the training worker failed without saying why".into()
            })))
        }
    }
}

/// A fresh id for a remote run of job `name`, `mlops-<name>-<8 hex digits>`: letters, digits and
/// `-` only and at most 63 characters (SageMaker's rules). Fresh, because SageMaker never reuses a
/// job name while a job may be trained again under its name.
pub fn remote_job_id(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(48)
        .collect();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("mlops-{clean}-{}", &suffix[..8])
}

/// `s` as one word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
