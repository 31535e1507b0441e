//! Builds the server's services and its tool router from the configuration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mlops_aws::{AwsConfig, MetricsPublisher, SecretsManager};
use mlops_aws::{Datum, PublisherHandle, tool_data};
use mlops_core::secrets::{EnvSecrets, FileSecrets, SecretChain, SecretProvider};
use mlops_core::{ArtifactStore, Capability, Config, ToolRouter};
use mlops_data::DataCapability;
use mlops_eval::EvaluationCapability;
use mlops_github::{GithubCapability, GithubConfig, Repository, repository_from_config};
use mlops_monitor::MonitoringCapability;
use mlops_notify::{Notifier, NotifyCapability, NotifyConfig, Outbox};
use mlops_registry::{Registry, RegistryCapability, SageMakerRegistry, SqlRegistry};
use mlops_serve::{Endpoint, PredictionLog, ServingCapability};
use mlops_train::{Backend, JobManager, JobTable, TrainingCapability, TuningCapability};
use mlops_workflow::{EngineConfig, WorkflowCapability, WorkflowEngine, WorkflowStore};

/// The settings that are secrets: read through the secret chain (the environment, then
/// `MLOPS_SECRETS_FILE`, then AWS Secrets Manager as `<MLOPS_SECRETS_PREFIX><name-in-kebab-case>`,
/// e.g. `mlops/github-token`) once at start-up.
pub const SECRET_NAMES: [&str; 7] = [
    "GITHUB_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "SLACK_WEBHOOK_URL",
    "SLACK_BOT_TOKEN",
    "SMTP_PASSWORD",
    "TEAMS_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
];

/// Everything a running server holds.
pub struct App {
    pub config: Config,
    pub store: ArtifactStore,
    /// Every tool: the workflow and the CLI call through it.
    pub router: ToolRouter,
    /// The tools MCP clients see (toolsets, read-only mode).
    pub exposed: ToolRouter,
    /// Sends notifications through the outbox; a server starts its delivery worker.
    pub notifier: Arc<Notifier>,
    /// GitHub when a token and repository are configured, else the local history repository.
    pub repository: Arc<dyn Repository>,
    pub github: GithubConfig,
    /// Runs training workflows; a server starts its worker.
    pub workflows: Arc<WorkflowEngine>,
    /// The one database (registry, jobs, outbox, workflows), for status queries such as /metrics.
    pub db: sqlx::AnyPool,
    /// What answers predictions: the `predict` tool, batch jobs and the HTTP inference routes.
    pub serving: Arc<Endpoint>,
    /// Runs due monitors (started by the serving commands).
    pub monitoring: Arc<MonitoringCapability>,
    pub tuning: Arc<TuningCapability>,
}

impl App {
    /// Opens the artifact store and the database, and registers every capability's tools.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = ArtifactStore::from_config(&config).context("opening the artifact store")?;
        let registry = SqlRegistry::connect(&config.database_url)
            .await
            .with_context(|| {
                format!(
                    "opening the database {}",
                    mlops_core::redact_url(&config.database_url)
                )
            })?;
        // The environment, with the secrets from wherever the chain found them.
        let mut settings: BTreeMap<String, String> = std::env::vars().collect();
        let secrets = secret_chain(&config)?;
        settings.extend(
            secrets.resolve(&SECRET_NAMES).await.with_context(|| {
                format!("reading secrets from {}", secrets.describe().join(", "))
            })?,
        );
        // A misconfigured channel (a bad webhook URL, an invalid address) stops start-up with a
        // message naming the setting, never its value.
        let notifier = {
            let mut values = settings.clone();
            values.insert("MLOPS_HOME".into(), config.home.display().to_string());
            values.insert("MLOPS_DATABASE_URL".into(), config.database_url.clone());
            let notify_config =
                NotifyConfig::from_map(&values).context("configuring notifications")?;
            let outbox = Outbox::from_pool(registry.pool().clone())
                .await
                .context("opening the notification outbox")?;
            Arc::new(
                Notifier::with_outbox(notify_config, outbox)
                    .context("configuring notifications")?,
            )
        };
        let github =
            GithubConfig::from_map(&settings, &config.home).context("configuring GitHub")?;
        let repository = repository_from_config(&github)
            .await
            .context("opening the repository for training history")?;
        let db = registry.pool().clone();
        let workflow_store = WorkflowStore::open(db.clone())
            .await
            .context("opening the workflow tables")?;
        let mut engine = engine_config()?;
        engine.channels = notifier
            .config()
            .configured_channels()
            .into_iter()
            .map(String::from)
            .collect();
        let workflows = WorkflowEngine::new(workflow_store, engine);
        let jobs = JobManager::with_database(registry.pool().clone(), JobTable::TRAINING)
            .await
            .context("opening the training job records")?;
        let training_backend =
            Backend::from_map(&settings, &store).context("configuring the training backend")?;
        let models: Arc<dyn Registry> = if config.sagemaker_registry {
            let sagemaker = SageMakerRegistry::from_env()
                .context("configuring the SageMaker registry (MLOPS_REGISTRY=sagemaker)")?;
            // One cheap read, so bad credentials or a wrong region fail at start-up.
            sagemaker
                .check()
                .await
                .context("reaching SageMaker Model Registry (MLOPS_REGISTRY=sagemaker)")?;
            Arc::new(sagemaker)
        } else {
            Arc::new(registry)
        };
        let serving = serving_endpoint(&store, &db).await?;
        let batch_jobs = JobManager::with_database(db.clone(), JobTable::BATCH_PREDICTION)
            .await
            .context("opening the batch prediction job records")?;
        let lease = positive_number(
            "MLOPS_MONITOR_LEASE_SECONDS",
            mlops_monitor::DEFAULT_LEASE.as_secs_f64(),
        )?;
        let monitoring =
            MonitoringCapability::open(store.clone(), db.clone(), Duration::from_secs_f64(lease))
                .await
                .context("opening the monitor tables")?;
        let tuning_lease = positive_number(
            "MLOPS_TUNING_LEASE_SECONDS",
            mlops_train::DEFAULT_TUNING_LEASE.as_secs_f64(),
        )?;
        // Renewed every second: a shorter lease would lapse between renewals.
        anyhow::ensure!(
            tuning_lease >= 2.0,
            "MLOPS_TUNING_LEASE_SECONDS must be at least 2, got {tuning_lease}"
        );
        let tuning = TuningCapability::open(
            store.clone(),
            db.clone(),
            Duration::from_secs_f64(tuning_lease),
            training_backend.clone(),
        )
        .await
        .context("opening the tuning tables")?;
        let capabilities: Vec<Arc<dyn Capability>> = vec![
            DataCapability::new(store.clone()),
            TrainingCapability::with_backend(store.clone(), jobs, training_backend),
            EvaluationCapability::new(store.clone()),
            RegistryCapability::new(models, store.clone()),
            NotifyCapability::new(notifier.clone()),
            GithubCapability::new(repository.clone()),
            WorkflowCapability::new(workflows.clone()),
            ServingCapability::new(serving.clone(), store.clone(), batch_jobs),
            monitoring.clone(),
            tuning.clone(),
        ];
        let router = ToolRouter::new(&capabilities)?;
        // The engine calls every other tool through the same router as clients do.
        workflows.attach(router.clone());
        // Serving asks the registry which version answers through its tool, as a client would.
        serving.attach(router.clone());
        monitoring.attach(router.clone());
        let exposed = router
            .restricted(config.toolsets.as_deref(), config.read_only)
            .map_err(anyhow::Error::msg)
            .context("MLOPS_TOOLSETS")?;
        Ok(Self {
            config,
            store,
            router,
            exposed,
            notifier,
            repository,
            github,
            workflows,
            db,
            serving,
            monitoring,
            tuning,
        })
    }

    /// With `CLOUDWATCH_METRICS` on, publishes every interval: tool calls, errors and latency by
    /// tool, and workflow executions and training jobs by status (from the shared database).
    pub fn start_metrics_publisher(&self) -> anyhow::Result<Option<PublisherHandle>> {
        let Some(namespace) = &self.config.cloudwatch_metrics_namespace else {
            return Ok(None);
        };
        let aws = AwsConfig::from_env().context("CLOUDWATCH_METRICS is on")?;
        let router = self.router.clone();
        let db = self.db.clone();
        let monitoring = self.monitoring.clone();
        let collect = move || {
            let router = router.clone();
            let db = db.clone();
            let monitoring = monitoring.clone();
            async move {
                let mut data = tool_data(&router.metrics().take_window());
                data.extend(status_counts(&db).await);
                data.extend(monitoring_data(&monitoring).await);
                data
            }
        };
        Ok(Some(
            MetricsPublisher::new(&aws, namespace)
                .spawn(self.config.cloudwatch_metrics_interval, collect),
        ))
    }
}

/// The secret sources the configuration turns on, in the order they are asked.
fn secret_chain(config: &Config) -> anyhow::Result<SecretChain> {
    let mut providers: Vec<Arc<dyn SecretProvider>> = vec![Arc::new(EnvSecrets::from_env())];
    if let Some(path) = &config.secrets_file {
        providers.push(Arc::new(FileSecrets::open(path)?));
    }
    if config.secrets_manager {
        let aws = AwsConfig::from_env().context("MLOPS_SECRETS_MANAGER is on")?;
        providers.push(Arc::new(SecretsManager::new(&aws, &config.secrets_prefix)));
    }
    Ok(SecretChain::new(providers, config.secrets_ttl))
}

/// `WorkflowExecutions` and `TrainingJobs` by `Status`: how many are in each state now.
async fn status_counts(db: &sqlx::AnyPool) -> Vec<Datum> {
    let queries = [
        (
            "WorkflowExecutions",
            "SELECT status, COUNT(*) FROM workflow_executions GROUP BY status",
        ),
        (
            "TrainingJobs",
            "SELECT status, COUNT(*) FROM training_jobs GROUP BY status",
        ),
    ];
    let mut out = Vec::new();
    for (metric, sql) in queries {
        match sqlx::query_as::<_, (String, i64)>(sql).fetch_all(db).await {
            Ok(rows) => out.extend(
                rows.into_iter()
                    .map(|(status, n)| Datum::count(metric, &[("Status", &status)], n as f64)),
            ),
            Err(e) => tracing::warn!(metric, error = %e, "could not count for CloudWatch"),
        }
    }
    out
}

/// `DriftSeverity` and `DriftedFeatures` by `Model`, `MonitorRuns` by `Monitor` and `Outcome`.
async fn monitoring_data(monitoring: &MonitoringCapability) -> Vec<Datum> {
    let gauges = match monitoring.gauges().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the monitoring metrics for CloudWatch");
            return Vec::new();
        }
    };
    gauges
        .iter()
        .map(|g| {
            let name = match g.metric {
                "mlops_drift_severity" => "DriftSeverity",
                "mlops_drift_drifted_features" => "DriftedFeatures",
                _ => "MonitorRuns",
            };
            let dimensions: Vec<(String, String)> = g
                .labels
                .iter()
                .map(|(k, v)| {
                    let mut key = k.to_string();
                    key[..1].make_ascii_uppercase();
                    (key, v.clone())
                })
                .collect();
            let dims: Vec<(&str, &str)> = dimensions
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut d = Datum::count(name, &dims, g.value);
            if name == "DriftSeverity" {
                d.unit = "None";
            }
            d
        })
        .collect()
}

/// The workflow lease: how long a crashed server's execution waits before another takes it over.
fn engine_config() -> anyhow::Result<EngineConfig> {
    let mut config = EngineConfig::default();
    if let Ok(v) = std::env::var("MLOPS_WORKFLOW_LEASE_SECONDS") {
        let secs: f64 = v
            .parse()
            .ok()
            .filter(|s: &f64| *s >= 0.5 && *s <= 3600.0)
            .context("MLOPS_WORKFLOW_LEASE_SECONDS must be a number of seconds from 0.5 to 3600")?;
        config.lease = std::time::Duration::from_secs_f64(secs);
    }
    Ok(config)
}

/// The serving endpoint: the model cache (`MLOPS_SERVING_CACHE_MB`) and the prediction log
/// (flushed every `MLOPS_PREDICTION_LOG_FLUSH_SECONDS`).
async fn serving_endpoint(
    store: &ArtifactStore,
    db: &sqlx::AnyPool,
) -> anyhow::Result<Arc<Endpoint>> {
    let number = positive_number;
    let cache_mb = number(
        "MLOPS_SERVING_CACHE_MB",
        mlops_serve::DEFAULT_CACHE_MB as f64,
    )?;
    let flush = number("MLOPS_PREDICTION_LOG_FLUSH_SECONDS", 5.0)?;
    let log = PredictionLog::open(
        db.clone(),
        store.clone(),
        Default::default(),
        std::time::Duration::from_secs_f64(flush),
    )
    .await
    .context("opening the prediction log settings")?;
    Ok(Endpoint::new(store.clone(), cache_mb as u64, log))
}

/// A positive number from the environment variable `name`, or `default` when it is unset.
fn positive_number(name: &str, default: f64) -> anyhow::Result<f64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| *n > 0.0 && n.is_finite())
            .with_context(|| format!("{name} must be a positive number, got `{v}`")),
        Err(_) => Ok(default),
    }
}
