//! The registry tools over MCP: the version lifecycle (approve, promote, alias, roll back, search)
//! and the bad input each tool must refuse with a clear message.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test]
async fn lifecycle_and_bad_input() {
    let s = Server::start().await;
    s.generate("classification", 400, "datasets/d.csv");
    s.ok("train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": "datasets/d.csv", "target_column": "label",
        "training_job_name": "m1", "hyperparameters": {"n_estimators": 5}
    }))
    .await;
    for (i, acc) in [0.80, 0.85, 0.90].iter().enumerate() {
        let v = s.ok("register_model", json!({"model_name": "churn", "model_uri": "models/m1", "metrics": {"accuracy": acc}, "tags": {"team": "growth"}})).await;
        assert_eq!(v["version"], i as i64 + 1);
    }
    s.err(
        "transition_model_stage",
        json!({"model_name": "churn", "version": 3, "stage": "Production"}),
        "approve it",
    )
    .await;
    for v in [2, 3] {
        s.ok("set_model_approval", json!({"model_name": "churn", "version": v, "approval_status": "Approved", "actor": "alice", "reason": "passed review"})).await;
    }
    s.ok(
        "transition_model_stage",
        json!({"model_name": "churn", "version": 2, "stage": "Production"}),
    )
    .await;
    let v3 = s
        .ok(
            "transition_model_stage",
            json!({"model_name": "churn", "version": 3, "stage": "Production"}),
        )
        .await;
    assert_eq!(v3["stage"], "Production");
    assert_eq!(
        s.ok(
            "get_model_version",
            json!({"model_name": "churn", "version": 2})
        )
        .await["stage"],
        "Archived"
    );

    s.ok(
        "set_model_alias",
        json!({"model_name": "churn", "alias": "champion", "version": 3}),
    )
    .await;
    s.err(
        "set_model_alias",
        json!({"model_name": "churn", "alias": "champion", "version": 1}),
        "reassign: true",
    )
    .await;
    assert_eq!(
        s.ok(
            "get_model_version",
            json!({"model_name": "churn", "alias": "champion"})
        )
        .await["version"],
        3
    );

    let rb = s.ok("rollback_model",
        json!({"model_name": "churn", "actor": "bob", "reason": "accuracy dropped in production"}),
    )
    .await;
    assert_eq!(rb["to"]["version"], 2);
    assert_eq!(rb["from"]["stage"], "Archived");
    assert_eq!(
        s.ok(
            "get_model_version",
            json!({"model_name": "churn", "stage": "Production"})
        )
        .await["version"],
        2
    );
    // v1 was never approved: a second rollback has nowhere to go and changes nothing.
    s.err(
        "rollback_model",
        json!({"model_name": "churn"}),
        "no approved version older than Production version 2",
    )
    .await;
    assert_eq!(
        s.ok(
            "get_model_version",
            json!({"model_name": "churn", "stage": "Production"})
        )
        .await["version"],
        2
    );

    let found = s.ok("search_models", json!({
        "name_pattern": "ch*", "tags": {"team": "growth"}, "metric": {"name": "accuracy", "min": 0.84},
        "order": {"metric": {"name": "accuracy"}}, "limit": 1
    }))
    .await;
    assert_eq!(found["total"], 2);
    assert_eq!(found["versions"][0]["version"], 3);
    assert_eq!(found["next_offset"], 1);

    s.err(
        "get_model_version",
        json!({"model_name": "nope"}),
        "no model named `nope` is registered",
    )
    .await;
    s.err(
        "get_model_version",
        json!({"model_name": "churn", "version": 42}),
        "model `churn` has no version 42",
    )
    .await;
    s.err(
        "register_model",
        json!({"model_name": "churn", "model_uri": "models/m1", "metrics": {"accuracy": "high"}}),
        "invalid type: string \"high\", expected f64",
    )
    .await;
    s.err(
        "register_model",
        json!({"model_name": "churn", "model_uri": "models/ghost"}),
        "no model at `models/ghost`",
    )
    .await;
    s.err(
        "register_model",
        json!({"model_name": "bad name!", "model_uri": "models/m1"}),
        "model_name `bad name!`",
    )
    .await;
    s.err(
        "transition_model_stage",
        json!({"model_name": "churn", "version": 1, "stage": "Live"}),
        "unknown variant `Live`",
    )
    .await;
    s.err(
        "delete_model_version",
        json!({"model_name": "churn", "version": 2, "confirm": true}),
        "is in Production",
    )
    .await;
    s.err(
        "delete_model_version",
        json!({"model_name": "churn", "version": 1}),
        "confirm: true",
    )
    .await;
    s.err(
        "search_models",
        json!({"limit": 0}),
        "limit must be between 1 and 100",
    )
    .await;
    s.err(
        "search_models",
        json!({"metric": {"name": "accuracy", "min": 0.9, "max": 0.1}}),
        "is empty",
    )
    .await;
    s.err(
        "search_models",
        json!({"created_after": "last week"}),
        "not a date",
    )
    .await;

    // A tampered artifact is refused at registration.
    let blob = s.path("models/m1/forest.json");
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    s.err(
        "register_model",
        json!({"model_name": "churn", "model_uri": "models/m1"}),
        "failed its checksum",
    )
    .await;
}
