//! Drift monitoring over MCP with the real binary: models carry a reference profile of their raw
//! training rows; `detect_drift` finds no drift in a fresh sample and exactly the three drifted
//! features (most severe first) in a drifted one, from a table and from the prediction log; the
//! check is recorded and reported; bad input gets a clear error.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::churn::{table, write};
use serde_json::{Value, json};

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect()
}

/// Trains `churn` the workflow's way (split, preprocess, train on the processed split), registers
/// it and puts version 1 in Production.
async fn production_model(s: &Server) {
    write(
        s.home.path(),
        "datasets/train.csv",
        &table(3000, 1, false).0,
    );
    let prepared = s
        .ok("preprocess_supervised", json!({
            "dataset_uri": "datasets/train.csv", "target_column": "label", "task_type": "classification",
            "split": {"validation_fraction": 0.15, "test_fraction": 0.15, "seed": 42},
            "output_name": "churn-data", "format": "parquet"
        }))
        .await;
    s.ok(
        "train_supervised_classifier",
        json!({
            "algorithm": "random_forest", "train_data_uri": prepared["train_data_uri"],
            "validation_data_uri": prepared["validation_data_uri"],
            "training_job_name": "churn-rf", "hyperparameters": {"n_estimators": 30}
        }),
    )
    .await;
    s.ok(
        "register_model",
        json!({"model_name": "churn", "model_uri": "models/churn-rf"}),
    )
    .await;
    s.ok(
        "set_model_approval",
        json!({"model_name": "churn", "version": 1, "approval_status": "Approved"}),
    )
    .await;
    s.ok(
        "transition_model_stage",
        json!({"model_name": "churn", "version": 1, "stage": "Production"}),
    )
    .await;
}

#[tokio::test]
async fn drift_is_found_in_tables_and_in_the_prediction_log_and_only_where_it_is() {
    let s = Server::start().await;
    production_model(&s).await;

    // The model carries the profile of the raw training rows, checksummed with the rest.
    let card = s
        .ok("load_model", json!({"model_uri": "models/churn-rf"}))
        .await;
    let profile = &card["reference_profile"];
    assert_eq!(profile["present"], true, "{card}");
    assert_eq!(
        profile["features"].as_array().unwrap().len(),
        5,
        "{profile}"
    );
    assert_eq!(profile["has_target"], true);
    assert_eq!(profile["has_predictions"], true);
    assert!(
        card["blobs"]["profile.json"]["sha256"].is_string(),
        "{card}"
    );

    // A fresh sample from the training distribution: no drift, and the score holds.
    write(
        s.home.path(),
        "datasets/fresh.csv",
        &table(2000, 7, false).0,
    );
    let fresh = s
        .ok(
            "detect_drift",
            json!({"model_name": "churn", "data_uri": "datasets/fresh.csv"}),
        )
        .await;
    assert_eq!(fresh["status"], "compared");
    assert_eq!(fresh["model_version"], 1);
    let c = &fresh["comparison"];
    assert_eq!(c["verdict"], "ok", "{c}");
    assert!(c["drifted_features"].as_array().unwrap().is_empty());
    assert_eq!(c["prediction"]["verdict"], "ok", "{c}");
    let performance = &fresh["performance"];
    assert_eq!(performance["metric"], "accuracy");
    assert!(
        performance["change"].as_f64().unwrap().abs() < 0.05,
        "{performance}"
    );

    // Drifted three ways: exactly those features, most severe first.
    let (drifted_csv, drifted_records) = table(2000, 8, true);
    write(s.home.path(), "datasets/drifted.csv", &drifted_csv);
    let drifted = s
        .ok(
            "detect_drift",
            json!({"model_name": "churn", "data_uri": "datasets/drifted.csv"}),
        )
        .await;
    let c = &drifted["comparison"];
    assert_eq!(c["verdict"], "drift");
    assert_eq!(
        names(&c["drifted_features"]),
        ["income", "region", "age"],
        "{c}"
    );
    assert!(c["warned_features"].as_array().unwrap().is_empty(), "{c}");
    let region = c["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "region")
        .unwrap();
    assert_eq!(region["new_categories"][0]["value"], "atlantis");
    // The report is written, self-contained, and names the worst feature.
    let report = |key: &str| {
        let uri = drifted[key].as_str().unwrap();
        let rel = format!("monitoring/{}", uri.split("/monitoring/").nth(1).unwrap());
        std::fs::read_to_string(s.path(&rel)).unwrap()
    };
    let md = report("report_uri");
    assert!(
        md.contains("**Verdict: DRIFT**") && md.contains("| income |"),
        "{md}"
    );
    let html = report("report_html_uri");
    assert!(
        html.contains("<svg") && html.contains("income") && !html.contains("<script"),
        "{html}"
    );

    // The same drifted rows sent to the endpoint with the log on: the log shows the same drift.
    s.ok("set_prediction_logging", json!({"model_name": "churn"}))
        .await;
    for chunk in drifted_records.chunks(1000) {
        s.ok("predict", json!({"model_name": "churn", "records": chunk}))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let from_log = loop {
        let r = s.ok("detect_drift", json!({"model_name": "churn"})).await;
        if r["current_rows"] == 2000 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the log never held the 2000 rows: {r}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        names(&from_log["comparison"]["drifted_features"]),
        ["income", "region", "age"]
    );
    assert!(
        from_log["comparison"]["prediction"]["psi"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // A window with no logged predictions: nothing to compare, not an error.
    let empty = s
        .ok(
            "detect_drift",
            json!({"model_name": "churn", "since": "2020-01-01", "until": "2020-01-02"}),
        )
        .await;
    assert_eq!(empty["status"], "nothing_to_compare");
    assert!(
        empty["message"]
            .as_str()
            .unwrap()
            .contains("nothing to compare")
    );

    // Every check is on record, newest first.
    let listed = s
        .ok("list_drift_checks", json!({"model_name": "churn"}))
        .await;
    let checks = listed["checks"].as_array().unwrap();
    assert!(checks.len() >= 4, "{listed}");
    assert_eq!(checks[0]["status"], "nothing_to_compare");
    assert!(checks.iter().any(|c| c["verdict"] == "drift"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let s = Server::start().await;
    production_model(&s).await;
    write(s.home.path(), "datasets/fresh.csv", &table(300, 7, false).0);
    s.err(
        "detect_drift",
        json!({"model_name": "nope", "data_uri": "datasets/fresh.csv"}),
        "nope",
    )
    .await;
    write(
        s.home.path(),
        "datasets/narrow.csv",
        "income,plan\n1.0,basic\n",
    );
    s.err(
        "detect_drift",
        json!({"model_name": "churn", "data_uri": "datasets/narrow.csv"}),
        "lacks 3 of the model's features: score, age, region",
    )
    .await;
    s.err(
        "detect_drift",
        json!({"model_name": "churn", "data_uri": "datasets/fresh.csv", "thresholds": {"psi": {"warn": 0.3, "drift": 0.2}}}),
        "thresholds.psi",
    )
    .await;
    s.err(
        "detect_drift",
        json!({"model_name": "churn", "since": "yesterday-ish"}),
        "is not a time",
    )
    .await;
    s.err(
        "detect_drift",
        json!({"model_name": "churn", "model_uri": "models/churn-rf", "data_uri": "datasets/fresh.csv"}),
        "not both",
    )
    .await;
    s.err(
        "detect_drift",
        json!({"model_uri": "models/churn-rf"}),
        "give data_uri",
    )
    .await;

    // A model saved without a profile says so and takes a reference table instead.
    let prepared = s
        .ok("preprocess_supervised", json!({
            "dataset_uri": "datasets/fresh.csv", "target_column": "label", "task_type": "classification",
            "output_name": "old"
        }))
        .await;
    std::fs::remove_file(s.path("processed/old/preprocessed/profile.json")).unwrap();
    s.ok(
        "train_supervised_classifier",
        json!({
            "algorithm": "random_forest", "train_data_uri": prepared["train_data_uri"],
            "training_job_name": "old-rf", "hyperparameters": {"n_estimators": 5}
        }),
    )
    .await;
    let card = s
        .ok("load_model", json!({"model_uri": "models/old-rf"}))
        .await;
    assert_eq!(card["reference_profile"]["present"], false);
    s.err(
        "detect_drift",
        json!({"model_uri": "models/old-rf", "data_uri": "datasets/fresh.csv"}),
        "has no reference profile",
    )
    .await;
    let r = s
        .ok("detect_drift", json!({
            "model_uri": "models/old-rf", "reference_data_uri": "datasets/train.csv", "data_uri": "datasets/fresh.csv"
        }))
        .await;
    assert_eq!(r["comparison"]["verdict"], "ok", "{r}");
}
