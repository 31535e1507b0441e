//! Model comparison, saved evaluation results, reports and plots over MCP.

mod common;

use common::Server;
use serde_json::json;

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn local(uri: &serde_json::Value) -> String {
    uri.as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn compare_save_and_report() {
    let s = Server::start().await;
    s.generate("classification", 3000, "datasets/c.csv");
    s.generate("regression", 1500, "datasets/r.csv");
    s.generate("clustering", 600, "datasets/blobs.csv");
    let c = s.split("datasets/c.csv", 1).await;
    for (name, algorithm, params) in [
        ("rf", "random_forest", json!({"n_estimators": 30})),
        (
            "xgb",
            "xgboost",
            json!({"n_estimators": 60, "max_depth": 4}),
        ),
        (
            "weak",
            "random_forest",
            json!({"n_estimators": 1, "max_depth": 1}),
        ),
    ] {
        s.ok("train_supervised_classifier", json!({
            "algorithm": algorithm, "train_data_uri": c["train"]["uri"], "target_column": "label",
            "validation_data_uri": c["validation"]["uri"], "training_job_name": name, "hyperparameters": params
        })).await;
    }

    // The stump ranks last by accuracy and by log loss (ascending), whatever the order given.
    let by_accuracy = s
        .ok(
            "compare_models",
            json!({"model_uris": ["models/weak", "models/rf", "models/xgb"], "test_data_uri": c["test"]["uri"]}),
        )
        .await;
    assert_eq!(by_accuracy["metric"], "accuracy");
    let ranking = by_accuracy["ranking"].as_array().unwrap();
    assert!(
        ranking[2]["model_uri"]
            .as_str()
            .unwrap()
            .ends_with("models/weak")
    );
    assert!(ranking[0]["value"].as_f64() >= ranking[1]["value"].as_f64());
    assert!(
        by_accuracy["table"]
            .as_str()
            .unwrap()
            .starts_with("| rank | model")
    );
    let by_loss = s
        .ok(
            "compare_models",
            json!({"model_uris": ["models/rf", "models/weak"], "test_data_uri": c["test"]["uri"], "metric": "log_loss"}),
        )
        .await;
    assert_eq!(by_loss["higher_is_better"], false);
    assert!(
        by_loss["ranking"][1]["model_uri"]
            .as_str()
            .unwrap()
            .ends_with("models/weak")
    );
    s.err(
        "compare_models",
        json!({"model_uris": ["models/rf", "models/xgb"], "test_data_uri": c["test"]["uri"], "metric": "r2"}),
        "`r2` is a regression metric, not a classification one",
    )
    .await;
    s.err(
        "compare_models",
        json!({"model_uris": ["models/rf"], "test_data_uri": c["test"]["uri"]}),
        "give 2 to 20 model_uris",
    )
    .await;

    // Results and plots: files on disk, PNG images in the MCP reply.
    let reply = s
        .call(
            "save_evaluation_results",
            json!({"model_uri": "models/xgb", "test_data_uri": c["test"]["uri"]}),
        )
        .await;
    assert!(!reply.is_error, "{}", reply.text);
    let files = reply.structured["files"].as_array().unwrap();
    let names: Vec<&str> = files
        .iter()
        .map(|f| f.as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    for expected in [
        "results.json",
        "confusion_matrix.png",
        "roc_curve.png",
        "precision_recall_curve.png",
        "feature_importance.png",
        "learning_curve.png",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(reply.images.len(), files.len() - 1);
    assert!(reply.images.iter().all(|m| m == "image/png"));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("evaluations/xgb/results.json")).unwrap())
            .unwrap();
    assert_eq!(
        results["metrics"]["confusion_matrix"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for f in &files[1..] {
        assert!(std::fs::read(local(f)).unwrap().starts_with(PNG_MAGIC));
    }

    // The report: Markdown linking the plots, HTML embedding them.
    let report = s
        .ok(
            "generate_evaluation_report",
            json!({"model_uri": "models/rf", "test_data_uri": c["test"]["uri"], "evaluation_name": "rf-report"}),
        )
        .await;
    let md = std::fs::read_to_string(s.path("evaluations/rf-report/report.md")).unwrap();
    assert!(
        md.contains("## Metrics") && md.contains("| accuracy |"),
        "{md}"
    );
    assert!(md.contains("![Confusion matrix](confusion_matrix.png)"));
    let html = std::fs::read_to_string(s.path("evaluations/rf-report/report.html")).unwrap();
    assert_eq!(
        html.matches("data:image/png;base64,").count(),
        5,
        "{report}"
    );

    // Regression and clustering plots.
    s.ok("train_supervised_regressor", json!({
        "algorithm": "xgboost", "train_data_uri": "datasets/r.csv", "target_column": "target", "training_job_name": "reg"
    })).await;
    let reg = s
        .ok(
            "save_evaluation_results",
            json!({"model_uri": "models/reg", "test_data_uri": "datasets/r.csv"}),
        )
        .await;
    assert!(reg["files"].to_string().contains("residuals.png"));
    s.ok("train_unsupervised_clustering", json!({
        "algorithm": "kmeans", "data_uri": "datasets/blobs.csv", "training_job_name": "km", "hyperparameters": {"n_clusters": 4}
    })).await;
    let km = s
        .ok(
            "save_evaluation_results",
            json!({"model_uri": "models/km", "test_data_uri": "datasets/blobs.csv"}),
        )
        .await;
    assert!(km["files"].to_string().contains("cluster_scatter.png"));
    assert!(km["metrics"]["silhouette"].as_f64().unwrap() > 0.5);

    // Copies for a person to look at, when asked.
    if let Ok(dir) = std::env::var("MLOPS_KEEP_PLOTS") {
        for folder in ["xgb", "reg", "km"] {
            for entry in std::fs::read_dir(s.path(&format!("evaluations/{folder}"))).unwrap() {
                let p = entry.unwrap().path();
                if p.extension().is_some_and(|e| e == "png") {
                    let to = format!(
                        "{dir}/{folder}-{}",
                        p.file_name().unwrap().to_string_lossy()
                    );
                    std::fs::copy(&p, to).unwrap();
                }
            }
        }
    }
}
