//! `mlops-mcp train-worker --spec <uri>`: what a Ray or SageMaker training job runs. It opens the
//! artifact store the configuration names, runs the job's spec with the code local training runs,
//! and writes the job's report beside the spec; it fails (a non-zero exit) when the training
//! failed, so the backend marks its job failed too.

use anyhow::Context;
use mlops_core::{ArtifactStore, Config, ToolResponse};
use mlops_train::{JobReport, JobStatus};

pub async fn run(config: &Config, spec_uri: &str) -> anyhow::Result<()> {
    let store = ArtifactStore::from_config(config).context("opening the artifact store")?;
    let report = mlops_train::run_worker(&store, spec_uri)
        .await
        .with_context(|| format!("running the training spec `{spec_uri}`"))?;
    let status = report.status;
    let summary = JobReport(report).summary();
    println!("{summary}");
    anyhow::ensure!(status == JobStatus::Completed, "{summary}");
    Ok(())
}
