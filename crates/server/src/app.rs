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

/// Everything a running server holds.
pub struct App {
    pub config: Config,
    pub store: ArtifactStore,
    pub router: ToolRouter,
    /// Sends notifications through the outbox; a server starts its delivery worker.
    pub notifier: Arc<Notifier>,
    /// GitHub when a token and repository are configured, else the local history repository.
    pub repository: Arc<dyn Repository>,
    pub github: GithubConfig,
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
        let notifier = Notifier::from_config(&config.home, &config.database_url)
            .await
            .context("configuring notifications")?;
        let github = GithubConfig::from_env(&config.home).context("configuring GitHub")?;
        let repository = repository_from_config(&github)
            .await
            .context("opening the repository for training history")?;
        let jobs = JobManager::new();
        let capabilities: Vec<Arc<dyn Capability>> = vec![
            DataCapability::new(store.clone()),
            TrainingCapability::new(store.clone(), jobs),
            EvaluationCapability::new(store.clone()),
            RegistryCapability::new(Arc::new(registry), store.clone()),
            NotifyCapability::new(notifier.clone()),
            GithubCapability::new(repository.clone()),
        ];
        let router = ToolRouter::new(&capabilities)?;
        Ok(Self {
            config,
            store,
            router,
            notifier,
            repository,
            github,
        })
    }
}
