//! Test support (feature `test-support`): a fresh PostgreSQL schema per test, so tests sharing one
//! server never see each other's tables and leave nothing behind.
//!
//! The server is `MLOPS_TEST_POSTGRES_URL`, or the local one CI provides. Where it cannot be
//! reached the PostgreSQL half of a test is skipped with a loud message, except in CI (`CI=true`),
//! where that fails the test: a CI machine without PostgreSQL must not pass quietly.

use sqlx::Connection;

/// The PostgreSQL the tests use unless `MLOPS_TEST_POSTGRES_URL` names another.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A PostgreSQL schema that is dropped, with everything in it, when the test ends.
pub struct Schema {
    base: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs outside async code (and may run inside a runtime, which cannot block on
        // another): a short-lived runtime on its own thread does the cleanup. A failed cleanup
        // only leaves an empty schema behind, so its errors are ignored.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&base).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
    }
}

/// A URL whose connections use a new, empty schema named `<prefix>_<random>` (its
/// `search_path`), and the guard that drops the schema; None when PostgreSQL cannot be reached
/// outside CI. `prefix` tells whose schema a leftover one was (e.g. `reg`, `ntf`): lowercase
/// letters, digits and `_`, starting with a letter.
///
/// # Panics
/// In CI when PostgreSQL cannot be reached; on a malformed prefix; when the schema cannot be
/// created.
pub async fn fresh_pg_schema(prefix: &str) -> Option<(String, Schema)> {
    // The name goes into SQL unquoted: only identifier characters may reach it.
    assert!(
        prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "schema prefix `{prefix}` must be lowercase letters, digits and `_`, starting with a letter"
    );
    let base = server_url();
    let mut conn = match sqlx::PgConnection::connect(&base).await {
        Ok(conn) => conn,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL is required in CI ({base}): {e}")
        }
        Err(e) => {
            eprintln!(
                "\n!!! SKIPPING the PostgreSQL half of this test: cannot reach {base}: {e}\n"
            );
            return None;
        }
    };
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut conn)
        .await
    {
        panic!("creating the test schema {name} on {base}: {e}");
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
    Some((url, Schema { base, name }))
}

/// The server the test schemas are made on.
fn server_url() -> String {
    std::env::var("MLOPS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_schema_holds_its_tables_until_dropped() {
        let Some((url, schema)) = fresh_pg_schema("dbt").await else {
            return;
        };
        let pool = crate::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x BIGINT)")
            .execute(&pool)
            .await
            .unwrap();
        let name: String = sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(name.starts_with("dbt_"), "{name}");
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1",
        )
        .bind(&name)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(tables, 1, "the table went into the test's schema");
        pool.close().await;

        drop(schema);
        let mut conn = sqlx::PgConnection::connect(&server_url()).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1",
        )
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(left, 0, "the schema is gone after the guard");
    }

    #[tokio::test]
    #[should_panic(expected = "must be lowercase letters")]
    async fn a_prefix_that_is_not_an_identifier_is_refused() {
        fresh_pg_schema("x; DROP").await;
    }
}
