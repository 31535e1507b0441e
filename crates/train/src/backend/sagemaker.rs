//! SageMaker: each training job is a SageMaker training job (`CreateTrainingJob`,
//! `DescribeTrainingJob`, `StopTrainingJob`) whose container runs `mlops-mcp train-worker --spec
//! <uri>`; the image must have `mlops-mcp` on its PATH. The job reads its spec and data from, and
//! writes the model to, the S3 artifact root.

use std::collections::BTreeMap;

use mlops_aws::{AwsClient, AwsConfig, Service};
use serde_json::{Value, json};

use super::{RemoteStatus, TrainingBackend, remote_job_id};
use crate::error::TrainError;
use crate::spec::TrainingSpec;

/// SageMaker's own default and its ceiling (28 days) for `MaxRuntimeInSeconds`.
const DEFAULT_MAX_RUNTIME: u64 = 86_400;
const MAX_RUNTIME_CEILING: u64 = 2_419_200;

/// What a SageMaker training job is created with.
pub struct SageMakerSettings {
    /// `SAGEMAKER_ROLE_ARN`: required to train, checked when a job starts.
    pub role_arn: Option<String>,
    /// `MLOPS_SAGEMAKER_IMAGE`: required to train, checked when a job starts.
    pub image: Option<String>,
    /// `MLOPS_SAGEMAKER_INSTANCE_TYPE`.
    pub instance_type: String,
    /// The S3 artifact root; SageMaker's own output goes under `<root>/jobs/<job>/sagemaker`.
    pub output_root: String,
    pub kms_key_id: Option<String>,
    /// The worker's environment.
    pub env: BTreeMap<String, String>,
}

pub struct SageMakerBackend {
    client: AwsClient,
    settings: SageMakerSettings,
}

impl SageMakerBackend {
    pub fn new(aws: &AwsConfig, settings: SageMakerSettings) -> Self {
        Self {
            client: AwsClient::json(aws, Service::SAGEMAKER, "SageMaker"),
            settings,
        }
    }

    async fn call(&self, operation: &str, input: Value) -> Result<Value, TrainError> {
        self.client
            .call(operation, input)
            .await
            .map_err(|e| TrainError::Remote(e.to_string()))
    }
}

#[async_trait::async_trait]
impl TrainingBackend for SageMakerBackend {
    fn name(&self) -> &'static str {
        "sagemaker"
    }

    fn check(&self, spec: &TrainingSpec) -> Result<(), TrainError> {
        if self.settings.role_arn.is_none() {
            return Err(TrainError::invalid(
                "SAGEMAKER_ROLE_ARN is not set: SageMaker training jobs (MLOPS_TRAINING_BACKEND=sagemaker) run under that IAM role; set it to the role's ARN",
            ));
        }
        if self.settings.image.is_none() {
            return Err(TrainError::invalid(
                "MLOPS_SAGEMAKER_IMAGE is not set: SageMaker training jobs (MLOPS_TRAINING_BACKEND=sagemaker) run that container image, which must have mlops-mcp on its PATH",
            ));
        }
        for uri in [
            Some(&spec.data_uri).filter(|u| !u.is_empty()),
            spec.pipeline_uri.as_ref(),
            spec.validation_data_uri.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !uri.starts_with("s3://") {
                return Err(TrainError::invalid(format!(
                    "`{uri}` is on this machine, where a SageMaker training job cannot read it; put the data on S3 (e.g. under the artifact root with save_processed_data)"
                )));
            }
        }
        Ok(())
    }

    async fn submit(&self, spec_uri: &str, spec: &TrainingSpec) -> Result<String, TrainError> {
        let s = &self.settings;
        let id = remote_job_id(&spec.training_job_name);
        let mut output = json!({
            "S3OutputPath": format!("{}/jobs/{}/sagemaker", s.output_root, spec.training_job_name),
        });
        if let Some(key) = &s.kms_key_id {
            output["KmsKeyId"] = json!(key);
        }
        let max_runtime = spec
            .max_runtime_seconds
            .unwrap_or(DEFAULT_MAX_RUNTIME)
            .min(MAX_RUNTIME_CEILING);
        self.call(
            "CreateTrainingJob",
            json!({
                "TrainingJobName": id,
                "RoleArn": s.role_arn,
                "AlgorithmSpecification": {
                    "TrainingImage": s.image,
                    "TrainingInputMode": "File",
                    "ContainerEntrypoint": ["mlops-mcp", "train-worker"],
                    "ContainerArguments": ["--spec", spec_uri],
                },
                "OutputDataConfig": output,
                "ResourceConfig": {
                    "InstanceType": s.instance_type,
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 30,
                },
                "StoppingCondition": { "MaxRuntimeInSeconds": max_runtime },
                "Environment": s.env,
            }),
        )
        .await?;
        Ok(id)
    }

    async fn status(&self, id: &str) -> Result<RemoteStatus, TrainError> {
        let out = self
            .call("DescribeTrainingJob", json!({ "TrainingJobName": id }))
            .await?;
        Ok(match out["TrainingJobStatus"].as_str().unwrap_or("") {
            "InProgress" => RemoteStatus::Running(match out["SecondaryStatus"].as_str() {
                Some(secondary) => format!("InProgress ({secondary})"),
                None => "InProgress".into(),
            }),
            "Stopping" => RemoteStatus::Running("Stopping".into()),
            "Completed" => RemoteStatus::Succeeded,
            "Failed" => RemoteStatus::Failed(
                out["FailureReason"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_string(),
            ),
            "Stopped" => RemoteStatus::Stopped,
            other => {
                return Err(TrainError::Remote(format!(
                    "SageMaker reported an unknown TrainingJobStatus `{other}` for job `{id}`"
                )));
            }
        })
    }

    async fn stop(&self, id: &str) -> Result<(), TrainError> {
        self.call("StopTrainingJob", json!({ "TrainingJobName": id }))
            .await
            .map(drop)
    }
}
