//! The SageMaker registry against moto (`moto_server`, a local stand-in for AWS), each test on a
//! fresh server of its own. moto must be installed (`pip install 'moto[server]'`): without it these
//! tests fail, they are not skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mlops_aws::{AwsClient, AwsConfig, RetryPolicy, Service};
use mlops_registry::{
    Actor, ApprovalStatus, Lineage, MetricRange, NewVersion, Registry, SageMakerRegistry,
    SearchOrder, SearchQuery, Stage,
};
use mlops_testkit::Moto;
use serde_json::json;

/// A client configuration for `moto`, with fast retries.
fn config(moto: &Moto) -> AwsConfig {
    AwsConfig::with_static_credentials("us-east-1", "AKIDMOTOTEST", "moto-test-secret-key")
        .unwrap()
        .with_endpoint(&moto.endpoint())
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
}

/// A registry on a fresh moto; the server lives as long as the returned guard.
async fn registry() -> (SageMakerRegistry, Moto) {
    let moto = Moto::start();
    let reg = SageMakerRegistry::new(&config(&moto));
    reg.check()
        .await
        .expect("moto answers ListModelPackageGroups");
    (reg, moto)
}

fn version(name: &str, accuracy: f64, tags: &[(&str, &str)]) -> NewVersion {
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

fn ops() -> Actor {
    Actor {
        who: "ops@example.com".into(),
        why: Some("test".into()),
    }
}

#[tokio::test]
async fn versions_count_up_and_metadata_round_trips() {
    let (reg, _moto) = registry().await;
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
        let v = reg.register(version("churn", 0.9, &[])).await.unwrap();
        assert_eq!(v.version, expected);
    }
    assert_eq!(
        reg.register(version("fraud", 0.8, &[]))
            .await
            .unwrap()
            .version,
        1
    );

    // What register returns is exactly what SageMaker holds.
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

    let (list, total) = reg.list_versions("churn", 2, 0).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        list.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let (list, _) = reg.list_versions("churn", 2, 2).await.unwrap();
    assert_eq!(list.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1]);
    assert_eq!(reg.latest("churn", None).await.unwrap().version, 3);

    // Unknown models and versions: the same messages as the SQL registry.
    let err = |e: mlops_registry::RegistryError| e.to_string();
    assert_eq!(
        err(reg.get("churn", 9).await.unwrap_err()),
        "model `churn` has no version 9"
    );
    assert_eq!(
        err(reg.get("churn", 0).await.unwrap_err()),
        "model `churn` has no version 0"
    );
    assert_eq!(
        err(reg.get("nope", 1).await.unwrap_err()),
        "no model named `nope` is registered"
    );
    assert!(err(reg.latest("nope", None).await.unwrap_err()).contains("no model named `nope`"));
    assert!(err(reg.list_versions("nope", 5, 0).await.unwrap_err()).contains("no model named"));
    assert_eq!(
        err(reg
            .latest("churn", Some(Stage::Production))
            .await
            .unwrap_err()),
        "model `churn` has no version in stage Production"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_clear_errors() {
    let (reg, moto) = registry().await;
    // SageMaker group names: letters, digits and hyphens only.
    let e = reg
        .register(version("fraud_x", 0.9, &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model name `fraud_x` cannot be used with the SageMaker registry"),
        "{e}"
    );
    let e = reg.get("a.b", 1).await.unwrap_err().to_string();
    assert!(e.contains("letters, digits and hyphens"), "{e}");
    let mut nan = version("m", 0.9, &[]);
    nan.metrics.insert("loss".into(), f64::NAN);
    let e = reg.register(nan).await.unwrap_err().to_string();
    assert!(e.contains("metric `loss` is NaN"), "{e}");
    let mut huge = version("m", 0.9, &[]);
    huge.parameters = json!({"blob": "x".repeat(10_000)});
    let e = reg.register(huge).await.unwrap_err().to_string();
    assert!(
        e.contains("too large for SageMaker") && e.contains("at most 9408"),
        "{e}"
    );
    // Nothing was created by the refused calls.
    assert!(
        reg.get("m", 1)
            .await
            .unwrap_err()
            .to_string()
            .contains("no model named `m`")
    );

    // A large version is spread over several metadata values, each within SageMaker's limits
    // (moto does not enforce them, so check what was sent).
    let mut big = version("m", 0.9, &[]);
    big.parameters = json!({"blob": "y".repeat(5_000)});
    let v = reg.register(big.clone()).await.unwrap();
    assert_eq!(
        reg.get("m", v.version).await.unwrap().parameters,
        big.parameters
    );
    let client = AwsClient::json(&config(&moto), Service::SAGEMAKER, "SageMaker");
    let raw = client
        .call(
            "DescribeModelPackage",
            json!({"ModelPackageName": "arn:aws:sagemaker:us-east-1:123456789012:model-package/m/1"}),
        )
        .await
        .unwrap();
    let metadata = raw["CustomerMetadataProperties"].as_object().unwrap();
    assert!(
        metadata.len() > 2 && metadata.len() <= 50,
        "{}",
        metadata.len()
    );
    for (key, value) in metadata {
        let value = value.as_str().unwrap();
        assert!((1..=128).contains(&key.len()), "{key}");
        assert!((1..=256).contains(&value.len()), "{key}");
        let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
        assert!(
            key.chars().all(allowed) && value.chars().all(allowed),
            "{key}={value}"
        );
    }
    assert_eq!(metadata["mlops:stage"], "None");

    let e = reg
        .set_alias("m", "has space", 1, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("alias `has space` must be"), "{e}");
    let e = reg
        .search(&SearchQuery {
            created_after: Some("yesterday".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("`yesterday` is not a date"), "{e}");
}

#[tokio::test]
async fn approval_and_stage_rules_match_the_sql_registry() {
    let (reg, _moto) = registry().await;
    for _ in 0..3 {
        reg.register(version("m", 0.9, &[])).await.unwrap();
    }
    let err = reg
        .set_stage("m", 1, Stage::Production, true, &ops())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("approve it"), "{err}");
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
    reg.set_approval("m", 2, ApprovalStatus::Approved, &ops())
        .await
        .unwrap();
    let v2 = reg
        .set_stage("m", 2, Stage::Production, true, &ops())
        .await
        .unwrap();
    assert_eq!(v2.stage, Stage::Production);
    assert_eq!(reg.get("m", 1).await.unwrap().stage, Stage::Archived);
    assert_eq!(
        reg.latest("m", Some(Stage::Production))
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        reg.latest("m", Some(Stage::Archived))
            .await
            .unwrap()
            .version,
        1
    );
    reg.set_stage("m", 3, Stage::Staging, false, &ops())
        .await
        .unwrap();
    assert_eq!(
        reg.latest("m", Some(Stage::Staging)).await.unwrap().version,
        3
    );
    assert_eq!(reg.latest("m", None).await.unwrap().version, 3);

    let err = reg
        .set_stage("m", 2, Stage::Production, true, &ops())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already in stage Production"), "{err}");
    let err = reg
        .set_approval("m", 2, ApprovalStatus::Approved, &ops())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already Approved"), "{err}");
    reg.set_approval("m", 3, ApprovalStatus::Rejected, &ops())
        .await
        .unwrap();
    let err = reg
        .set_stage("m", 3, Stage::Production, true, &ops())
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
    let err = reg
        .set_stage("m", 7, Stage::Staging, true, &ops())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "model `m` has no version 7");
    let err = reg
        .set_approval("nope", 1, ApprovalStatus::Approved, &ops())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "no model named `nope` is registered");
}

#[tokio::test]
async fn rollback_promotes_the_previous_approved_version_then_archives() {
    let (reg, _moto) = registry().await;
    for _ in 0..3 {
        reg.register(version("m", 0.9, &[])).await.unwrap();
    }
    let err = reg.rollback("m", &ops()).await.unwrap_err().to_string();
    assert_eq!(err, "`m` has no version in Production to roll back from");

    // Only v3 approved and in Production: nothing older to go back to, and nothing changes.
    reg.set_approval("m", 3, ApprovalStatus::Approved, &ops())
        .await
        .unwrap();
    reg.set_stage("m", 3, Stage::Production, true, &ops())
        .await
        .unwrap();
    let before: Vec<_> = reg.list_versions("m", 10, 0).await.unwrap().0;
    let err = reg.rollback("m", &ops()).await.unwrap_err().to_string();
    assert!(
        err.contains("no approved version older than Production version 3; nothing was changed"),
        "{err}"
    );
    assert_eq!(reg.list_versions("m", 10, 0).await.unwrap().0, before);

    reg.set_approval("m", 2, ApprovalStatus::Approved, &ops())
        .await
        .unwrap();
    let r = reg.rollback("m", &ops()).await.unwrap();
    assert_eq!((r.from.version, r.from.stage), (3, Stage::Archived));
    assert_eq!((r.to.version, r.to.stage), (2, Stage::Production));
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

    let err = reg.rollback("nope", &ops()).await.unwrap_err().to_string();
    assert!(err.contains("no model named `nope`"), "{err}");
}

#[tokio::test]
async fn aliases_are_unique_and_move_only_when_asked() {
    let (reg, _moto) = registry().await;
    reg.register(version("m", 0.9, &[])).await.unwrap();
    reg.register(version("m", 0.95, &[])).await.unwrap();
    let v1 = reg.set_alias("m", "champion", 1, false).await.unwrap();
    assert_eq!(v1.aliases, vec!["champion"]);
    // Setting it again on the same version is fine.
    reg.set_alias("m", "champion", 1, false).await.unwrap();
    let err = reg
        .set_alias("m", "champion", 2, false)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "alias `champion` of `m` already points at version 1; pass reassign: true to move it to version 2"
    );
    reg.set_alias("m", "challenger", 1, false).await.unwrap();
    let v2 = reg.set_alias("m", "champion", 2, true).await.unwrap();
    assert_eq!(v2.aliases, vec!["champion"]);
    assert_eq!(reg.by_alias("m", "champion").await.unwrap().version, 2);
    assert_eq!(reg.get("m", 1).await.unwrap().aliases, vec!["challenger"]);
    let err = reg
        .set_alias("m", "x", 9, false)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "model `m` has no version 9");

    // Deleting is refused for an alias target and for Production, as in SQL.
    let err = reg
        .delete_version("m", 2, &ops())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is the target of alias champion"), "{err}");
    reg.set_approval("m", 1, ApprovalStatus::Approved, &ops())
        .await
        .unwrap();
    reg.set_stage("m", 1, Stage::Production, true, &ops())
        .await
        .unwrap();
    let err = reg
        .delete_version("m", 1, &ops())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is in Production"), "{err}");

    reg.delete_alias("m", "champion").await.unwrap();
    let err = reg.by_alias("m", "champion").await.unwrap_err().to_string();
    assert_eq!(err, "model `m` has no alias `champion`");
    let err = reg
        .delete_alias("m", "champion")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "model `m` has no alias `champion`");
    assert!(
        reg.by_alias("nope", "champion")
            .await
            .unwrap_err()
            .to_string()
            .contains("no model named `nope`")
    );
}

#[tokio::test]
async fn search_filters_and_paginates_client_side() {
    let (reg, _moto) = registry().await;
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
    let total = |q: SearchQuery| {
        let reg = &reg;
        async move { reg.search(&q).await.unwrap().1 }
    };

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
    for (pattern, expected) in [
        ("fraud?x", 1),
        ("fraud-x", 1),
        ("fraud", 0),
        ("fraud%", 0),
        ("fraud_x", 0),
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
        paged.extend(page.into_iter().map(|v| (v.name, v.version)));
    }
    assert_eq!(
        paged,
        all.iter()
            .map(|v| (v.name.clone(), v.version))
            .collect::<Vec<_>>()
    );

    let n = total(SearchQuery {
        created_after: Some("2999-01-01".into()),
        ..base.clone()
    })
    .await;
    assert_eq!(n, 0);
    let n = total(SearchQuery {
        created_before: Some("2999-01-01T00:00:00Z".into()),
        ..base.clone()
    })
    .await;
    assert_eq!(n, 10);
    let n = total(SearchQuery {
        name_pattern: Some("churn-eu".into()),
        created_after: Some(all[all.len() - 1].created_at.clone()),
        ..base.clone()
    })
    .await;
    assert_eq!(n, 4, "created_after includes the instant itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_get_versions_one_to_twenty() {
    let (reg, _moto) = registry().await;
    let reg = Arc::new(reg);
    let n = 20;
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
