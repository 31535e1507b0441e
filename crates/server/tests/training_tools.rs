//! Training and evaluation over MCP beyond the spine: regression, a job cancelled mid-run, a model
//! reloaded by another server process, and models of the wrong kind refused by an evaluator.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

#[tokio::test]
async fn regression_cancellation_reload_and_wrong_kinds() {
    let s = Server::start().await;
    s.generate("regression", 3000, "datasets/r.csv");
    s.generate("classification", 3000, "datasets/c.csv");
    let split = s.split("datasets/r.csv", 3).await;
    let job = s.ok("train_supervised_regressor", json!({
        "algorithm": "random_forest", "train_data_uri": split["train"]["uri"], "target_column": "target",
        "validation_data_uri": split["validation"]["uri"], "training_job_name": "reg-1",
        "hyperparameters": {"n_estimators": 60}
    }))
    .await;
    assert!(job["metrics"]["oob_r2"].as_f64().unwrap() > 0.8, "{job}");
    let eval = s
        .ok(
            "evaluate_regressor",
            json!({"model_uri": "models/reg-1", "test_data_uri": split["test"]["uri"]}),
        )
        .await;
    let r2 = eval["r2"].as_f64().unwrap();
    assert!(r2 > 0.85, "R² {r2}");
    assert!((eval["rmse"].as_f64().unwrap().powi(2) - eval["mse"].as_f64().unwrap()).abs() < 1e-9);

    // The wrong kind of model for an evaluator, and the wrong kind of target for a trainer.
    let r = s
        .call(
            "evaluate_classifier",
            json!({"model_uri": "models/reg-1", "test_data_uri": split["test"]["uri"]}),
        )
        .await;
    assert!(
        r.is_error
            && r.text.contains(
                "is a regression model; evaluate_classifier evaluates classification models"
            ),
        "{}",
        r.text
    );
    let r = s.call("train_supervised_regressor", json!({"algorithm": "random_forest", "train_data_uri": "datasets/c.csv", "target_column": "segment"})).await;
    assert!(
        r.is_error && r.text.contains("is not numeric"),
        "{}",
        r.text
    );
    let r = s.call("train_supervised_classifier", json!({"algorithm": "random_forest", "train_data_uri": "datasets/c.csv", "target_column": "label", "training_job_name": "reg-1"})).await;
    assert!(
        r.is_error && r.text.contains("already exists"),
        "{}",
        r.text
    );

    // A long job started without waiting, then cancelled: it stops within a second and saves nothing.
    let started = s.ok("train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": "datasets/c.csv", "target_column": "label",
        "training_job_name": "long", "wait": false, "hyperparameters": {"n_estimators": 5000}
    }))
    .await;
    assert_eq!(started["status"], "running");
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.ok("cancel_training_job", json!({"training_job_name": "long"}))
        .await;
    let asked = Instant::now();
    loop {
        let m = s
            .ok("get_training_metrics", json!({"training_job_name": "long"}))
            .await;
        if m["status"] == "cancelled" {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "still {} after a second",
            m["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !s.path("models/long/manifest.json").exists(),
        "a cancelled job saves nothing"
    );

    // Another server process loads the saved model and predicts the same values.
    let again = Server::connect(s.home.path()).await;
    let eval2 = common::call(
        &again,
        "evaluate_regressor",
        json!({"model_uri": "models/reg-1", "test_data_uri": split["test"]["uri"]}),
    )
    .await;
    assert_eq!(eval2.structured["r2"], eval["r2"]);
    assert_eq!(eval2.structured["mae"], eval["mae"]);

    // Jobs are recorded in the database: the other process knows the cancelled job too, and the
    // finished one with its metrics history.
    let long = common::call(
        &again,
        "get_training_metrics",
        json!({"training_job_name": "long"}),
    )
    .await;
    assert_eq!(long.structured["status"], "cancelled", "{}", long.text);
    let reg = common::call(
        &again,
        "get_training_metrics",
        json!({"training_job_name": "reg-1"}),
    )
    .await;
    assert_eq!(reg.structured["status"], "completed");
    assert_eq!(
        reg.structured["metrics"]["oob_r2"],
        job["metrics"]["oob_r2"]
    );
    assert!(
        !reg.structured["metrics_history"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
