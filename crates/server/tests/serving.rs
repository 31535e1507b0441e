//! Serving through the `predict` tool, over MCP with the real binary: for every model kind the
//! predictions equal what evaluation computes on the same rows, raw rows and tables give the same
//! numbers, a second process gives identical output, registered models are chosen by stage,
//! version or alias, bad input gets a clear error, and large results go to a Parquet file.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Server;
use serde_json::{Map, Value, json};

/// The rows of a CSV file as JSON objects (numbers where the text is one).
fn csv_records(path: &Path, limit: usize) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .take(limit)
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .map(|(h, v)| {
                    let value = if v.is_empty() {
                        Value::Null
                    } else {
                        v.parse::<f64>().map_or_else(|_| json!(v), |n| json!(n))
                    };
                    (h.to_string(), value)
                })
                .collect()
        })
        .collect()
}

/// One CSV column as text.
fn csv_column(path: &Path, column: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == column).unwrap();
    lines
        .map(|l| l.split(',').nth(i).unwrap().to_string())
        .collect()
}

/// Every prediction of a `predict` call, following its pages.
async fn all_predictions(s: &Server, args: Value) -> (Value, Vec<Map<String, Value>>) {
    let first = s.ok("predict", args.clone()).await;
    let mut rows: Vec<Map<String, Value>> = first["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    let mut next = first["next_offset"].as_u64();
    while let Some(offset) = next {
        let mut page_args = args.clone();
        page_args["offset"] = json!(offset);
        let page = s.ok("predict", page_args).await;
        rows.extend(
            page["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_object().unwrap().clone()),
        );
        next = page["next_offset"].as_u64();
    }
    (first, rows)
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9, "{what}: {a} vs {b}");
}

#[tokio::test]
async fn predictions_equal_evaluation_for_every_model_kind() {
    let s = Server::start().await;
    s.generate("classification", 600, "datasets/train.csv");
    common::generate_seeded("classification", 200, 7, &s.path("datasets/test.csv"));
    s.generate("regression", 500, "datasets/reg.csv");
    s.generate("clustering", 300, "datasets/blobs.csv");

    // A classifier on raw data: probabilities and labels against evaluate_classifier's metrics.
    s.ok("train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": "datasets/train.csv",
        "target_column": "label", "training_job_name": "rf", "hyperparameters": {"n_estimators": 30}
    }))
    .await;
    let eval = s
        .ok(
            "evaluate_classifier",
            json!({"model_uri": "models/rf", "test_data_uri": "datasets/test.csv"}),
        )
        .await;
    let (first, rows) = all_predictions(
        &s,
        json!({"model_uri": "models/rf", "data_uri": "datasets/test.csv", "passthrough_columns": ["customer_id"]}),
    )
    .await;
    assert_eq!(first["rows"], 200);
    assert_eq!(rows.len(), 200);
    let truth = csv_column(&s.path("datasets/test.csv"), "label");
    let ids = csv_column(&s.path("datasets/test.csv"), "customer_id");
    let mut correct = 0;
    let mut log_loss = 0.0;
    let mut confusion: BTreeMap<(String, String), u64> = BTreeMap::new();
    for ((row, t), id) in rows.iter().zip(&truth).zip(&ids) {
        assert_eq!(row["customer_id"], json!(id));
        let label = row["label"].as_str().unwrap();
        correct += usize::from(label == t);
        let p = row["probabilities"][t].as_f64().unwrap();
        log_loss -= p.clamp(1e-15, 1.0 - 1e-15).ln();
        *confusion.entry((t.clone(), label.to_string())).or_default() += 1;
    }
    close(
        correct as f64 / 200.0,
        eval["accuracy"].as_f64().unwrap(),
        "accuracy",
    );
    close(
        log_loss / 200.0,
        eval["log_loss"].as_f64().unwrap(),
        "log loss",
    );
    let classes: Vec<String> = eval["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    for (i, t) in classes.iter().enumerate() {
        for (j, p) in classes.iter().enumerate() {
            assert_eq!(
                eval["confusion_matrix"][i][j].as_u64().unwrap(),
                confusion.get(&(t.clone(), p.clone())).copied().unwrap_or(0),
                "confusion[{t}][{p}]"
            );
        }
    }
    // Raw rows inline give the table's numbers exactly.
    let records = csv_records(&s.path("datasets/test.csv"), 40);
    let inline = s
        .ok(
            "predict",
            json!({"model_uri": "models/rf", "records": records}),
        )
        .await;
    for (a, b) in inline["predictions"].as_array().unwrap().iter().zip(&rows) {
        assert_eq!(a["label"], b["label"]);
        assert_eq!(a["probabilities"], b["probabilities"]);
    }
    // A second process loads the model again and says exactly the same.
    let again = Server::connect(s.home.path()).await;
    let r = common::call(
        &again,
        "predict",
        json!({"model_uri": "models/rf", "records": records}),
    )
    .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["predictions"], inline["predictions"]);

    // A regressor: values against evaluate_regressor.
    s.ok(
        "train_supervised_regressor",
        json!({
            "algorithm": "xgboost", "train_data_uri": "datasets/reg.csv", "target_column": "target",
            "training_job_name": "gb", "hyperparameters": {"n_estimators": 40}
        }),
    )
    .await;
    let eval = s
        .ok(
            "evaluate_regressor",
            json!({"model_uri": "models/gb", "test_data_uri": "datasets/reg.csv"}),
        )
        .await;
    let (_, rows) = all_predictions(
        &s,
        json!({"model_uri": "models/gb", "data_uri": "datasets/reg.csv"}),
    )
    .await;
    let targets: Vec<f64> = csv_column(&s.path("datasets/reg.csv"), "target")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    let n = targets.len() as f64;
    let mae: f64 = rows
        .iter()
        .zip(&targets)
        .map(|(r, t)| (r["value"].as_f64().unwrap() - t).abs())
        .sum::<f64>()
        / n;
    let mse: f64 = rows
        .iter()
        .zip(&targets)
        .map(|(r, t)| (r["value"].as_f64().unwrap() - t).powi(2))
        .sum::<f64>()
        / n;
    close(mae, eval["mae"].as_f64().unwrap(), "mae");
    close(mse, eval["mse"].as_f64().unwrap(), "mse");

    // Clustering: k-means, DBSCAN and the autoencoder give the training rows the clusters (and
    // anomaly scores) training wrote; PCA gives the embedding training wrote.
    for (job, algorithm, hyperparameters) in [
        ("km", "kmeans", json!({"n_clusters": 3})),
        ("db", "dbscan", json!({"eps": 0.8, "min_samples": 5})),
        (
            "ae",
            "autoencoder",
            json!({"n_clusters": 3, "max_iter": 30}),
        ),
    ] {
        s.ok(
            "train_unsupervised_clustering",
            json!({
                "algorithm": algorithm, "data_uri": "datasets/blobs.csv", "training_job_name": job,
                "hyperparameters": hyperparameters
            }),
        )
        .await;
        let (first, rows) = all_predictions(
            &s,
            json!({"model_uri": format!("models/{job}"), "data_uri": "datasets/blobs.csv"}),
        )
        .await;
        let written = csv_records(&s.path(&format!("results/{job}/clusters.csv")), usize::MAX);
        assert_eq!(rows.len(), written.len(), "{job}");
        if algorithm != "dbscan" {
            for (p, w) in rows.iter().zip(&written) {
                assert_eq!(p["cluster"].as_f64(), w["cluster"].as_f64(), "{job}");
                if algorithm == "autoencoder" {
                    close(
                        p["anomaly_score"].as_f64().unwrap(),
                        w["reconstruction_error"].as_f64().unwrap(),
                        "anomaly score",
                    );
                    assert_eq!(
                        p["anomaly"].as_bool(),
                        Some(w["anomaly"] == json!("true")),
                        "{job}"
                    );
                }
            }
        }
        // evaluate_clustering assigns the same rows to the same clusters.
        let eval = s
            .ok(
                "evaluate_clustering",
                json!({"model_uri": format!("models/{job}"), "data_uri": "datasets/blobs.csv"}),
            )
            .await;
        let sizes: BTreeMap<String, u64> = eval["cluster_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_u64() != Some(0))
            .map(|(id, n)| (id.to_string(), n.as_u64().unwrap()))
            .collect();
        let counted = &first["overview"]["clusters"];
        let clustered: BTreeMap<String, u64> = counted
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.as_str() != "-1")
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert!(!sizes.is_empty(), "{job}: {eval}");
        assert_eq!(clustered, sizes, "{job}: {eval}");
        assert_eq!(
            counted["-1"].as_u64().unwrap_or(0),
            eval["n_noise"].as_u64().unwrap(),
            "{job}"
        );
    }
    s.ok(
        "train_unsupervised_dimension_reduction",
        json!({
            "algorithm": "pca", "data_uri": "datasets/blobs.csv", "training_job_name": "pca",
            "hyperparameters": {"n_components": 2}
        }),
    )
    .await;
    let (_, rows) = all_predictions(
        &s,
        json!({"model_uri": "models/pca", "data_uri": "datasets/blobs.csv"}),
    )
    .await;
    let embedding = csv_records(&s.path("results/pca/embedding.csv"), usize::MAX);
    for (p, e) in rows.iter().zip(&embedding) {
        let c = p["components"].as_array().unwrap();
        close(
            c[0].as_f64().unwrap(),
            e["component_1"].as_f64().unwrap(),
            "component 1",
        );
        close(
            c[1].as_f64().unwrap(),
            e["component_2"].as_f64().unwrap(),
            "component 2",
        );
    }

    // A policy: the greedy action for each observation row, the same in another process.
    s.ok(
        "train_reinforcement",
        json!({
            "algorithm": "dqn", "environment": "CartPole-v1", "training_job_name": "pole",
            "hyperparameters": {"total_timesteps": 2000}
        }),
    )
    .await;
    let observations = json!([
        {"obs_0": 0.0, "obs_1": 0.0, "obs_2": 0.05, "obs_3": 0.5},
        {"obs_0": 0.0, "obs_1": 0.0, "obs_2": -0.05, "obs_3": -0.5},
    ]);
    let acted = s
        .ok(
            "predict",
            json!({"model_uri": "models/pole", "records": observations}),
        )
        .await;
    for p in acted["predictions"].as_array().unwrap() {
        assert!([json!(0), json!(1)].contains(&p["action"]), "{acted}");
    }
    let r = common::call(
        &again,
        "predict",
        json!({"model_uri": "models/pole", "records": observations}),
    )
    .await;
    assert_eq!(r.structured["predictions"], acted["predictions"]);
    let e = s
        .call(
            "predict",
            json!({"model_uri": "models/pole", "records": [{"obs_0": 0.1}]}),
        )
        .await;
    assert!(e.is_error && e.text.contains("obs_1"), "{}", e.text);
}

#[tokio::test]
async fn registered_models_answer_by_stage_version_and_alias() {
    let s = Server::start().await;
    s.generate("classification", 400, "datasets/d.csv");
    for (job, trees) in [("v1", 5), ("v2", 20)] {
        s.ok("train_supervised_classifier", json!({
            "algorithm": "random_forest", "train_data_uri": "datasets/d.csv", "target_column": "label",
            "training_job_name": job, "hyperparameters": {"n_estimators": trees}
        }))
        .await;
        s.ok(
            "register_model",
            json!({"model_name": "churn", "model_uri": format!("models/{job}")}),
        )
        .await;
    }
    let records = csv_records(&s.path("datasets/d.csv"), 3);
    // Nothing in Production yet: a clear error, nothing written.
    s.err(
        "predict",
        json!({"model_name": "churn", "records": records}),
        "Production",
    )
    .await;
    for v in [1, 2] {
        s.ok(
            "set_model_approval",
            json!({"model_name": "churn", "version": v, "approval_status": "Approved"}),
        )
        .await;
    }
    s.ok(
        "transition_model_stage",
        json!({"model_name": "churn", "version": 1, "stage": "Production"}),
    )
    .await;
    s.ok(
        "set_model_alias",
        json!({"model_name": "churn", "alias": "challenger", "version": 2}),
    )
    .await;
    let production = s
        .ok(
            "predict",
            json!({"model_name": "churn", "records": records}),
        )
        .await;
    assert_eq!(production["version"], 1, "{production}");
    let challenger = s
        .ok(
            "predict",
            json!({"model_name": "churn", "alias": "challenger", "records": records}),
        )
        .await;
    assert_eq!(challenger["version"], 2);
    let pinned = s
        .ok(
            "predict",
            json!({"model_name": "churn", "version": 2, "records": records}),
        )
        .await;
    assert_eq!(pinned["predictions"], challenger["predictions"]);
    // A promotion is followed, with no restart.
    s.ok(
        "transition_model_stage",
        json!({"model_name": "churn", "version": 2, "stage": "Production"}),
    )
    .await;
    let mut followed = false;
    for _ in 0..40 {
        let p = s
            .ok(
                "predict",
                json!({"model_name": "churn", "records": records}),
            )
            .await;
        if p["version"] == 2 {
            followed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        followed,
        "the promotion to version 2 was not followed within 4 s"
    );
    let status = s.ok("get_serving_status", json!({})).await;
    assert!(
        status["served"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["model_name"] == "churn" && m["version"] == 2),
        "{status}"
    );

    // Bad input, each with a clear message and nothing written.
    s.err(
        "predict",
        json!({"model_name": "churn", "version": 1, "stage": "Production", "records": records}),
        "give one of version, stage or alias",
    )
    .await;
    s.err(
        "predict",
        json!({"model_name": "nobody", "records": records}),
        "nobody",
    )
    .await;
    s.err(
        "predict",
        json!({"model_name": "churn", "records": []}),
        "no rows",
    )
    .await;
    s.err(
        "predict",
        json!({"model_name": "churn"}),
        "records (inline) or data_uri",
    )
    .await;
    s.err(
        "predict",
        json!({"model_uri": "models/v1", "model_name": "churn", "records": records}),
        "not both",
    )
    .await;
    let mut incomplete = records.clone();
    for r in &mut incomplete {
        r.remove("f0");
        r.remove("segment");
    }
    s.err(
        "predict",
        json!({"model_name": "churn", "records": incomplete}),
        "f0, segment",
    )
    .await;
    let mut wrong = records.clone();
    wrong[0].insert("f1".into(), json!("lots"));
    s.err(
        "predict",
        json!({"model_name": "churn", "records": wrong}),
        "column `f1` takes numbers, not `lots`",
    )
    .await;
    let too_many: Vec<Value> = (0..1001).map(|_| json!(records[0])).collect();
    s.err(
        "predict",
        json!({"model_name": "churn", "records": too_many}),
        "at most 1000",
    )
    .await;
    // An unseen category is scored as the pipeline says, and the reply says so.
    let mut unseen = records.clone();
    unseen[0].insert("segment".into(), json!("platinum"));
    let r = s
        .ok("predict", json!({"model_name": "churn", "records": unseen}))
        .await;
    assert_eq!(r["unseen_categories"]["segment"], json!(["platinum"]));
    assert!(
        r["unseen_rule"].as_str().unwrap().contains("all zeros"),
        "{r}"
    );

    // Over 1,000 rows: a Parquet file and a preview.
    common::generate_seeded("classification", 1500, 3, &s.path("datasets/big.csv"));
    let big = s
        .ok("predict", json!({"model_name": "churn", "data_uri": "datasets/big.csv", "output_name": "big-run", "passthrough_columns": ["customer_id"]}))
        .await;
    assert_eq!(big["rows"], 1500);
    assert_eq!(big["predictions"].as_array().unwrap().len(), 5);
    let file = s.path("predictions/big-run/part-00000.parquet");
    assert!(file.exists(), "{big}");
    assert!(
        big["output_uri"]
            .as_str()
            .unwrap()
            .ends_with("predictions/big-run/part-00000.parquet")
    );
}

#[tokio::test]
async fn the_model_cache_keeps_to_its_budget() {
    let home = tempfile::tempdir().unwrap();
    common::generate("classification", 2000, &home.path().join("datasets/d.csv"));
    let client = Server::connect_with(home.path(), &[("MLOPS_SERVING_CACHE_MB", "1")]).await;
    let call = |tool: &'static str, args: Value| {
        let client = &client;
        async move {
            let r = common::call(client, tool, args.clone()).await;
            assert!(!r.is_error, "{tool} {args}: {}", r.text);
            r.structured
        }
    };
    let records = csv_records(&home.path().join("datasets/d.csv"), 2);
    let mut first = None;
    for job in ["a", "b", "c"] {
        call("train_supervised_classifier", json!({
            "algorithm": "random_forest", "train_data_uri": "datasets/d.csv", "target_column": "label",
            "training_job_name": job, "hyperparameters": {"n_estimators": 100}
        }))
        .await;
        let size: u64 = std::fs::read_dir(home.path().join("models").join(job))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(
            size > 1024 * 1024 / 2,
            "model {job} is too small ({size} bytes) to test a 1 MB budget"
        );
        let p = call(
            "predict",
            json!({"model_uri": format!("models/{job}"), "records": records}),
        )
        .await;
        first.get_or_insert(p);
    }
    let status = call("get_serving_status", json!({})).await;
    assert!(status["models_loaded"].as_u64().unwrap() <= 2, "{status}");
    assert!(status["models_evicted"].as_u64().unwrap() >= 1, "{status}");
    // An evicted model is loaded again, and says the same.
    let again = call(
        "predict",
        json!({"model_uri": "models/a", "records": records}),
    )
    .await;
    assert_eq!(again["predictions"], first.unwrap()["predictions"]);
}
