//! mlops-db: the database every stateful capability shares (the registry, the notification outbox,
//! the workflow executions): one connection setup for SQLite and PostgreSQL through sqlx's Any
//! driver, versioned migrations that several servers may run at once, and the classification of
//! errors worth retrying. With the `test-support` feature, `testing` gives tests a fresh
//! PostgreSQL schema each.

#[cfg(any(test, feature = "test-support"))]
pub mod testing;

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// A database that could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create {path}: {reason}")]
    Folder { path: String, reason: String },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Connects to `url` (`sqlite://PATH` — the file and its folder are created — or
/// `postgres://…`). SQLite runs in WAL mode with a busy timeout, and LIKE is case-sensitive as on
/// PostgreSQL.
pub async fn connect(url: &str) -> Result<AnyPool, DbError> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url = prepare_sqlite_url(url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite { 4 } else { 10 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // WAL lets readers run beside the writer; NORMAL sync is durable in WAL mode
                    // except against power loss, and keeps writes fast.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = NORMAL",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA case_sensitive_like = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    Ok(pool)
}

/// Applies `migrations` (version, `;`-separated statements) not yet recorded in `table`, each in
/// its own transaction. Two servers starting at once both try; the loser records nothing and
/// rolls back.
pub async fn migrate(
    pool: &AnyPool,
    table: &str,
    migrations: &[(i64, &str)],
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )))
    .execute(pool)
    .await
    .or_else(ignore_concurrent_create)?;
    for (version, sql) in migrations {
        let mut tx = pool.begin().await?;
        let done: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT version FROM {table} WHERE version = $1"
        )))
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_some() {
            tx.rollback().await?;
            continue;
        }
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (version, applied_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING"
        )))
        .bind(version)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
    }
    Ok(())
}

/// A unique-key violation (another writer took the key), a serialization failure or deadlock
/// (PostgreSQL), or a busy or locked database (SQLite): worth retrying the transaction.
pub fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || matches!(
                    db.code().as_deref(),
                    Some("40001" | "40P01" | "5" | "6" | "517" | "261")
                )
        }
        _ => false,
    }
}

/// `CREATE TABLE IF NOT EXISTS` can still race on PostgreSQL's catalog; the loser's error is harmless.
fn ignore_concurrent_create(e: sqlx::Error) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
    match &e {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("23505" | "42P07")) => {
            Ok(Default::default())
        }
        _ => Err(e),
    }
}

/// For SQLite: creates the database's folder and asks sqlx to create the file.
fn prepare_sqlite_url(url: &str) -> Result<String, DbError> {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(url.to_string());
    };
    let path = rest.split('?').next().unwrap_or(rest);
    if path != ":memory:"
        && !path.is_empty()
        && let Some(parent) = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| DbError::Folder {
            path: parent.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(if rest.contains("mode=") {
        url.to_string()
    } else if rest.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/db.sqlite", dir.path().display());
        let pool = connect(&url).await.unwrap();
        let migrations = [(1, "CREATE TABLE t (x BIGINT); INSERT INTO t (x) VALUES (1)")];
        migrate(&pool, "t_migrations", &migrations).await.unwrap();
        // A second run (another server starting) changes nothing.
        migrate(&pool, "t_migrations", &migrations).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}
