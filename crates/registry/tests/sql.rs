//! The SQL registry on SQLite and on the PostgreSQL on this machine (each test in a fresh
//! schema): the registry's contract, and what only SQL stores allow. Without PostgreSQL the
//! PostgreSQL tests are skipped with a loud message, except in CI (`CI=true`), where its absence
//! fails them.

mod contract;

use std::any::Any;
use std::sync::Arc;

use mlops_db::testing::fresh_pg_schema;
use mlops_registry::{Registry, SearchQuery, SqlRegistry};

/// A store, and what keeps it alive (its folder or schema).
type Opened = Option<(Arc<dyn Registry>, Box<dyn Any>)>;

/// A registry in a new SQLite file.
async fn sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/registry.db", dir.path().display());
    let registry = SqlRegistry::connect(&url).await.unwrap();
    Some((Arc::new(registry), Box::new(dir)))
}

/// A registry in a new PostgreSQL schema; None when PostgreSQL is absent outside CI.
async fn postgres() -> Opened {
    let (url, schema) = fresh_pg_schema("reg").await?;
    let registry = SqlRegistry::connect(&url).await.unwrap();
    Some((Arc::new(registry), Box::new(schema)))
}

mod sqlite {
    crate::contract::contract_tests!(super::sqlite, racers = 50);
}

mod postgres {
    // PostgreSQL takes far more writers at once than SQLite's single write lock.
    crate::contract::contract_tests!(super::postgres, racers = 200);
}

/// Both stores that can be opened here, by name.
async fn both() -> Vec<(&'static str, Arc<dyn Registry>, Box<dyn Any>)> {
    [("sqlite", sqlite().await), ("postgres", postgres().await)]
        .into_iter()
        .filter_map(|(name, opened)| opened.map(|(reg, guard)| (name, reg, guard)))
        .collect()
}

/// SageMaker refuses `_` in model names (see tests/sagemaker.rs); SQL takes it, and it is
/// literal in search patterns, not LIKE's any-character.
#[tokio::test]
async fn model_names_may_hold_underscores() {
    for (backend, reg, _guard) in both().await {
        reg.register(contract::version("fraud_x", 0.99, &[]))
            .await
            .unwrap();
        reg.register(contract::version("fraudyx", 0.99, &[]))
            .await
            .unwrap();
        for (pattern, expected) in [
            ("fraud_x", 1),
            ("fraud?x", 2),
            ("fraud_*", 1),
            ("fraud%", 0),
        ] {
            let q = SearchQuery {
                name_pattern: Some(pattern.into()),
                limit: 10,
                ..Default::default()
            };
            let (_, total) = reg.search(&q).await.unwrap();
            assert_eq!(total, expected, "{backend}: pattern {pattern}");
        }
    }
}

/// A delete that succeeds: not in the contract because moto has no DeleteModelPackage.
#[tokio::test]
async fn a_deleted_version_is_gone_and_its_number_never_reused() {
    for (backend, reg, _guard) in both().await {
        for _ in 0..2 {
            reg.register(contract::version("m", 0.9, &[]))
                .await
                .unwrap();
        }
        reg.delete_version("m", 1, &contract::ops()).await.unwrap();
        let e = reg.get("m", 1).await.unwrap_err().to_string();
        assert_eq!(e, "model `m` has no version 1", "{backend}");
        let v = reg
            .register(contract::version("m", 0.9, &[]))
            .await
            .unwrap();
        assert_eq!(v.version, 3, "{backend}: numbers are never reused");
    }
}
