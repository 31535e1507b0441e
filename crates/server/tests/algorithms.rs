//! Every training algorithm over MCP on generated data, scored on held-out rows against fixed
//! thresholds; models copied with save_model and reloaded in another process; and the bad input
//! each algorithm must refuse.

mod common;

use common::Server;
use serde_json::{Value, json};

/// Three overlapping 2-D classes (a multi-class set the generator does not make), deterministic.
fn three_classes(s: &Server, rel: &str, rows: usize) {
    let centers = [(0.0, 0.0), (3.0, 0.5), (1.0, 3.0)];
    let mut csv = String::from("a,b,kind\n");
    let mut state: u64 = 12345;
    let mut noise = || {
        // A small LCG: enough spread for overlapping classes without a random crate in tests.
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.4
    };
    for i in 0..rows {
        let c = i % 3;
        let (x, y) = centers[c];
        csv.push_str(&format!(
            "{:.4},{:.4},{}\n",
            x + noise(),
            y + noise(),
            ["red", "green", "blue"][c]
        ));
    }
    std::fs::write(s.path(rel), csv).unwrap();
}

async fn split(s: &Server, uri: &str) -> Value {
    s.ok("split_dataset", json!({"dataset_uri": uri, "seed": 5}))
        .await
}

#[tokio::test]
async fn classifiers_regressors_and_reload() {
    let s = Server::start().await;
    s.generate("classification", 4000, "datasets/c.csv");
    s.generate("regression", 3000, "datasets/r.csv");
    std::fs::create_dir_all(s.path("datasets")).unwrap();
    three_classes(&s, "datasets/three.csv", 3000);

    // Binary: gradient boosting and the logistic baseline both learn the generated classes.
    let c = split(&s, "datasets/c.csv").await;
    for (algorithm, params, floor) in [
        ("xgboost", json!({"n_estimators": 80, "max_depth": 4}), 0.85),
        ("logistic_regression", json!({}), 0.85),
    ] {
        let name = format!("c-{algorithm}");
        let job = s.ok("train_supervised_classifier", json!({
            "algorithm": algorithm, "train_data_uri": c["train"]["uri"], "target_column": "label",
            "validation_data_uri": c["validation"]["uri"], "training_job_name": name, "hyperparameters": params
        })).await;
        assert_eq!(job["status"], "completed", "{job}");
        let eval = s
            .ok(
                "evaluate_classifier",
                json!({"model_uri": format!("models/{name}"), "test_data_uri": c["test"]["uri"]}),
            )
            .await;
        let acc = eval["accuracy"].as_f64().unwrap();
        assert!(acc > floor, "{algorithm}: accuracy {acc}");
        assert!(
            eval["roc_auc"].as_f64().unwrap() > 0.9,
            "{algorithm}: {eval}"
        );
        assert!(
            job["metrics"]["feature_importances"][0]["importance"]
                .as_f64()
                .unwrap()
                > 0.0
        );
    }
    // Gradient boosting records the validation loss after every round.
    let m = s
        .ok(
            "get_training_metrics",
            json!({"training_job_name": "c-xgboost"}),
        )
        .await;
    let history = m["metrics_history"].as_array().unwrap();
    assert_eq!(history.len(), 80, "{m}");
    assert!(
        history[79]["value"].as_f64() < history[0]["value"].as_f64(),
        "log loss falls"
    );

    // Three classes: one-vs-rest boosting and multinomial logistic regression.
    let t = split(&s, "datasets/three.csv").await;
    for algorithm in ["xgboost", "logistic_regression"] {
        let name = format!("three-{algorithm}");
        s.ok("train_supervised_classifier", json!({
            "algorithm": algorithm, "train_data_uri": t["train"]["uri"], "target_column": "kind",
            "training_job_name": name, "hyperparameters": if algorithm == "xgboost" { json!({"n_estimators": 50, "max_depth": 3}) } else { json!({}) }
        })).await;
        let eval = s
            .ok(
                "evaluate_classifier",
                json!({"model_uri": format!("models/{name}"), "test_data_uri": t["test"]["uri"]}),
            )
            .await;
        assert_eq!(eval["classes"].as_array().unwrap().len(), 3);
        let acc = eval["accuracy"].as_f64().unwrap();
        assert!(acc > 0.8, "{algorithm} on three classes: accuracy {acc}");
    }

    // Regressors: least squares (plain, ridge, lasso) and gradient boosting.
    let r = split(&s, "datasets/r.csv").await;
    for (name, algorithm, params, floor) in [
        ("r-ols", "linear", json!({}), 0.6),
        (
            "r-ridge",
            "linear",
            json!({"penalty": "ridge", "alpha": 1.0}),
            0.6,
        ),
        (
            "r-lasso",
            "linear",
            json!({"penalty": "lasso", "alpha": 0.01}),
            0.6,
        ),
        (
            "r-xgb",
            "xgboost",
            json!({"n_estimators": 150, "max_depth": 4, "learning_rate": 0.1}),
            0.85,
        ),
    ] {
        s.ok("train_supervised_regressor", json!({
            "algorithm": algorithm, "train_data_uri": r["train"]["uri"], "target_column": "target",
            "training_job_name": name, "hyperparameters": params
        })).await;
        let eval = s
            .ok(
                "evaluate_regressor",
                json!({"model_uri": format!("models/{name}"), "test_data_uri": r["test"]["uri"]}),
            )
            .await;
        let r2 = eval["r2"].as_f64().unwrap();
        assert!(r2 > floor, "{name}: R² {r2}");
    }

    // save_model copies under a new name; another process loads it and predicts the same.
    let card = s
        .ok(
            "save_model",
            json!({"model_uri": "models/r-xgb", "model_name": "champion-candidate"}),
        )
        .await;
    assert_eq!(card["algorithm"], "xgboost");
    assert_eq!(card["verified"], true);
    s.err(
        "save_model",
        json!({"model_uri": "models/r-ols", "model_name": "champion-candidate"}),
        "already exists",
    )
    .await;
    let before = s
        .ok(
            "evaluate_regressor",
            json!({"model_uri": "models/r-xgb", "test_data_uri": r["test"]["uri"]}),
        )
        .await;
    let again = Server::connect(s.home.path()).await;
    let after = common::call(
        &again,
        "evaluate_regressor",
        json!({"model_uri": "models/champion-candidate", "test_data_uri": r["test"]["uri"]}),
    )
    .await;
    assert_eq!(after.structured["rmse"], before["rmse"]);
    // Finished jobs keep their metrics history across the restart.
    let m = common::call(
        &again,
        "get_training_metrics",
        json!({"training_job_name": "c-xgboost"}),
    )
    .await;
    assert_eq!(
        m.structured["metrics_history"].as_array().unwrap().len(),
        80
    );

    // A tampered model is refused by load_model.
    let blob = s.path("models/r-ols/model.json");
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    s.err(
        "load_model",
        json!({"model_uri": "models/r-ols"}),
        "checksum",
    )
    .await;
    let card = s
        .ok("load_model", json!({"model_uri": "models/r-ridge"}))
        .await;
    assert_eq!(card["task"], "regression");
}

#[tokio::test]
async fn clustering_and_dimension_reduction() {
    let s = Server::start().await;
    s.generate("clustering", 1200, "datasets/blobs.csv");

    // k chosen by silhouette over a range finds the generator's four blobs.
    let job = s
        .ok(
            "train_unsupervised_clustering",
            json!({
                "algorithm": "kmeans", "data_uri": "datasets/blobs.csv", "training_job_name": "km",
                "hyperparameters": {"k_min": 2, "k_max": 6}
            }),
        )
        .await;
    let metrics = &job["metrics"];
    assert_eq!(metrics["n_clusters"], 4, "{metrics}");
    assert!(metrics["silhouette"].as_f64().unwrap() > 0.6, "{metrics}");
    assert_eq!(metrics["silhouette_by_k"].as_array().unwrap().len(), 5);
    let clusters = std::fs::read_to_string(s.path("results/km/clusters.csv")).unwrap();
    assert_eq!(clusters.lines().count(), 1201);
    let eval = s
        .ok(
            "evaluate_clustering",
            json!({"model_uri": "models/km", "data_uri": "datasets/blobs.csv"}),
        )
        .await;
    assert_eq!(eval["silhouette"], metrics["silhouette"]);

    let db = s
        .ok(
            "train_unsupervised_clustering",
            json!({
                "algorithm": "dbscan", "data_uri": "datasets/blobs.csv", "training_job_name": "db",
                "hyperparameters": {"eps": 0.5, "min_samples": 5}
            }),
        )
        .await;
    assert_eq!(db["metrics"]["n_clusters"], 4, "{db}");

    // PCA keeps most of the variance in two components; t-SNE writes a 2-D embedding.
    let pca = s
        .ok(
            "train_unsupervised_dimension_reduction",
            json!({"algorithm": "pca", "data_uri": "datasets/blobs.csv", "training_job_name": "pca"}),
        )
        .await;
    let total = pca["metrics"]["explained_variance_ratio_total"]
        .as_f64()
        .unwrap();
    assert!(total > 0.6 && total <= 1.0 + 1e-9, "{pca}");
    let tsne = s
        .ok(
            "train_unsupervised_dimension_reduction",
            json!({"algorithm": "tsne", "data_uri": "datasets/blobs.csv", "training_job_name": "tsne",
                   "hyperparameters": {"perplexity": 20, "max_iter": 300}}),
        )
        .await;
    assert_eq!(tsne["status"], "completed", "{tsne}");
    let embedding = std::fs::read_to_string(s.path("results/tsne/embedding.csv")).unwrap();
    assert!(embedding.starts_with("row,component_1,component_2"));
    assert_eq!(embedding.lines().count(), 1201);
}

#[tokio::test]
async fn bad_training_input_is_refused() {
    let s = Server::start().await;
    s.generate("classification", 300, "datasets/c.csv");
    s.generate("clustering", 100, "datasets/blobs.csv");
    std::fs::write(s.path("datasets/one.csv"), "a,b,y\n1,2,x\n2,3,x\n3,1,x\n").unwrap();
    let c = "datasets/c.csv";
    s.err(
        "train_supervised_classifier",
        json!({"algorithm": "svm", "train_data_uri": c, "target_column": "label"}),
        "unknown variant `svm`",
    )
    .await;
    s.err("train_supervised_classifier", json!({"algorithm": "xgboost", "train_data_uri": c, "target_column": "label", "hyperparameters": {"n_estimators": -5}}), "n_estimators must be between 1 and 10000").await;
    s.err("train_supervised_classifier", json!({"algorithm": "xgboost", "train_data_uri": c, "target_column": "label", "hyperparameters": {"max_features": "sqrt"}}), "hyperparameters for xgboost: unknown field `max_features`").await;
    s.err("train_supervised_classifier", json!({"algorithm": "logistic_regression", "train_data_uri": "datasets/one.csv", "target_column": "y"}), "only one class").await;
    s.err("train_unsupervised_clustering", json!({"algorithm": "kmeans", "data_uri": "datasets/blobs.csv", "hyperparameters": {"n_clusters": 500}}), "n_clusters must be between 1 and the number of rows (100)").await;
    s.err("train_unsupervised_clustering", json!({"algorithm": "dbscan", "data_uri": "datasets/blobs.csv", "hyperparameters": {"eps": 0}}), "eps must be greater than 0").await;
    s.err("train_unsupervised_dimension_reduction", json!({"algorithm": "pca", "data_uri": "datasets/blobs.csv", "hyperparameters": {"n_components": 9}}), "n_components must be between 1 and the number of features (5)").await;
    s.err("train_unsupervised_dimension_reduction", json!({"algorithm": "tsne", "data_uri": "datasets/blobs.csv", "hyperparameters": {"perplexity": 50}}), "perplexity must be positive and at most").await;
    s.err("train_supervised_regressor", json!({"algorithm": "linear", "train_data_uri": c, "target_column": "f0", "hyperparameters": {"penalty": "elastic"}}), "unknown variant `elastic`").await;

    // NaNs left in processed features: the pipeline is beside the data, so nothing imputes them.
    let prep = s
        .ok(
            "preprocess_supervised",
            json!({"dataset_uri": c, "target_column": "label", "task_type": "classification", "output_name": "c", "format": "csv"}),
        )
        .await;
    let processed = prep["train_data_uri"].as_str().unwrap().to_string();
    let path = processed.strip_prefix("file://").unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let first: Vec<&str> = lines[1].split(',').collect();
    let blanked = std::iter::once("")
        .chain(first[1..].iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    lines[1] = blanked;
    let nan_uri = processed.replace(".csv", "-nan.csv");
    std::fs::write(path.replace(".csv", "-nan.csv"), lines.join("\n")).unwrap();
    s.err(
        "train_supervised_classifier",
        json!({"algorithm": "xgboost", "train_data_uri": nan_uri}),
        "missing or non-finite values",
    )
    .await;

    // A clustering model handed to a classifier evaluator.
    s.ok(
        "train_unsupervised_clustering",
        json!({"algorithm": "kmeans", "data_uri": "datasets/blobs.csv", "training_job_name": "km", "hyperparameters": {"n_clusters": 3}}),
    )
    .await;
    s.err(
        "evaluate_classifier",
        json!({"model_uri": "models/km", "test_data_uri": "datasets/blobs.csv"}),
        "is a clustering model",
    )
    .await;
}
