//! The registry's behaviour, run against SQLite and against the PostgreSQL on this machine (each
//! test in a fresh schema). Without PostgreSQL the PostgreSQL half is skipped with a loud message,
//! except in CI (`CI=true`), where its absence fails the test.

use std::collections::BTreeMap;

use mlops_registry::{
    Actor, ApprovalStatus, Lineage, MetricRange, NewVersion, Registry, SearchOrder, SearchQuery,
    SqlRegistry, Stage,
};
use sqlx::Connection;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A registry on each backend; the tempdir and schema live as long as the returned guard.
async fn backends() -> Vec<(&'static str, SqlRegistry, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqlRegistry::connect(&format!("sqlite://{}/registry.db", dir.path().display()))
        .await
        .unwrap();
    let mut out: Vec<(&'static str, SqlRegistry, Box<dyn std::any::Any>)> =
        vec![("sqlite", sqlite, Box::new(dir))];
    if let Some((url, schema)) = fresh_pg_schema().await {
        out.push((
            "postgres",
            SqlRegistry::connect(&url).await.unwrap(),
            Box::new(schema),
        ));
    }
    out
}

/// A PostgreSQL schema that is dropped when the test ends.
pub struct Schema {
    base: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs outside async code: a short-lived runtime on its own thread does the cleanup.
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

/// A URL whose connections use a new, empty schema; None when PostgreSQL is absent outside CI.
pub async fn fresh_pg_schema() -> Option<(String, Schema)> {
    let base = std::env::var("MLOPS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.into());
    match sqlx::PgConnection::connect(&base).await {
        Ok(mut conn) => {
            let schema = format!("reg_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            Some((url, Schema { base, name: schema }))
        }
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL is required in CI ({base}): {e}")
        }
        Err(e) => {
            eprintln!(
                "\n!!! SKIPPING the PostgreSQL half of this test: cannot reach {base}: {e}\n"
            );
            None
        }
    }
}

fn version(name: &str, accuracy: f64, tags: &[(&str, &str)]) -> NewVersion {
    NewVersion {
        name: name.into(),
        artifact_uri: format!("models/{name}"),
        algorithm: Some("random_forest".into()),
        task: Some("classification".into()),
        metrics: BTreeMap::from([("accuracy".into(), accuracy)]),
        parameters: serde_json::json!({"n_estimators": 10}),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        description: None,
        lineage: Lineage {
            issue_number: Some(7),
            dataset_uri: Some("datasets/x.csv".into()),
            ..Default::default()
        },
    }
}

fn ops() -> Actor {
    Actor {
        who: "ops@example.com".into(),
        why: Some("test".into()),
    }
}

#[tokio::test]
async fn versions_count_up_per_model_and_round_trip() {
    for (backend, reg, _guard) in backends().await {
        for expected in 1..=3 {
            assert_eq!(
                reg.register(version("churn", 0.9, &[("team", "ml")]))
                    .await
                    .unwrap()
                    .version,
                expected,
                "{backend}"
            );
        }
        let fraud = reg
            .register(version("fraud", 0.8, &[("team", "risk")]))
            .await
            .unwrap();
        assert_eq!(fraud.version, 1, "{backend}");
        // What register returns is exactly what the database holds.
        assert_eq!(fraud, reg.get("fraud", 1).await.unwrap(), "{backend}");
        let v2 = reg.get("churn", 2).await.unwrap();
        assert_eq!(v2.metrics["accuracy"], 0.9);
        assert_eq!(v2.tags["team"], "ml");
        assert_eq!(v2.lineage.issue_number, Some(7));
        assert_eq!(
            (v2.stage, v2.approval_status),
            (Stage::None, ApprovalStatus::PendingManualApproval)
        );
        let (list, total) = reg.list_versions("churn", 2, 0).await.unwrap();
        assert_eq!(total, 3, "{backend}");
        assert_eq!(
            list.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![3, 2]
        );
        assert_eq!(reg.latest("churn", None).await.unwrap().version, 3);
        assert_eq!(
            reg.get("churn", 9).await.unwrap_err().to_string(),
            "model `churn` has no version 9"
        );
        assert_eq!(
            reg.get("nope", 1).await.unwrap_err().to_string(),
            "no model named `nope` is registered"
        );
    }
}

#[tokio::test]
async fn production_needs_approval_and_archives_the_previous_one() {
    for (backend, reg, _guard) in backends().await {
        for _ in 0..3 {
            reg.register(version("m", 0.9, &[])).await.unwrap();
        }
        let err = reg
            .set_stage("m", 1, Stage::Production, true, &ops())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("approve it"), "{backend}: {err}");
        reg.set_approval("m", 1, ApprovalStatus::Approved, &ops())
            .await
            .unwrap();
        reg.set_stage("m", 1, Stage::Production, true, &ops())
            .await
            .unwrap();
        reg.set_approval("m", 2, ApprovalStatus::Approved, &ops())
            .await
            .unwrap();
        let v2 = reg
            .set_stage("m", 2, Stage::Production, true, &ops())
            .await
            .unwrap();
        assert_eq!(v2.stage, Stage::Production);
        assert_eq!(
            reg.get("m", 1).await.unwrap().stage,
            Stage::Archived,
            "{backend}"
        );
        assert_eq!(
            reg.latest("m", Some(Stage::Production))
                .await
                .unwrap()
                .version,
            2
        );

        let err = reg
            .set_stage("m", 2, Stage::Production, true, &ops())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("already in stage Production"), "{err}");
        reg.set_approval("m", 3, ApprovalStatus::Rejected, &ops())
            .await
            .unwrap();
        let err = reg
            .set_stage("m", 3, Stage::Staging, true, &ops())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("rejected"), "{err}");
        let err = reg
            .set_approval("m", 2, ApprovalStatus::Rejected, &ops())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("in Production"), "{err}");
        assert!(
            reg.set_stage("m", 7, Stage::Staging, true, &ops())
                .await
                .unwrap_err()
                .to_string()
                .contains("no version 7")
        );
    }
}

#[tokio::test]
async fn rollback_restores_the_previous_approved_version_atomically() {
    for (backend, reg, _guard) in backends().await {
        for _ in 0..3 {
            reg.register(version("m", 0.9, &[])).await.unwrap();
        }
        // Only v3 approved and in Production: nothing older to go back to.
        reg.set_approval("m", 3, ApprovalStatus::Approved, &ops())
            .await
            .unwrap();
        reg.set_stage("m", 3, Stage::Production, true, &ops())
            .await
            .unwrap();
        let err = reg.rollback("m", &ops()).await.unwrap_err().to_string();
        assert!(
            err.contains("no approved version older than Production version 3"),
            "{backend}: {err}"
        );
        assert_eq!(
            reg.get("m", 3).await.unwrap().stage,
            Stage::Production,
            "nothing changed"
        );

        reg.set_approval("m", 2, ApprovalStatus::Approved, &ops())
            .await
            .unwrap();
        let r = reg.rollback("m", &ops()).await.unwrap();
        assert_eq!(
            (r.from.version, r.from.stage),
            (3, Stage::Archived),
            "{backend}"
        );
        assert_eq!(
            (r.to.version, r.to.stage),
            (2, Stage::Production),
            "{backend}"
        );
        let (all, _) = reg.list_versions("m", 10, 0).await.unwrap();
        assert_eq!(
            all.iter().filter(|v| v.stage == Stage::Production).count(),
            1
        );

        let err = reg.rollback("nope", &ops()).await.unwrap_err().to_string();
        assert!(err.contains("no model named `nope`"), "{err}");
    }
}

#[tokio::test]
async fn aliases_point_at_one_version_and_move_only_when_asked() {
    for (backend, reg, _guard) in backends().await {
        reg.register(version("m", 0.9, &[])).await.unwrap();
        reg.register(version("m", 0.95, &[])).await.unwrap();
        let v1 = reg.set_alias("m", "champion", 1, false).await.unwrap();
        assert_eq!(v1.aliases, vec!["champion"], "{backend}");
        let err = reg
            .set_alias("m", "champion", 2, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("already points at version 1"), "{err}");
        reg.set_alias("m", "champion", 2, true).await.unwrap();
        assert_eq!(reg.by_alias("m", "champion").await.unwrap().version, 2);
        assert!(reg.get("m", 1).await.unwrap().aliases.is_empty());
        let err = reg
            .delete_version("m", 2, &ops())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("alias champion"), "{err}");
        reg.delete_alias("m", "champion").await.unwrap();
        assert!(
            reg.by_alias("m", "champion")
                .await
                .unwrap_err()
                .to_string()
                .contains("no alias `champion`")
        );
        assert!(reg.delete_alias("m", "champion").await.is_err());
    }
}

#[tokio::test]
async fn delete_is_guarded() {
    for (backend, reg, _guard) in backends().await {
        reg.register(version("m", 0.9, &[])).await.unwrap();
        reg.register(version("m", 0.9, &[])).await.unwrap();
        reg.set_approval("m", 2, ApprovalStatus::Approved, &ops())
            .await
            .unwrap();
        reg.set_stage("m", 2, Stage::Production, true, &ops())
            .await
            .unwrap();
        let err = reg
            .delete_version("m", 2, &ops())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is in Production"), "{backend}: {err}");
        reg.delete_version("m", 1, &ops()).await.unwrap();
        assert!(reg.get("m", 1).await.is_err());
        // Numbers are never reused: the next version is 3.
        assert_eq!(
            reg.register(version("m", 0.9, &[])).await.unwrap().version,
            3
        );
    }
}

#[tokio::test]
async fn search_filters_combine_and_paginate() {
    for (backend, reg, _guard) in backends().await {
        for (i, acc) in [0.70, 0.80, 0.90, 0.95].iter().enumerate() {
            let team = if i % 2 == 0 { "a" } else { "b" };
            reg.register(version("churn-eu", *acc, &[("team", team)]))
                .await
                .unwrap();
            reg.register(version("churn-us", *acc - 0.05, &[("team", team)]))
                .await
                .unwrap();
        }
        reg.register(version("fraud_x", 0.99, &[("team", "a")]))
            .await
            .unwrap();
        let base = SearchQuery {
            limit: 100,
            ..Default::default()
        };

        let (hits, total) = reg
            .search(&SearchQuery {
                name_pattern: Some("churn-*".into()),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!((hits.len(), total), (8, 8), "{backend}");
        // `_` is literal in patterns, not LIKE's any-character.
        let (_, total) = reg
            .search(&SearchQuery {
                name_pattern: Some("fraud?x".into()),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(total, 1);
        let (_, total) = reg
            .search(&SearchQuery {
                name_pattern: Some("fraud%".into()),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(total, 0, "{backend}: % is literal");
        let (_, total) = reg
            .search(&SearchQuery {
                name_pattern: Some("CHURN-*".into()),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            total, 0,
            "{backend}: patterns are case-sensitive on every backend"
        );
        let (_, total) = reg
            .search(&SearchQuery {
                name_pattern: Some("fraud_x".into()),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            total, 1,
            "{backend}: a name without wildcards matches exactly"
        );

        let q = SearchQuery {
            tags: BTreeMap::from([("team".into(), "b".into())]),
            metric: Some(MetricRange {
                name: "accuracy".into(),
                min: Some(0.8),
                max: None,
            }),
            order: Some(SearchOrder::Metric {
                name: "accuracy".into(),
            }),
            ..base.clone()
        };
        let (hits, total) = reg.search(&q).await.unwrap();
        let got: Vec<(String, f64)> = hits
            .iter()
            .map(|v| (v.name.clone(), v.metrics["accuracy"]))
            .collect();
        // Team b holds eu 0.80/0.95 and us 0.75/0.90; three reach 0.8, best first.
        assert_eq!(total, 3, "{backend}: {got:?}");
        assert_eq!(got[0], ("churn-eu".into(), 0.95));
        assert_eq!(got[1].0, "churn-us");
        assert!((got[1].1 - 0.9).abs() < 1e-9, "{got:?}");
        assert_eq!(got[2], ("churn-eu".into(), 0.8));

        reg.set_approval("churn-eu", 4, ApprovalStatus::Approved, &ops())
            .await
            .unwrap();
        reg.set_stage("churn-eu", 4, Stage::Production, true, &ops())
            .await
            .unwrap();
        let (hits, _) = reg
            .search(&SearchQuery {
                stage: Some(Stage::Production),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            hits.iter()
                .map(|v| (v.name.as_str(), v.version))
                .collect::<Vec<_>>(),
            vec![("churn-eu", 4)]
        );

        let (page, total) = reg
            .search(&SearchQuery {
                limit: 4,
                offset: 8,
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!((page.len(), total), (1, 9), "{backend}");
        let (_, total) = reg
            .search(&SearchQuery {
                created_after: Some("2999-01-01".into()),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(total, 0);
        let (_, total) = reg
            .search(&SearchQuery {
                created_before: Some("2999-01-01".into()),
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(total, 9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_get_versions_one_to_n() {
    for (backend, reg, _guard) in backends().await {
        let n = if backend == "postgres" { 200 } else { 50 };
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let r = reg.clone();
                tokio::spawn(async move {
                    r.register(version("hot", i as f64, &[]))
                        .await
                        .unwrap()
                        .version
                })
            })
            .collect();
        let mut versions = Vec::new();
        for t in tasks {
            versions.push(t.await.unwrap());
        }
        versions.sort();
        assert_eq!(versions, (1..=n as i64).collect::<Vec<_>>(), "{backend}");
        let (_, total) = reg.list_versions("hot", 1, 0).await.unwrap();
        assert_eq!(total, n as i64);
    }
}
