//! The SQL registry (sqlx `Any`: SQLite or PostgreSQL by URL). Every statement is written in the
//! SQL both understand; tags and metrics are also kept in side tables so search can filter and
//! sort on them with indexes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mlops_core::metric_names;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::{
    Actor, ApprovalStatus, Lineage, MetricRange, ModelVersion, NewVersion, Registry, RegistryError,
    Rollback, SearchOrder, SearchQuery, Stage,
};

/// Schema changes, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS registered_models (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS model_versions (
        name TEXT NOT NULL REFERENCES registered_models(name),
        version BIGINT NOT NULL,
        artifact_uri TEXT NOT NULL,
        algorithm TEXT,
        task TEXT,
        stage TEXT NOT NULL,
        approval_status TEXT NOT NULL,
        metrics TEXT NOT NULL,
        parameters TEXT NOT NULL,
        tags TEXT NOT NULL,
        description TEXT,
        dataset_uri TEXT,
        dataset_sha256 TEXT,
        training_job_name TEXT,
        execution_id TEXT,
        issue_number BIGINT,
        git_commit TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE INDEX IF NOT EXISTS model_versions_by_stage ON model_versions (stage, name);
    CREATE INDEX IF NOT EXISTS model_versions_by_created ON model_versions (created_at);
    CREATE TABLE IF NOT EXISTS model_version_metrics (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        metric TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (name, version, metric)
    );
    CREATE INDEX IF NOT EXISTS model_version_metrics_by_value ON model_version_metrics (metric, value);
    CREATE TABLE IF NOT EXISTS model_version_tags (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        tag TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (name, version, tag)
    );
    CREATE INDEX IF NOT EXISTS model_version_tags_by_value ON model_version_tags (tag, value);
    CREATE TABLE IF NOT EXISTS model_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, alias)
    );
    CREATE TABLE IF NOT EXISTS model_events (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        event TEXT NOT NULL,
        from_value TEXT,
        to_value TEXT,
        actor TEXT NOT NULL,
        reason TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS model_events_by_model ON model_events (name, version)",
)];

/// How often a write retries after losing a race (a version number taken, a serialization failure).
const MAX_ATTEMPTS: u32 = 30;

const SELECT_VERSION: &str = "SELECT v.name, v.version, v.artifact_uri, v.algorithm, v.task, v.stage, v.approval_status, v.metrics, v.parameters, v.tags,
    v.description, v.dataset_uri, v.dataset_sha256, v.training_job_name, v.execution_id, v.issue_number, v.git_commit, v.created_at, v.updated_at
    FROM model_versions v";

/// Runs `$body` in a transaction, retrying when a concurrent writer won a race (a version number
/// taken, a serialization failure, a busy database). Evaluates to the body's value.
macro_rules! in_transaction {
    ($self:expr, $what:expr, |$tx:ident| $body:block) => {{
        let mut attempt = 0u32;
        loop {
            let mut txn = $self.pool.begin().await?;
            let result: Result<_, TxError> = {
                let $tx: &mut Tx = &mut txn;
                async { $body }.await
            };
            match settle(txn, result, &mut attempt, $what).await? {
                Some(value) => break value,
                None => continue,
            }
        }
    }};
}

/// Commits a successful body; says whether a failed one should be retried.
async fn settle<T>(
    tx: Tx,
    result: Result<T, TxError>,
    attempt: &mut u32,
    what: &str,
) -> Result<Option<T>, RegistryError> {
    // A dropped transaction only queues its ROLLBACK until the connection's next use, holding its
    // locks meanwhile; roll back explicitly so a refused change never blocks the next one.
    let error = match result {
        Ok(value) => match tx.commit().await {
            Ok(()) => return Ok(Some(value)),
            Err(e) => e,
        },
        Err(TxError::Registry(e)) => {
            tx.rollback().await?;
            return Err(e);
        }
        Err(TxError::Sql(e)) => {
            // The transaction may already be aborted; a failed rollback changes nothing here.
            let _ = tx.rollback().await;
            e
        }
    };
    if !mlops_db::is_retryable(&error) {
        return Err(error.into());
    }
    *attempt += 1;
    if *attempt >= MAX_ATTEMPTS {
        return Err(RegistryError::Database(format!(
            "{what} kept conflicting with concurrent writes: {error}"
        )));
    }
    tracing::debug!(attempt = *attempt, what, error = %error, "concurrent write; retrying");
    tokio::time::sleep(Duration::from_millis(1 << (*attempt).min(7))).await;
    Ok(None)
}

/// The model registry on a SQL database.
#[derive(Clone)]
pub struct SqlRegistry {
    pool: AnyPool,
}

type Tx = Transaction<'static, Any>;

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

/// Errors inside a retried transaction: SQL errors may be retried, registry errors end it.
enum TxError {
    Sql(sqlx::Error),
    Registry(RegistryError),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Sql(e)
    }
}

impl From<RegistryError> for TxError {
    fn from(e: RegistryError) -> Self {
        TxError::Registry(e)
    }
}

/// Takes the model's row lock first, so changes to one model's stages serialize (on PostgreSQL a
/// row lock; on SQLite the database write lock).
async fn lock_model(tx: &mut Tx, name: &str) -> Result<(), TxError> {
    let n = sqlx::query("UPDATE registered_models SET updated_at = $1 WHERE name = $2")
        .bind(now())
        .bind(name)
        .execute(&mut **tx)
        .await?;
    if n.rows_affected() == 0 {
        return Err(
            RegistryError::NotFound(format!("no model named `{name}` is registered")).into(),
        );
    }
    Ok(())
}

async fn current(
    tx: &mut Tx,
    name: &str,
    version: i64,
) -> Result<(Stage, ApprovalStatus), TxError> {
    let row = sqlx::query(
        "SELECT stage, approval_status FROM model_versions WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound(format!("model `{name}` has no version {version}")))?;
    Ok((
        parse_stage(&row.try_get::<String, _>("stage")?)?,
        parse_approval(&row.try_get::<String, _>("approval_status")?)?,
    ))
}

async fn record(
    tx: &mut Tx,
    name: &str,
    version: i64,
    event: &str,
    from: &str,
    to: &str,
    actor: &Actor,
) -> Result<(), TxError> {
    sqlx::query("INSERT INTO model_events (name, version, event, from_value, to_value, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(name)
        .bind(version)
        .bind(event)
        .bind(from)
        .bind(to)
        .bind(&actor.who)
        .bind(&actor.why)
        .bind(now())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn update_stage(
    tx: &mut Tx,
    name: &str,
    version: i64,
    from: Stage,
    to: Stage,
    actor: &Actor,
) -> Result<(), TxError> {
    sqlx::query(
        "UPDATE model_versions SET stage = $1, updated_at = $2 WHERE name = $3 AND version = $4",
    )
    .bind(to.as_str())
    .bind(now())
    .bind(name)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    record(
        tx,
        name,
        version,
        "stage",
        from.as_str(),
        to.as_str(),
        actor,
    )
    .await
}

/// Archives every Production version of `name` except `keep`.
async fn archive_production(
    tx: &mut Tx,
    name: &str,
    keep: i64,
    actor: &Actor,
) -> Result<(), TxError> {
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM model_versions WHERE name = $1 AND stage = 'Production' AND version <> $2")
        .bind(name)
        .bind(keep)
        .fetch_all(&mut **tx)
        .await?;
    for v in versions {
        update_stage(tx, name, v, Stage::Production, Stage::Archived, actor).await?;
    }
    Ok(())
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
            if from == stage {
                return Err(RegistryError::Invalid(format!(
                    "`{name}` version {version} is already in stage {}",
                    stage.as_str()
                ))
                .into());
            }
            if matches!(stage, Stage::Staging | Stage::Production)
                && approval == ApprovalStatus::Rejected
            {
                return Err(RegistryError::Invalid(format!(
                    "`{name}` version {version} was rejected; a rejected version cannot move to {}",
                    stage.as_str()
                ))
                .into());
            }
            if stage == Stage::Production && approval != ApprovalStatus::Approved {
                return Err(RegistryError::Invalid(format!(
                        "`{name}` version {version} is {}; approve it (set_model_approval) before moving it to Production",
                        approval.as_str()
                    ))
                    .into());
            }
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
            if from == status {
                return Err(RegistryError::Invalid(format!(
                    "`{name}` version {version} is already {}",
                    status.as_str()
                ))
                .into());
            }
            if status == ApprovalStatus::Rejected && stage == Stage::Production {
                return Err(RegistryError::Invalid(format!(
                        "`{name}` version {version} is in Production; roll back (rollback_model) or move it out of Production before rejecting it"
                    ))
                    .into());
            }
            sqlx::query("UPDATE model_versions SET approval_status = $1, updated_at = $2 WHERE name = $3 AND version = $4")
                    .bind(status.as_str())
                    .bind(now())
                    .bind(name)
                    .bind(version)
                    .execute(&mut **tx)
                    .await?;
            record(
                tx,
                name,
                version,
                "approval",
                from.as_str(),
                status.as_str(),
                actor,
            )
            .await
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
            match existing {
                    Some(v) if v == version => Ok(()),
                    Some(v) if !reassign => Err(RegistryError::Invalid(format!(
                        "alias `{alias}` of `{name}` already points at version {v}; pass reassign: true to move it to version {version}"
                    ))
                    .into()),
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
                return Err(RegistryError::Invalid(format!(
                    "`{name}` has no version in Production to roll back from"
                ))
                .into());
            };
            let previous: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(version) FROM model_versions WHERE name = $1 AND version < $2 AND approval_status = 'Approved'",
                    )
                    .bind(name)
                    .bind(production)
                    .fetch_one(&mut **tx)
                    .await?;
            let Some(previous) = previous else {
                return Err(RegistryError::Invalid(format!(
                            "`{name}` has no approved version older than Production version {production}; nothing was changed"
                        ))
                        .into());
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
        let mut filter = SqlFilter::default();
        match &q.name_pattern {
            // No wildcard: an exact match, which uses the primary key.
            Some(p) if !p.contains(['*', '?']) => {
                filter.clause("v.name = {}", Bind::Text(p.clone()))
            }
            Some(p) => filter.clause("v.name LIKE {} ESCAPE '\\'", Bind::Text(glob_to_like(p))),
            None => {}
        }
        if let Some(s) = q.stage {
            filter.clause("v.stage = {}", Bind::Text(s.as_str().into()));
        }
        if let Some(a) = q.approval_status {
            filter.clause("v.approval_status = {}", Bind::Text(a.as_str().into()));
        }
        for (tag, value) in &q.tags {
            let t = filter.bind(Bind::Text(tag.clone()));
            let v = filter.bind(Bind::Text(value.clone()));
            // Driven from the (tag, value) index: the few matching versions, not every version.
            filter.raw(format!("(v.name, v.version) IN (SELECT t.name, t.version FROM model_version_tags t WHERE t.tag = {t} AND t.value = {v})"));
        }
        if let Some(MetricRange { name, min, max }) = &q.metric {
            let m = filter.bind(Bind::Text(name.clone()));
            let mut cond = format!("m.metric = {m}");
            if let Some(min) = min {
                cond.push_str(&format!(
                    " AND m.value >= {}",
                    filter.bind(Bind::Real(*min))
                ));
            }
            if let Some(max) = max {
                cond.push_str(&format!(
                    " AND m.value <= {}",
                    filter.bind(Bind::Real(*max))
                ));
            }
            filter.raw(format!("(v.name, v.version) IN (SELECT m.name, m.version FROM model_version_metrics m WHERE {cond})"));
        }
        if let Some(after) = &q.created_after {
            filter.clause("v.created_at >= {}", Bind::Text(normalize_time(after)?));
        }
        if let Some(before) = &q.created_before {
            filter.clause("v.created_at < {}", Bind::Text(normalize_time(before)?));
        }
        let where_sql = filter.where_sql();
        let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM model_versions v{where_sql}"
        )));
        for b in &filter.binds {
            count = match b {
                Bind::Text(t) => count.bind(t.clone()),
                Bind::Real(r) => count.bind(*r),
                Bind::Int(i) => count.bind(*i),
            };
        }
        let total = count.fetch_one(&self.pool).await?;
        let order = match &q.order {
            None | Some(SearchOrder::CreatedAt) => {
                "ORDER BY v.created_at DESC, v.name, v.version DESC".to_string()
            }
            Some(SearchOrder::Metric { name }) => {
                let m = filter.bind(Bind::Text(name.clone()));
                let best_first = if metric_names::lower_is_better(name) {
                    "ASC"
                } else {
                    "DESC"
                };
                format!(
                    "ORDER BY (SELECT COUNT(*) FROM model_version_metrics o WHERE o.name = v.name AND o.version = v.version AND o.metric = {m}) DESC, \
                     (SELECT o.value FROM model_version_metrics o WHERE o.name = v.name AND o.version = v.version AND o.metric = {m}) {best_first}, v.name, v.version DESC"
                )
            }
        };
        let limit = filter.bind(Bind::Int(q.limit));
        let offset = filter.bind(Bind::Int(q.offset));
        let sql = format!("{SELECT_VERSION}{where_sql} {order} LIMIT {limit} OFFSET {offset}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &filter.binds {
            query = match b {
                Bind::Text(t) => query.bind(t.clone()),
                Bind::Real(r) => query.bind(*r),
                Bind::Int(i) => query.bind(*i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok((self.fetch_versions(rows).await?, total))
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
            if stage == Stage::Production {
                return Err(RegistryError::Invalid(format!(
                        "`{name}` version {version} is in Production; move it to Archived (or roll back) before deleting it"
                    ))
                    .into());
            }
            let aliases: Vec<String> = sqlx::query_scalar(
                "SELECT alias FROM model_aliases WHERE name = $1 AND version = $2",
            )
            .bind(name)
            .bind(version)
            .fetch_all(&mut **tx)
            .await?;
            if !aliases.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "`{name}` version {version} is the target of alias {}; move or remove it first",
                    aliases.join(", ")
                ))
                .into());
            }
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

/// A value bound to a search query.
enum Bind {
    Text(String),
    Real(f64),
    Int(i64),
}

/// WHERE clauses with numbered placeholders, bound in order of first appearance.
#[derive(Default)]
struct SqlFilter {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl SqlFilter {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
    fn clause(&mut self, template: &str, b: Bind) {
        let p = self.bind(b);
        self.clauses.push(template.replace("{}", &p));
    }
    fn raw(&mut self, clause: String) {
        self.clauses.push(clause);
    }
    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// `churn-*` → `churn-%`, with LIKE's own wildcards escaped.
fn glob_to_like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '*' => out.push('%'),
            '?' => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

fn normalize_time(text: &str) -> Result<String, RegistryError> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| {
            RegistryError::Invalid(format!(
                "`{text}` is not a date (use 2026-11-25 or 2026-11-25T10:00:00Z)"
            ))
        })?;
    Ok(parsed.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

fn parse_stage(s: &str) -> Result<Stage, RegistryError> {
    Stage::parse(s)
        .ok_or_else(|| RegistryError::Database(format!("unknown stage `{s}` in the database")))
}

fn parse_approval(s: &str) -> Result<ApprovalStatus, RegistryError> {
    ApprovalStatus::parse(s).ok_or_else(|| {
        RegistryError::Database(format!("unknown approval status `{s}` in the database"))
    })
}

fn from_row(row: &AnyRow) -> Result<ModelVersion, RegistryError> {
    let json = |col: &str| -> Result<serde_json::Value, RegistryError> {
        let text: String = row.try_get(col)?;
        serde_json::from_str(&text)
            .map_err(|e| RegistryError::Database(format!("column {col} holds invalid JSON: {e}")))
    };
    let metrics: BTreeMap<String, f64> = serde_json::from_value(json("metrics")?)
        .map_err(|e| RegistryError::Database(e.to_string()))?;
    let tags: BTreeMap<String, String> = serde_json::from_value(json("tags")?)
        .map_err(|e| RegistryError::Database(e.to_string()))?;
    Ok(ModelVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        artifact_uri: row.try_get("artifact_uri")?,
        algorithm: row.try_get("algorithm")?,
        task: row.try_get("task")?,
        stage: parse_stage(&row.try_get::<String, _>("stage")?)?,
        approval_status: parse_approval(&row.try_get::<String, _>("approval_status")?)?,
        aliases: Vec::new(),
        metrics,
        parameters: json("parameters")?,
        tags,
        description: row.try_get("description")?,
        lineage: Lineage {
            dataset_uri: row.try_get("dataset_uri")?,
            dataset_sha256: row.try_get("dataset_sha256")?,
            training_job_name: row.try_get("training_job_name")?,
            execution_id: row.try_get("execution_id")?,
            issue_number: row.try_get("issue_number")?,
            git_commit: row.try_get("git_commit")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_escaped_like_patterns() {
        assert_eq!(glob_to_like("churn-*"), "churn-%");
        assert_eq!(glob_to_like("a_b%c?"), "a\\_b\\%c_");
    }

    #[test]
    fn dates_are_normalised_for_comparison() {
        assert_eq!(
            normalize_time("2026-11-25").unwrap(),
            "2026-11-25T00:00:00.000000Z"
        );
        assert_eq!(
            normalize_time("2026-11-25T10:00:00+01:00").unwrap(),
            "2026-11-25T09:00:00.000000Z"
        );
        assert!(normalize_time("yesterday").is_err());
    }
}
