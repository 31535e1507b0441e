//! Ray: each training job is a Ray job submitted through the Jobs REST API of the dashboard
//! (`POST /api/jobs/`, `GET /api/jobs/{id}`, `POST /api/jobs/{id}/stop`); its entrypoint is the
//! worker command.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{RemoteStatus, TrainingBackend, remote_job_id, shell_quote};
use crate::error::TrainError;
use crate::spec::TrainingSpec;
use mlops_core::error_chain;

/// A Ray cluster, through its dashboard.
pub struct RayBackend {
    url: String,
    /// The worker as a shell command, without `train-worker --spec ...`.
    command: String,
    /// The worker's environment (`runtime_env.env_vars`).
    env: BTreeMap<String, String>,
    http: reqwest::Client,
}

impl RayBackend {
    /// `url` is the dashboard's address (`var` names the setting it came from, for errors).
    pub fn new(
        var: &str,
        url: &str,
        command: String,
        env: BTreeMap<String, String>,
    ) -> Result<Self, TrainError> {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(TrainError::invalid(format!(
                    "{var} must be the Ray dashboard's http(s) address, where the Jobs API is, e.g. http://127.0.0.1:8265; got `{url}`"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| TrainError::failed(format!("HTTP client: {e}")))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            command,
            env,
            http,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TrainError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            TrainError::Remote(format!(
                "cannot reach the Ray dashboard at {} ({method} {path}): {}",
                self.url,
                error_chain(&e)
            ))
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let text: String = text.trim().chars().take(300).collect();
            return Err(TrainError::Remote(format!(
                "the Ray Jobs API answered {method} {path} with {status}: {text}"
            )));
        }
        serde_json::from_str(&text).map_err(|e| {
            TrainError::Remote(format!(
                "the Ray Jobs API answered {method} {path} with something other than JSON: {e}"
            ))
        })
    }
}

#[async_trait::async_trait]
impl TrainingBackend for RayBackend {
    fn name(&self) -> &'static str {
        "ray"
    }

    fn check(&self, _spec: &TrainingSpec) -> Result<(), TrainError> {
        Ok(())
    }

    async fn submit(&self, spec_uri: &str, spec: &TrainingSpec) -> Result<String, TrainError> {
        let id = remote_job_id(&spec.training_job_name);
        let body = json!({
            "entrypoint": format!("{} train-worker --spec {}", self.command, shell_quote(spec_uri)),
            "submission_id": id,
            "runtime_env": { "env_vars": self.env },
            "metadata": { "training_job_name": spec.training_job_name },
        });
        let out = self.call(Method::POST, "/api/jobs/", Some(body)).await?;
        Ok(out["submission_id"].as_str().unwrap_or(&id).to_string())
    }

    async fn status(&self, id: &str) -> Result<RemoteStatus, TrainError> {
        let out = self
            .call(Method::GET, &format!("/api/jobs/{id}"), None)
            .await?;
        let status = out["status"].as_str().unwrap_or("");
        Ok(match status {
            "SUCCEEDED" => RemoteStatus::Succeeded,
            "FAILED" => {
                RemoteStatus::Failed(out["message"].as_str().unwrap_or("no message").to_string())
            }
            "STOPPED" => RemoteStatus::Stopped,
            "PENDING" | "RUNNING" => RemoteStatus::Running(status.to_string()),
            other => {
                return Err(TrainError::Remote(format!(
                    "the Ray Jobs API reported an unknown status `{other}` for job `{id}`"
                )));
            }
        })
    }

    async fn stop(&self, id: &str) -> Result<(), TrainError> {
        self.call(Method::POST, &format!("/api/jobs/{id}/stop"), None)
            .await
            .map(drop)
    }
}
