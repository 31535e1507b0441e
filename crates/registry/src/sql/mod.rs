//! The SQL registry (sqlx `Any`: SQLite or PostgreSQL by URL). Every statement is written in the
//! SQL both understand; tags and metrics are also kept in side tables so search can filter and
//! sort on them with indexes.
//!
//! The tables and how rows read back are in [`schema`], the retried transactions that every change
//! runs in (and the steps changes share) in [`tx`], and search's filter builder in [`search`].

mod schema;
mod search;
mod tx;

use std::collections::HashMap;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row};

use schema::{MIGRATIONS, SELECT_VERSION, from_row};
use tx::{
    Field, archive_production, current, in_transaction, lock_model, record, update_field,
    update_stage,
};

use crate::rules::{
    alias_moves, check_approval_change, check_deletable, check_stage_change, check_unaliased,
    no_approved_before, nothing_in_production,
};
use crate::{
    Actor, ApprovalStatus, ModelVersion, NewVersion, Registry, RegistryError, Rollback,
    SearchQuery, Stage,
};

/// The model registry on a SQL database.
#[derive(Clone)]
pub struct SqlRegistry {
    pool: AnyPool,
}

impl SqlRegistry {
    /// Connects (creating a SQLite file and its folder if needed) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, RegistryError> {
        let pool = mlops_db::connect(url).await?;
        mlops_db::migrate(&pool, "registry_migrations", MIGRATIONS).await?;
        Ok(Self { pool })
    }

    /// The connection pool (shared with other stores on the same database).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The versions in `rows`, with their aliases.
    async fn fetch_versions(&self, rows: Vec<AnyRow>) -> Result<Vec<ModelVersion>, RegistryError> {
        let mut versions: Vec<ModelVersion> =
            rows.iter().map(from_row).collect::<Result<_, _>>()?;
        if versions.is_empty() {
            return Ok(versions);
        }
        // Aliases of the page's models in one query.
        let mut names: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT name, alias, version FROM model_aliases WHERE name IN ({}) ORDER BY alias",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for n in &names {
            q = q.bind(n.to_string());
        }
        let mut aliases: HashMap<(String, i64), Vec<String>> = HashMap::new();
        for row in q.fetch_all(&self.pool).await? {
            aliases
                .entry((row.try_get("name")?, row.try_get("version")?))
                .or_default()
                .push(row.try_get("alias")?);
        }
        for v in &mut versions {
            v.aliases = aliases
                .remove(&(v.name.clone(), v.version))
                .unwrap_or_default();
        }
        Ok(versions)
    }

    /// The first version that `sql` (with the values `bind` adds) finds.
    async fn one(
        &self,
        sql: String,
        bind: impl FnOnce(Query<'_, Any, AnyArguments>) -> Query<'_, Any, AnyArguments>,
    ) -> Result<Option<ModelVersion>, RegistryError> {
        let rows = bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.pool)
            .await?;
        Ok(self.fetch_versions(rows).await?.into_iter().next())
    }

    /// Says whether the model or only the thing asked for is missing.
    async fn not_found(&self, name: &str, what: String) -> RegistryError {
        let known: Result<i64, _> =
            sqlx::query_scalar("SELECT COUNT(*) FROM registered_models WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await;
        match known {
            Ok(n) if n > 0 => RegistryError::NotFound(format!("model `{name}` has no {what}")),
            _ => RegistryError::NotFound(format!("no model named `{name}` is registered")),
        }
    }
}

#[async_trait::async_trait]
impl Registry for SqlRegistry {
    async fn register(&self, v: NewVersion) -> Result<ModelVersion, RegistryError> {
        let metrics =
            serde_json::to_string(&v.metrics).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let tags =
            serde_json::to_string(&v.tags).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let parameters = v.parameters.to_string();
        let now = now();
        let version = in_transaction!(self, "registering a version", |tx| {
            sqlx::query("INSERT INTO registered_models (name, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT (name) DO NOTHING")
                        .bind(&v.name)
                        .bind(&now)
                        .execute(&mut **tx)
                        .await?;
            let version: i64 = sqlx::query_scalar(
                        "INSERT INTO model_versions (name, version, artifact_uri, algorithm, task, stage, approval_status, metrics, parameters, tags, description,
                            dataset_uri, dataset_sha256, training_job_name, execution_id, issue_number, git_commit, created_at, updated_at)
                         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, 'None', 'PendingManualApproval', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15
                         FROM model_versions WHERE name = $1
                         RETURNING version",
                    )
                    .bind(&v.name)
                    .bind(&v.artifact_uri)
                    .bind(&v.algorithm)
                    .bind(&v.task)
                    .bind(&metrics)
                    .bind(&parameters)
                    .bind(&tags)
                    .bind(&v.description)
                    .bind(&v.lineage.dataset_uri)
                    .bind(&v.lineage.dataset_sha256)
                    .bind(&v.lineage.training_job_name)
                    .bind(&v.lineage.execution_id)
                    .bind(v.lineage.issue_number)
                    .bind(&v.lineage.git_commit)
                    .bind(&now)
                    .fetch_one(&mut **tx)
                    .await?;
            for (metric, value) in &v.metrics {
                sqlx::query("INSERT INTO model_version_metrics (name, version, metric, value) VALUES ($1, $2, $3, $4)")
                            .bind(&v.name)
                            .bind(version)
                            .bind(metric)
                            .bind(*value)
                            .execute(&mut **tx)
                            .await?;
            }
            for (tag, value) in &v.tags {
                sqlx::query("INSERT INTO model_version_tags (name, version, tag, value) VALUES ($1, $2, $3, $4)")
                            .bind(&v.name)
                            .bind(version)
                            .bind(tag)
                            .bind(value)
                            .execute(&mut **tx)
                            .await?;
            }
            Ok(version)
        });
        // Everything is known here; reading the row back would cost two more round trips.
        Ok(ModelVersion {
            name: v.name,
            version,
            artifact_uri: v.artifact_uri,
            algorithm: v.algorithm,
            task: v.task,
            stage: Stage::None,
            approval_status: ApprovalStatus::PendingManualApproval,
            aliases: Vec::new(),
            metrics: v.metrics,
            parameters: v.parameters,
            tags: v.tags,
            description: v.description,
            lineage: v.lineage,
            created_at: now.clone(),
            updated_at: now,
        })
    }

    async fn get(&self, name: &str, version: i64) -> Result<ModelVersion, RegistryError> {
        match self
            .one(
                format!("{SELECT_VERSION} WHERE v.name = $1 AND v.version = $2"),
                |q| q.bind(name.to_string()).bind(version),
            )
            .await?
        {
            Some(v) => Ok(v),
            None => Err(self.not_found(name, format!("version {version}")).await),
        }
    }

    async fn latest(
        &self,
        name: &str,
        stage: Option<Stage>,
    ) -> Result<ModelVersion, RegistryError> {
        let found = match stage {
            Some(stage) => {
                self.one(format!("{SELECT_VERSION} WHERE v.name = $1 AND v.stage = $2 ORDER BY v.version DESC LIMIT 1"), |q| {
                    q.bind(name.to_string()).bind(stage.as_str())
                })
                .await?
            }
            None => self.one(format!("{SELECT_VERSION} WHERE v.name = $1 ORDER BY v.version DESC LIMIT 1"), |q| q.bind(name.to_string())).await?,
        };
        match found {
            Some(v) => Ok(v),
            None => Err(self
                .not_found(
                    name,
                    stage
                        .map(|s| format!("version in stage {}", s.as_str()))
                        .unwrap_or_else(|| "versions".into()),
                )
                .await),
        }
    }

    async fn by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, RegistryError> {
        let found = self
            .one(format!("{SELECT_VERSION} JOIN model_aliases a ON a.name = v.name AND a.version = v.version WHERE a.name = $1 AND a.alias = $2"), |q| {
                q.bind(name.to_string()).bind(alias.to_string())
            })
            .await?;
        match found {
            Some(v) => Ok(v),
            None => Err(self.not_found(name, format!("alias `{alias}`")).await),
        }
    }

    async fn list_versions(
        &self,
        name: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ModelVersion>, i64), RegistryError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_versions WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        if total == 0 {
            return Err(self.not_found(name, "versions".into()).await);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_VERSION} WHERE v.name = $1 ORDER BY v.version DESC LIMIT $2 OFFSET $3"
        )))
        .bind(name)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((self.fetch_versions(rows).await?, total))
    }

    async fn set_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
        actor: &Actor,
    ) -> Result<ModelVersion, RegistryError> {
        in_transaction!(self, "changing a stage", |tx| {
            lock_model(tx, name).await?;
            let (from, approval) = current(tx, name, version).await?;
            check_stage_change(name, version, from, approval, stage)?;
            if stage == Stage::Production && archive_existing {
                archive_production(tx, name, version, actor).await?;
            }
            update_stage(tx, name, version, from, stage, actor).await
        });
        self.get(name, version).await
    }

    async fn set_approval(
        &self,
        name: &str,
        version: i64,
        status: ApprovalStatus,
        actor: &Actor,
    ) -> Result<ModelVersion, RegistryError> {
        in_transaction!(self, "changing an approval", |tx| {
            lock_model(tx, name).await?;
            let (stage, from) = current(tx, name, version).await?;
            check_approval_change(name, version, stage, from, status)?;
            let (from, to) = (from.as_str(), status.as_str());
            update_field(tx, name, version, Field::Approval, from, to, actor).await
        });
        self.get(name, version).await
    }

    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        reassign: bool,
    ) -> Result<ModelVersion, RegistryError> {
        in_transaction!(self, "setting an alias", |tx| {
            lock_model(tx, name).await?;
            current(tx, name, version).await?;
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM model_aliases WHERE name = $1 AND alias = $2",
            )
            .bind(name)
            .bind(alias)
            .fetch_optional(&mut **tx)
            .await?;
            if !alias_moves(name, alias, version, existing, reassign)? {
                return Ok(());
            }
            match existing {
                Some(_) => {
                    sqlx::query("UPDATE model_aliases SET version = $1, updated_at = $2 WHERE name = $3 AND alias = $4")
                            .bind(version)
                            .bind(now())
                            .bind(name)
                            .bind(alias)
                            .execute(&mut **tx)
                            .await?;
                    Ok(())
                }
                None => {
                    sqlx::query("INSERT INTO model_aliases (name, alias, version, updated_at) VALUES ($1, $2, $3, $4)")
                            .bind(name)
                            .bind(alias)
                            .bind(version)
                            .bind(now())
                            .execute(&mut **tx)
                            .await?;
                    Ok(())
                }
            }
        });
        self.get(name, version).await
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError> {
        let n = sqlx::query("DELETE FROM model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&self.pool)
            .await?;
        if n.rows_affected() == 0 {
            return Err(self.not_found(name, format!("alias `{alias}`")).await);
        }
        Ok(())
    }

    async fn rollback(&self, name: &str, actor: &Actor) -> Result<Rollback, RegistryError> {
        let (from, to) = in_transaction!(self, "rolling back", |tx| {
            lock_model(tx, name).await?;
            let production: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(version) FROM model_versions WHERE name = $1 AND stage = 'Production'",
            )
            .bind(name)
            .fetch_one(&mut **tx)
            .await?;
            let Some(production) = production else {
                return Err(nothing_in_production(name).into());
            };
            let previous: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(version) FROM model_versions WHERE name = $1 AND version < $2 AND approval_status = 'Approved'",
                    )
                    .bind(name)
                    .bind(production)
                    .fetch_one(&mut **tx)
                    .await?;
            let Some(previous) = previous else {
                return Err(no_approved_before(name, production).into());
            };
            let (previous_stage, _) = current(tx, name, previous).await?;
            archive_production(tx, name, previous, actor).await?;
            update_stage(tx, name, previous, previous_stage, Stage::Production, actor).await?;
            record(
                tx,
                name,
                previous,
                "rollback",
                &production.to_string(),
                &previous.to_string(),
                actor,
            )
            .await?;
            Ok((production, previous))
        });
        Ok(Rollback {
            from: self.get(name, from).await?,
            to: self.get(name, to).await?,
        })
    }

    async fn search(&self, q: &SearchQuery) -> Result<(Vec<ModelVersion>, i64), RegistryError> {
        self.search_versions(q).await
    }

    async fn delete_version(
        &self,
        name: &str,
        version: i64,
        actor: &Actor,
    ) -> Result<(), RegistryError> {
        in_transaction!(self, "deleting a version", |tx| {
            lock_model(tx, name).await?;
            let (stage, _) = current(tx, name, version).await?;
            check_deletable(name, version, stage)?;
            let aliases: Vec<String> = sqlx::query_scalar(
                "SELECT alias FROM model_aliases WHERE name = $1 AND version = $2",
            )
            .bind(name)
            .bind(version)
            .fetch_all(&mut **tx)
            .await?;
            check_unaliased(name, version, &aliases)?;
            for table in [
                "model_version_metrics",
                "model_version_tags",
                "model_versions",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE name = $1 AND version = $2"
                )))
                .bind(name)
                .bind(version)
                .execute(&mut **tx)
                .await?;
            }
            record(tx, name, version, "deleted", stage.as_str(), "", actor).await
        });
        Ok(())
    }
}

/// Timestamps are stored as UTC text of one fixed width, so that they sort and compare as text.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
