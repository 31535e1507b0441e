//! `batch_predict`: a table of any size scored as a job, a chunk of rows at a time, so memory
//! stays bounded however large the table. Parts are written under a temporary folder and moved
//! into `predictions/<name>/` only when every chunk is scored, so a cancelled or failed job leaves
//! nothing behind; the job records rows in and out and the version that answered.

use std::sync::Arc;

use mlops_core::{ArtifactStore, ToolContext, ToolError, ToolResponse};
use mlops_data::{TableChunks, TableFormat, encode};
use mlops_jobs::{JobError, JobFailure, JobManager, JobOptions, JobSnapshot, JobStatus};
use mlops_ml::Matrix;
use polars::prelude::{Column, DataFrame, DataType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::endpoint::{Endpoint, metric_name};
use crate::loaded::Served;
use crate::predict::ModelChoice;
use crate::table::prediction_columns;

/// Rows scored at a time unless the input says otherwise.
const DEFAULT_CHUNK_ROWS: usize = 50_000;
const MAX_CHUNK_ROWS: usize = 1_000_000;

/// Input of `batch_predict`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// A model folder (`models/<training_job_name>`); or give `model_name`.
    pub model_uri: Option<String>,
    /// A registered model, by one of `version`, `stage` or `alias` (default: its Production
    /// version). The version is fixed when the job starts.
    pub model_name: Option<String>,
    pub version: Option<i64>,
    pub stage: Option<String>,
    pub alias: Option<String>,
    /// The table of raw rows (CSV or Parquet; a path under the artifact root, file:// or s3://).
    pub data_uri: String,
    /// Input columns copied to each prediction (e.g. an id).
    #[serde(default)]
    pub passthrough_columns: Vec<String>,
    /// The output folder `predictions/<output_name>/` (default: the job name).
    pub output_name: Option<String>,
    /// Unique job name (letters, digits, `-`, `_`, `.`); generated when absent.
    pub job_name: Option<String>,
    /// Rows scored at a time (default 50,000): the bound on memory.
    #[schemars(range(min = 1, max = 1000000))]
    pub chunk_rows: Option<usize>,
    /// Replace an existing output folder of the same name.
    #[serde(default)]
    pub overwrite: bool,
    /// Wait for the job to finish (default). With false, return at once and poll
    /// `get_batch_prediction`.
    #[serde(default = "yes")]
    pub wait: bool,
    /// Stop the job if it runs longer than this.
    #[schemars(range(min = 1))]
    pub max_runtime_seconds: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Input naming a batch job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobNameInput {
    pub job_name: String,
}

/// A batch job as reported.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchReport {
    pub job_name: String,
    pub status: JobStatus,
    /// Fraction done, 0 to 1.
    pub progress: f64,
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// Rows read and scored, the model and version that answered, the parts written.
    pub result: Value,
    /// The folder holding the prediction parts, once the job completed.
    pub output_uri: Option<String>,
    pub error: Option<String>,
}

impl From<JobSnapshot> for BatchReport {
    fn from(s: JobSnapshot) -> Self {
        Self {
            job_name: s.name,
            status: s.status,
            progress: s.progress,
            message: s.message,
            started_at: s.started_at,
            finished_at: s.finished_at,
            duration_ms: s.duration_ms,
            result: s.metrics,
            output_uri: s.output_uri,
            error: s.error,
        }
    }
}

impl ToolResponse for BatchReport {
    fn summary(&self) -> String {
        let mut s = format!("Batch prediction `{}`: {:?}", self.job_name, self.status);
        match self.status {
            JobStatus::Running => s.push_str(&format!(" ({:.0}%)", self.progress * 100.0)),
            JobStatus::Completed => s.push_str(&format!(
                ", {} rows in, {} out, version {} of {}; parts in {}",
                self.result["rows_in"],
                self.result["rows_out"],
                self.result["version"],
                self.result["model"],
                self.output_uri.as_deref().unwrap_or_default()
            )),
            _ => {
                if let Some(e) = &self.error {
                    s.push_str(&format!(": {e}"));
                }
            }
        }
        s
    }
}

/// A batch job's error: a tool error, or how the runner stopped it.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("batch prediction `{0}` was cancelled")]
    Cancelled(String),
    #[error("batch prediction `{name}` ran past its limit of {seconds} s and was stopped")]
    TimedOut { name: String, seconds: u64 },
}

impl From<JobError> for BatchError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Refused(m) => BatchError::Tool(ToolError::Validation(m)),
            JobError::Cancelled(n) => BatchError::Cancelled(n),
            JobError::TimedOut { name, seconds } => BatchError::TimedOut { name, seconds },
            JobError::Failed(m) => BatchError::Tool(ToolError::Execution(m)),
        }
    }
}

impl From<mlops_core::StoreError> for BatchError {
    fn from(e: mlops_core::StoreError) -> Self {
        BatchError::Tool(e.into())
    }
}

impl JobFailure for BatchError {
    fn is_cancellation(&self) -> bool {
        matches!(self, BatchError::Cancelled(_))
    }
}

impl From<BatchError> for ToolError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Tool(e) => e,
            e @ BatchError::Cancelled(_) => ToolError::Cancelled(e.to_string()),
            e @ BatchError::TimedOut { .. } => ToolError::Execution(e.to_string()),
        }
    }
}

/// Checks the request, fixes the model version, and starts the job.
pub async fn start(
    endpoint: &Arc<Endpoint>,
    store: &ArtifactStore,
    jobs: &Arc<JobManager>,
    i: BatchInput,
    ctx: ToolContext,
) -> Result<BatchReport, ToolError> {
    let name = i.job_name.clone().unwrap_or_else(|| {
        let now = chrono::Utc::now();
        format!(
            "batch-{}-{:04x}",
            now.format("%Y%m%d-%H%M%S"),
            now.timestamp_subsec_micros() % 0x10000
        )
    });
    mlops_core::check_folder_name("job_name", &name).map_err(ToolError::validation)?;
    let output = i.output_name.clone().unwrap_or_else(|| name.clone());
    mlops_core::check_folder_name("output_name", &output).map_err(ToolError::validation)?;
    let chunk_rows = i.chunk_rows.unwrap_or(DEFAULT_CHUNK_ROWS);
    if !(1..=MAX_CHUNK_ROWS).contains(&chunk_rows) {
        return Err(ToolError::validation(format!(
            "chunk_rows must be 1 to {MAX_CHUNK_ROWS} (got {chunk_rows})"
        )));
    }
    let served = ModelChoice {
        model_uri: i.model_uri.clone(),
        model_name: i.model_name.clone(),
        version: i.version,
        stage: i.stage.clone(),
        alias: i.alias.clone(),
    }
    .served(endpoint)
    .await?;
    let input = store.resolve(&i.data_uri)?;
    let format = TableFormat::of(&input)?;
    if !store.exists(&input).await? {
        return Err(ToolError::validation(format!(
            "`{}` does not exist",
            input.uri()
        )));
    }
    let existing = store.list(&format!("predictions/{output}"), 1).await?;
    if !existing.is_empty() && !i.overwrite {
        return Err(ToolError::validation(format!(
            "predictions/{output}/ already holds predictions; choose another output_name or pass overwrite: true"
        )));
    }
    let opts = JobOptions {
        name: Some(name.clone()),
        overwrite: false,
        wait: i.wait,
        max_runtime_seconds: i.max_runtime_seconds,
    };
    let work = Work {
        store: store.clone(),
        served,
        input,
        format,
        output,
        chunk_rows,
        passthrough: i.passthrough_columns,
        overwrite: i.overwrite,
    };
    let span = tracing::info_span!("batch_prediction", job = %name);
    let label = work.served.model.algorithm.clone();
    let snapshot: Result<JobSnapshot, BatchError> = mlops_jobs::start_job(
        jobs,
        name,
        &label,
        &opts.clone(),
        span,
        move |job, _name| run(work, job, ctx, opts),
    )
    .await;
    Ok(snapshot?.into())
}

/// What a job scores and where it writes.
struct Work {
    store: ArtifactStore,
    served: Served,
    input: mlops_core::ArtifactRef,
    format: TableFormat,
    output: String,
    chunk_rows: usize,
    passthrough: Vec<String>,
    overwrite: bool,
}

async fn run(
    work: Work,
    job: Arc<mlops_jobs::Job>,
    ctx: ToolContext,
    opts: JobOptions,
) -> Result<mlops_jobs::JobOutput, BatchError> {
    let staging = format!(
        "predictions/{}/_incomplete-{}",
        work.output,
        job.snapshot().name
    );
    // A table on S3 is copied to a local file first, chunk by chunk, and read from there.
    let mut download = None;
    let local = match work.input.local_path() {
        Some(p) => p.to_path_buf(),
        None => {
            let dir = tempfile_dir()?;
            let path = dir.join("input");
            download = Some(dir);
            work.store.download_to(&work.input, &path).await?;
            path
        }
    };
    let store = work.store.clone();
    let staging_for_work = staging.clone();
    let handle = tokio::runtime::Handle::current();
    let scored =
        mlops_jobs::run_blocking::<_, BatchError, BatchError>(&job, &ctx, &opts, move |control| {
            score_chunks(
                &work,
                &local,
                &staging_for_work,
                &handle,
                |fraction, message| control.progress((fraction * 1000.0) as usize, 1000, message),
                || control.is_cancelled(),
            )
            .map(|done| done.map(|d| (d, work)))
        })
        .await;
    if let Some(dir) = download {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (done, work) = match scored {
        Ok(v) => v,
        Err(e) => {
            remove_folder(&store, &staging).await;
            return Err(e);
        }
    };
    let committed = commit(&work, &staging, &done).await;
    remove_folder(&store, &staging).await;
    let (folder, parts) = committed?;
    Ok((
        json!({
            "rows_in": done.rows_in,
            "rows_out": done.rows_out,
            "model": metric_name(&work.served.origin),
            "version": work.served.origin.version,
            "model_uri": work.served.origin.artifact_uri,
            "data_uri": work.input.uri(),
            "chunks": done.parts,
            "parts": parts,
            "unseen_categories": done.unseen,
        }),
        Some(folder),
    ))
}

/// What scoring every chunk gave.
struct Done {
    rows_in: usize,
    rows_out: usize,
    parts: usize,
    unseen: std::collections::BTreeMap<String, Vec<String>>,
}

/// Scores the table chunk by chunk, writing each chunk's predictions as a Parquet part under
/// `staging`. Returns None when stopped.
fn score_chunks(
    work: &Work,
    local: &std::path::Path,
    staging: &str,
    rt: &tokio::runtime::Handle,
    progress: impl Fn(f64, String),
    stopped: impl Fn() -> bool,
) -> Result<Option<Done>, BatchError> {
    let model = &work.served.model;
    let types: Vec<(String, DataType)> = model
        .input_columns()
        .into_iter()
        .map(|c| {
            let dtype = if c.numeric {
                DataType::Float64
            } else {
                DataType::String
            };
            (c.name, dtype)
        })
        .chain(
            work.passthrough
                .iter()
                .map(|p| (p.clone(), DataType::String)),
        )
        .collect();
    let mut chunks =
        TableChunks::open(local, work.input.uri(), work.format, work.chunk_rows, types)
            .map_err(ToolError::from)?;
    let mut done = Done {
        rows_in: 0,
        rows_out: 0,
        parts: 0,
        unseen: Default::default(),
    };
    while let Some(df) = chunks.next_chunk().map_err(ToolError::from)? {
        if stopped() {
            return Ok(None);
        }
        done.rows_in += df.height();
        let mut frame = score_chunk(work, df, &mut done.unseen)?;
        done.rows_out += frame.height();
        let bytes = encode(&mut frame, TableFormat::Parquet).map_err(ToolError::from)?;
        let key = work
            .store
            .key(&format!("{staging}/part-{:05}.parquet", done.parts))?;
        rt.block_on(work.store.put(&key, bytes))
            .map_err(ToolError::from)?;
        done.parts += 1;
        progress(
            chunks.fraction_read(),
            format!("{} rows scored", done.rows_out),
        );
    }
    if done.rows_in == 0 {
        return Err(
            ToolError::validation(format!("`{}` has no rows to score", work.input.uri())).into(),
        );
    }
    Ok(Some(done))
}

/// One chunk's predictions as a table: the passthrough columns, then the outputs.
fn score_chunk(
    work: &Work,
    mut df: DataFrame,
    unseen: &mut std::collections::BTreeMap<String, Vec<String>>,
) -> Result<DataFrame, ToolError> {
    let model = &work.served.model;
    let data_error = mlops_data::DataError::from;
    let mut columns: Vec<Column> = Vec::new();
    for name in &work.passthrough {
        columns.push(
            df.column(name)
                .map_err(|_| {
                    ToolError::validation(format!(
                        "passthrough_columns names a column the data lacks: {name}"
                    ))
                })?
                .clone(),
        );
    }
    let x = match &model.pipeline {
        Some(p) => {
            if let Some(t) = &p.target
                && df.schema().contains(&t.name)
            {
                df = df.drop(&t.name).map_err(data_error)?;
            }
            for (column, values) in p.inspect(&df)? {
                let seen = unseen.entry(column).or_default();
                for v in values {
                    if seen.len() < 20 && !seen.contains(&v) {
                        seen.push(v);
                    }
                }
            }
            let input = p.transform(&df)?;
            Matrix::from_frame(&input, &model.feature_names)?
        }
        None => Matrix::from_frame(&df, &model.feature_names)?,
    };
    let scored = model.score_matrix(x, Vec::new())?;
    columns.extend(prediction_columns(model, &scored));
    DataFrame::new(scored.rows, columns).map_err(|e| ToolError::from(data_error(e)))
}

/// Moves the staged parts into `predictions/<output>/` (removing an old output first when
/// overwriting) and writes `_manifest.json`; returns the folder and the parts.
async fn commit(
    work: &Work,
    staging: &str,
    done: &Done,
) -> Result<(String, Vec<String>), BatchError> {
    let folder = format!("predictions/{}", work.output);
    if work.overwrite {
        for key in work.store.list(&folder, usize::MAX).await? {
            if !key.contains("/_incomplete-") {
                work.store.delete(&work.store.key(&key)?).await?;
            }
        }
    }
    let mut parts = Vec::new();
    for n in 0..done.parts {
        let from = work.store.key(&format!("{staging}/part-{n:05}.parquet"))?;
        let to = work.store.key(&format!("{folder}/part-{n:05}.parquet"))?;
        work.store.rename(&from, &to).await?;
        parts.push(to.uri().to_string());
    }
    let manifest = json!({
        "model": metric_name(&work.served.origin),
        "version": work.served.origin.version,
        "model_uri": work.served.origin.artifact_uri,
        "data_uri": work.input.uri(),
        "rows_in": done.rows_in,
        "rows_out": done.rows_out,
        "parts": parts,
        "created_at": chrono::Utc::now().to_rfc3339(),
    });
    let key = work.store.key(&format!("{folder}/_manifest.json"))?;
    work.store
        .put(
            &key,
            bytes::Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default()),
        )
        .await?;
    let folder_uri = key.uri().trim_end_matches("/_manifest.json").to_string();
    Ok((folder_uri, parts))
}

async fn remove_folder(store: &ArtifactStore, folder: &str) {
    if let Err(e) = store.delete_folder(folder).await {
        tracing::warn!(folder, error = %e, "could not remove a batch job's staging folder");
    }
}

/// A private temporary folder for a downloaded table.
fn tempfile_dir() -> Result<std::path::PathBuf, ToolError> {
    let dir = std::env::temp_dir().join(format!("mlops-batch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| ToolError::Storage(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

pub async fn status(jobs: &JobManager, name: &str) -> Result<BatchReport, ToolError> {
    if let Some(job) = jobs.get(name) {
        return Ok(job.snapshot().into());
    }
    match jobs.recorded(name).await {
        Ok(Some(s)) => Ok(s.into()),
        Ok(None) => Err(ToolError::validation(format!(
            "no batch prediction job named `{name}`"
        ))),
        Err(e) => Err(ToolError::Storage(format!("reading the job records: {e}"))),
    }
}

pub fn cancel(jobs: &JobManager, name: &str) -> Result<BatchReport, ToolError> {
    let job = jobs.get(name).ok_or_else(|| {
        ToolError::validation(format!(
            "no batch prediction job named `{name}` has run in this server"
        ))
    })?;
    job.cancel.cancel();
    Ok(job.snapshot().into())
}
