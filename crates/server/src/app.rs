//! Builds the server's services and its tool router from the configuration.

use std::sync::Arc;

use anyhow::Context;
use mlops_core::{ArtifactStore, Capability, Config, ToolRouter};
use mlops_data::DataCapability;
use mlops_eval::EvaluationCapability;
use mlops_github::{GithubCapability, GithubConfig, Repository, repository_from_config};
use mlops_notify::{Notifier, NotifyCapability};
use mlops_registry::{RegistryCapability, SqlRegistry};
use mlops_train::{JobManager, TrainingCapability};
use mlops_workflow::{EngineConfig, WorkflowCapability, WorkflowEngine, WorkflowStore};

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
                    mlops_core::config::redact_url(&config.database_url)
                )
            })?;
        // A misconfigured channel (a bad webhook URL, an invalid address) stops start-up with a
        // message naming the setting, never its value.
        let notifier =
            Notifier::on_pool(&config.home, &config.database_url, registry.pool().clone())
                .await
                .context("configuring notifications")?;
        let github = GithubConfig::from_env(&config.home).context("configuring GitHub")?;
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
        let jobs = JobManager::with_database(registry.pool().clone())
            .await
            .context("opening the training job records")?;
        let capabilities: Vec<Arc<dyn Capability>> = vec![
            DataCapability::new(store.clone()),
            TrainingCapability::new(store.clone(), jobs),
            EvaluationCapability::new(store.clone()),
            RegistryCapability::new(Arc::new(registry), store.clone()),
            NotifyCapability::new(notifier.clone()),
            GithubCapability::new(repository.clone()),
            WorkflowCapability::new(workflows.clone()),
        ];
        let router = ToolRouter::new(&capabilities)?;
        // The engine calls every other tool through the same router as clients do.
        workflows.attach(router.clone());
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
        })
    }
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
