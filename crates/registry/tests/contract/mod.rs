//! The registry's contract: scenarios every store must pass, the same error messages included,
//! so that `MLOPS_REGISTRY` changes where versions are kept and nothing else. Each scenario takes
//! a fresh, empty registry; [`contract_tests!`] makes each one a test against one store (SQLite
//! and PostgreSQL in `tests/sql.rs`, SageMaker on moto in `tests/sagemaker.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use mlops_registry::{
    Actor, ApprovalStatus, Lineage, MetricRange, ModelVersion, NewVersion, Registry, SearchOrder,
    SearchQuery, Stage,
};
use serde_json::json;

/// One test per scenario, in the calling module, against the registry `$open` opens: an async fn
/// returning `Option<(Arc<dyn Registry>, guard)>`, where None skips (PostgreSQL absent outside CI)
/// and the guard keeps the store alive. `$racers` registrations race in the concurrency scenario.
macro_rules! contract_tests {
    ($open:path, racers = $racers:expr) => {
        $crate::contract::contract_tests!(@each $open;
            versions_count_up_and_metadata_round_trips,
            production_needs_approval_and_archives_the_previous_one,
            rollback_restores_the_previous_approved_version,
            aliases_point_at_one_version_and_move_only_when_asked,
            delete_refuses_a_production_version,
            search_filters_combine_order_and_paginate,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_registrations_get_versions_one_to_n() {
            if let Some((registry, _guard)) = $open().await {
                $crate::contract::concurrent_registrations_get_versions_one_to_n(registry, $racers)
                    .await;
            }
        }
    };
    (@each $open:path; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                if let Some((registry, _guard)) = $open().await {
                    $crate::contract::$scenario(registry.as_ref()).await;
                }
            }
        )*
    };
}
pub(crate) use contract_tests;

/// A version of `name` with one metric and some tags; the rest as training would fill it in.
pub fn version(name: &str, accuracy: f64, tags: &[(&str, &str)]) -> NewVersion {
    NewVersion {
        name: name.into(),
        artifact_uri: format!("s3://models/{name}/model.tar.gz"),
        algorithm: Some("random_forest".into()),
        task: Some("classification".into()),
        metrics: BTreeMap::from([("accuracy".into(), accuracy)]),
        parameters: json!({"n_estimators": 10}),
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

/// Who makes the changes in these tests.
pub fn ops() -> Actor {
    Actor {
        who: "ops@example.com".into(),
        why: Some("test".into()),
    }
}

/// Approves a version and moves it to Production, archiving the one there.
async fn promote(reg: &dyn Registry, name: &str, version: i64) -> ModelVersion {
    reg.set_approval(name, version, ApprovalStatus::Approved, &ops())
        .await
        .unwrap();
    reg.set_stage(name, version, Stage::Production, true, &ops())
        .await
        .unwrap()
}

/// The text of an error the caller expects.
fn err<T: std::fmt::Debug>(result: Result<T, mlops_registry::RegistryError>) -> String {
    result.unwrap_err().to_string()
}

pub async fn versions_count_up_and_metadata_round_trips(reg: &dyn Registry) {
    let full = NewVersion {
        description: Some("first try: \"quoted\", {braces} and ünïcode\nnew line".into()),
        parameters: json!({"max_depth": 4, "criterion": "gini", "nested": {"a": [1, 2.5, null]}}),
        metrics: BTreeMap::from([("accuracy".into(), 0.91), ("f1".into(), 0.875)]),
        lineage: Lineage {
            dataset_uri: Some("s3://data/churn.csv".into()),
            dataset_sha256: Some("ab".repeat(32)),
            training_job_name: Some("train-42".into()),
            execution_id: Some("exec-1".into()),
            issue_number: Some(6),
            git_commit: Some("0123abcd".into()),
        },
        ..version("churn", 0.91, &[("team", "ml"), ("owner", "a b=c")])
    };
    let v1 = reg.register(full.clone()).await.unwrap();
    assert_eq!(v1.version, 1);
    for expected in 2..=3 {
        let v = reg
            .register(version("churn", 0.9, &[("team", "ml")]))
            .await
            .unwrap();
        assert_eq!(v.version, expected);
    }
    // Numbering is per model.
    let fraud = reg
        .register(version("fraud", 0.8, &[("team", "risk")]))
        .await
        .unwrap();
    assert_eq!(fraud.version, 1);

    // What register returns is exactly what the store holds.
    assert_eq!(fraud, reg.get("fraud", 1).await.unwrap());
    let got = reg.get("churn", 1).await.unwrap();
    assert_eq!(v1, got);
    assert_eq!(got.artifact_uri, full.artifact_uri);
    assert_eq!(got.metrics, full.metrics);
    assert_eq!(got.parameters, full.parameters);
    assert_eq!(got.tags, full.tags);
    assert_eq!(got.description, full.description);
    assert_eq!(got.lineage, full.lineage);
    assert_eq!(
        (got.stage, got.approval_status),
        (Stage::None, ApprovalStatus::PendingManualApproval)
    );
    assert!(
        got.created_at.ends_with('Z') && got.created_at.len() == 27,
        "{}",
        got.created_at
    );
    let v2 = reg.get("churn", 2).await.unwrap();
    assert_eq!(v2.metrics["accuracy"], 0.9);
    assert_eq!(v2.tags["team"], "ml");
    assert_eq!(v2.lineage.issue_number, Some(7));
    assert_eq!(
        (v2.stage, v2.approval_status),
        (Stage::None, ApprovalStatus::PendingManualApproval)
    );

    let (list, total) = reg.list_versions("churn", 2, 0).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        list.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let (list, _) = reg.list_versions("churn", 2, 2).await.unwrap();
    assert_eq!(list.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1]);
    assert_eq!(reg.latest("churn", None).await.unwrap().version, 3);

    // Unknown models and versions.
    assert_eq!(
        err(reg.get("churn", 9).await),
        "model `churn` has no version 9"
    );
    assert_eq!(
        err(reg.get("churn", 0).await),
        "model `churn` has no version 0"
    );
    assert_eq!(
        err(reg.get("nope", 1).await),
        "no model named `nope` is registered"
    );
    assert!(err(reg.latest("nope", None).await).contains("no model named `nope`"));
    assert!(err(reg.list_versions("nope", 5, 0).await).contains("no model named"));
    assert_eq!(
        err(reg.latest("churn", Some(Stage::Production)).await),
        "model `churn` has no version in stage Production"
    );
}

pub async fn production_needs_approval_and_archives_the_previous_one(reg: &dyn Registry) {
    for _ in 0..3 {
        reg.register(version("m", 0.9, &[])).await.unwrap();
    }
    let e = err(reg.set_stage("m", 1, Stage::Production, true, &ops()).await);
    assert!(e.contains("approve it"), "{e}");
    let v1 = reg
        .set_approval("m", 1, ApprovalStatus::Approved, &ops())
        .await
        .unwrap();
    assert_eq!(v1.approval_status, ApprovalStatus::Approved);
    // Changing the approval kept the rest of the metadata.
    assert_eq!(v1.metrics["accuracy"], 0.9);
    let v1 = reg
        .set_stage("m", 1, Stage::Production, true, &ops())
        .await
        .unwrap();
    assert_eq!(
        (v1.stage, v1.approval_status),
        (Stage::Production, ApprovalStatus::Approved)
    );
    let v2 = promote(reg, "m", 2).await;
    assert_eq!(v2.stage, Stage::Production);
    assert_eq!(reg.get("m", 1).await.unwrap().stage, Stage::Archived);
    let newest_in = |stage| async move { reg.latest("m", stage).await.unwrap().version };
    assert_eq!(newest_in(Some(Stage::Production)).await, 2);
    assert_eq!(newest_in(Some(Stage::Archived)).await, 1);
    reg.set_stage("m", 3, Stage::Staging, false, &ops())
        .await
        .unwrap();
    assert_eq!(newest_in(Some(Stage::Staging)).await, 3);
    assert_eq!(newest_in(None).await, 3);

    let e = err(reg.set_stage("m", 2, Stage::Production, true, &ops()).await);
    assert!(e.contains("already in stage Production"), "{e}");
    let e = err(reg
        .set_approval("m", 2, ApprovalStatus::Approved, &ops())
        .await);
    assert!(e.contains("already Approved"), "{e}");
    reg.set_approval("m", 3, ApprovalStatus::Rejected, &ops())
        .await
        .unwrap();
    let e = err(reg.set_stage("m", 3, Stage::Production, true, &ops()).await);
    assert!(e.contains("rejected"), "{e}");
    let e = err(reg
        .set_approval("m", 2, ApprovalStatus::Rejected, &ops())
        .await);
    assert!(e.contains("in Production"), "{e}");
    assert_eq!(
        err(reg.set_stage("m", 7, Stage::Staging, true, &ops()).await),
        "model `m` has no version 7"
    );
    assert_eq!(
        err(reg
            .set_approval("nope", 1, ApprovalStatus::Approved, &ops())
            .await),
        "no model named `nope` is registered"
    );

    // A rejected version cannot reach Staging either.
    let v4 = reg.register(version("m", 0.9, &[])).await.unwrap().version;
    reg.set_approval("m", v4, ApprovalStatus::Rejected, &ops())
        .await
        .unwrap();
    let e = err(reg.set_stage("m", v4, Stage::Staging, true, &ops()).await);
    assert!(e.contains("rejected"), "{e}");
}

pub async fn rollback_restores_the_previous_approved_version(reg: &dyn Registry) {
    for _ in 0..3 {
        reg.register(version("m", 0.9, &[])).await.unwrap();
    }
    assert_eq!(
        err(reg.rollback("m", &ops()).await),
        "`m` has no version in Production to roll back from"
    );

    // Only v3 approved and in Production: nothing older to go back to, and nothing changes.
    promote(reg, "m", 3).await;
    let before: Vec<_> = reg.list_versions("m", 10, 0).await.unwrap().0;
    let e = err(reg.rollback("m", &ops()).await);
    assert!(
        e.contains("no approved version older than Production version 3; nothing was changed"),
        "{e}"
    );
    assert_eq!(reg.list_versions("m", 10, 0).await.unwrap().0, before);
    assert_eq!(reg.get("m", 3).await.unwrap().stage, Stage::Production);

    reg.set_approval("m", 2, ApprovalStatus::Approved, &ops())
        .await
        .unwrap();
    let r = reg.rollback("m", &ops()).await.unwrap();
    assert_eq!((r.from.version, r.from.stage), (3, Stage::Archived));
    assert_eq!((r.to.version, r.to.stage), (2, Stage::Production));
    // Exactly one version is left in Production.
    let (all, _) = reg.list_versions("m", 10, 0).await.unwrap();
    let stages: Vec<_> = all.iter().map(|v| (v.version, v.stage)).collect();
    assert_eq!(
        stages,
        vec![
            (3, Stage::Archived),
            (2, Stage::Production),
            (1, Stage::None)
        ]
    );
    assert_eq!(
        reg.latest("m", Some(Stage::Production))
            .await
            .unwrap()
            .version,
        2
    );

    let e = err(reg.rollback("nope", &ops()).await);
    assert!(e.contains("no model named `nope`"), "{e}");
}

pub async fn aliases_point_at_one_version_and_move_only_when_asked(reg: &dyn Registry) {
    reg.register(version("m", 0.9, &[])).await.unwrap();
    reg.register(version("m", 0.95, &[])).await.unwrap();
    let v1 = reg.set_alias("m", "champion", 1, false).await.unwrap();
    assert_eq!(v1.aliases, vec!["champion"]);
    // Setting it again on the same version is fine.
    reg.set_alias("m", "champion", 1, false).await.unwrap();
    assert_eq!(
        err(reg.set_alias("m", "champion", 2, false).await),
        "alias `champion` of `m` already points at version 1; pass reassign: true to move it to version 2"
    );
    reg.set_alias("m", "challenger", 1, false).await.unwrap();
    let v2 = reg.set_alias("m", "champion", 2, true).await.unwrap();
    assert_eq!(v2.aliases, vec!["champion"]);
    assert_eq!(reg.by_alias("m", "champion").await.unwrap().version, 2);
    // The moved alias left version 1; the other one stayed.
    assert_eq!(reg.get("m", 1).await.unwrap().aliases, vec!["challenger"]);
    assert_eq!(
        err(reg.set_alias("m", "x", 9, false).await),
        "model `m` has no version 9"
    );

    let e = err(reg.delete_version("m", 2, &ops()).await);
    assert!(e.contains("is the target of alias champion"), "{e}");

    reg.delete_alias("m", "champion").await.unwrap();
    assert_eq!(
        err(reg.by_alias("m", "champion").await),
        "model `m` has no alias `champion`"
    );
    assert_eq!(
        err(reg.delete_alias("m", "champion").await),
        "model `m` has no alias `champion`"
    );
    assert!(err(reg.by_alias("nope", "champion").await).contains("no model named `nope`"));
}

/// Only refusals: moto has no DeleteModelPackage, so a delete that succeeds is tested on SQL alone
/// (`tests/sql.rs`).
pub async fn delete_refuses_a_production_version(reg: &dyn Registry) {
    reg.register(version("m", 0.9, &[])).await.unwrap();
    reg.register(version("m", 0.9, &[])).await.unwrap();
    promote(reg, "m", 2).await;
    let e = err(reg.delete_version("m", 2, &ops()).await);
    assert!(e.contains("is in Production"), "{e}");
    assert_eq!(reg.get("m", 2).await.unwrap().stage, Stage::Production);
    assert_eq!(
        err(reg.delete_version("m", 7, &ops()).await),
        "model `m` has no version 7"
    );
}

pub async fn search_filters_combine_order_and_paginate(reg: &dyn Registry) {
    for (i, acc) in [0.70, 0.80, 0.90, 0.95].iter().enumerate() {
        let team = if i % 2 == 0 { "a" } else { "b" };
        reg.register(version("churn-eu", *acc, &[("team", team)]))
            .await
            .unwrap();
        reg.register(version("churn-us", *acc - 0.05, &[("team", team)]))
            .await
            .unwrap();
    }
    reg.register(version("fraud-x", 0.99, &[("team", "a")]))
        .await
        .unwrap();
    // "xchurn-eu" contains "churn-" but does not match `churn-*`.
    reg.register(version("xchurn-eu", 0.5, &[])).await.unwrap();
    let base = SearchQuery {
        limit: 100,
        ..Default::default()
    };
    let total = |q: SearchQuery| async move { reg.search(&q).await.unwrap().1 };

    let (hits, n) = reg
        .search(&SearchQuery {
            name_pattern: Some("churn-*".into()),
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!((hits.len(), n), (8, 8));
    assert!(hits.iter().all(|v| v.name.starts_with("churn-")));
    // Newest first.
    assert_eq!((hits[0].name.as_str(), hits[0].version), ("churn-us", 4));
    // `*` and `?` are the only wildcards (`%` and `_` are literal), a name without them matches
    // exactly, and matching is case-sensitive on every store.
    for (pattern, expected) in [
        ("fraud?x", 1),
        ("fraud-x", 1),
        ("fraud", 0),
        ("fraud%", 0),
        ("fraud_x", 0),
        ("fraud_*", 0),
        ("CHURN-*", 0),
        ("*-eu", 5),
        ("*", 10),
    ] {
        let n = total(SearchQuery {
            name_pattern: Some(pattern.into()),
            ..base.clone()
        })
        .await;
        assert_eq!(n, expected, "pattern {pattern}");
    }

    // Tag, metric range and metric order combined.
    let (hits, n) = reg
        .search(&SearchQuery {
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
        })
        .await
        .unwrap();
    let got: Vec<(String, f64)> = hits
        .iter()
        .map(|v| (v.name.clone(), v.metrics["accuracy"]))
        .collect();
    // Team b holds eu 0.80/0.95 and us 0.75/0.90; three reach 0.8, best first.
    assert_eq!(n, 3, "{got:?}");
    assert_eq!(got[0], ("churn-eu".into(), 0.95));
    assert_eq!(got[1].0, "churn-us");
    assert!((got[1].1 - 0.9).abs() < 1e-9, "{got:?}");
    assert_eq!(got[2], ("churn-eu".into(), 0.8));
    let n = total(SearchQuery {
        metric: Some(MetricRange {
            name: "accuracy".into(),
            min: Some(0.85),
            max: Some(0.92),
        }),
        ..base.clone()
    })
    .await;
    // eu 0.90, us 0.95 - 0.05 and us 0.90 - 0.05 (exactly 0.85: the bounds are inclusive).
    assert_eq!(n, 3);

    promote(reg, "churn-eu", 4).await;
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
    let n = total(SearchQuery {
        approval_status: Some(ApprovalStatus::Approved),
        ..base.clone()
    })
    .await;
    assert_eq!(n, 1);

    // Pagination: the total counts every match, the page only its slice, in a stable order.
    let (all, n) = reg.search(&base).await.unwrap();
    assert_eq!((all.len(), n), (10, 10));
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    for offset in (0..12).step_by(4) {
        let (page, n) = reg
            .search(&SearchQuery {
                limit: 4,
                offset,
                ..base.clone()
            })
            .await
            .unwrap();
        assert_eq!(n, 10);
        sizes.push(page.len());
        paged.extend(page.into_iter().map(|v| (v.name, v.version)));
    }
    assert_eq!(sizes, vec![4, 4, 2], "the last page holds the rest");
    assert_eq!(
        paged,
        all.iter()
            .map(|v| (v.name.clone(), v.version))
            .collect::<Vec<_>>()
    );

    // Dates: a day or RFC 3339; `created_after` includes the instant itself.
    let dated = |after: Option<&str>, before: Option<&str>| SearchQuery {
        created_after: after.map(str::to_string),
        created_before: before.map(str::to_string),
        ..base.clone()
    };
    assert_eq!(total(dated(Some("2999-01-01"), None)).await, 0);
    assert_eq!(total(dated(None, Some("2999-01-01"))).await, 10);
    assert_eq!(total(dated(None, Some("2999-01-01T00:00:00Z"))).await, 10);
    let n = total(SearchQuery {
        name_pattern: Some("churn-eu".into()),
        ..dated(Some(&all[all.len() - 1].created_at), None)
    })
    .await;
    assert_eq!(n, 4, "created_after includes the instant itself");
    let e = err(reg.search(&dated(Some("yesterday"), None)).await);
    assert!(e.contains("`yesterday` is not a date"), "{e}");
}

pub async fn concurrent_registrations_get_versions_one_to_n(reg: Arc<dyn Registry>, n: i64) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let r = reg.clone();
            tokio::spawn(async move { r.register(version("hot", i as f64, &[])).await })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().unwrap().version);
    }
    versions.sort();
    assert_eq!(versions, (1..=n).collect::<Vec<i64>>());
    let (_, total) = reg.list_versions("hot", 1, 0).await.unwrap();
    assert_eq!(total, n);
}
