//! Running a training job on `mlops-jobs`: its name, the model it must not overwrite unasked,
//! and saving the model with its metrics history. Every algorithm goes through here.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use mlops_core::{ArtifactStore, ModelArtifact, ModelManifest, ToolContext};
use mlops_data::ReferenceProfile;
use mlops_data::drift::PROFILE_FILE;
use mlops_jobs::{Job, JobManager, JobOptions, JobSnapshot};
use mlops_ml::{FitControl, HISTORY_BLOB, MetricPoint, TrainedModel};
use serde_json::Value;

use crate::error::TrainError;

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

/// What a finished training job hands back: its final metrics and the saved model's folder.
pub type JobResult = Result<(Value, String), TrainError>;

/// Starts the training job `opts` names (generated when absent) running `body`: the name is
/// checked, and an existing model of that name is kept unless `overwrite`. Waits for it when
/// asked, else returns at once.
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
    let span = tracing::info_span!("training_job", training_job_name = %name, algorithm);
    mlops_jobs::start_job(jobs, name, algorithm, opts, span, |job, name| {
        let work = body(job, name);
        async move { work.await.map(|(metrics, uri)| (metrics, Some(uri))) }
    })
    .await
}

/// Runs a blocking fit inside a training job (see [`mlops_jobs::run_blocking`]).
pub async fn run_blocking<T, W>(
    job: &Arc<Job>,
    ctx: &ToolContext,
    opts: &JobOptions,
    fit: impl FnOnce(&FitControl) -> Result<Option<T>, W> + Send + 'static,
) -> Result<T, TrainError>
where
    T: Send + 'static,
    W: Into<TrainError> + Send + 'static,
{
    mlops_jobs::run_blocking(job, ctx, opts, fit).await
}

/// Saves `model` as `models/<name>/` with the job's metrics history and the reference profile of
/// its training rows beside it (both checksummed in the manifest); returns the folder.
pub async fn save_model(
    store: &ArtifactStore,
    job: &Job,
    model: &TrainedModel,
    manifest: ModelManifest,
    profile: Option<&ReferenceProfile>,
) -> Result<String, TrainError> {
    let history: Vec<MetricPoint> = job.full_history();
    let history = serde_json::to_vec(&history)
        .map_err(|e| TrainError::failed(format!("could not encode the metrics history: {e}")))?;
    let mut blobs = vec![(HISTORY_BLOB, "application/json", Bytes::from(history))];
    if let Some(profile) = profile {
        blobs.push((
            PROFILE_FILE,
            "application/json",
            Bytes::from(profile.to_json()),
        ));
    }
    let mut artifact = model.to_artifact(manifest, blobs)?;
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
