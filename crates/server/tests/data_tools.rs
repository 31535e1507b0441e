//! The data-preparation tools beyond the spine, over MCP, on generated and hand-made data.

mod common;

use common::Server;
use serde_json::{Value, json};

#[tokio::test]
async fn validate_engineer_and_prepare() {
    let s = Server::start().await;
    s.generate("classification", 600, "datasets/c.csv");
    s.generate("clustering", 400, "datasets/blobs.csv");
    std::fs::write(
        s.path("datasets/messy.csv"),
        "id,amount,plan,empty,when,label\n1,10.5,a,,2024-01-05,0\n2,n/a,b,,2024-02-10,1\n3,7,a,,2024-03-15,0\n3,7,a,,2024-03-15,0\n",
    )
    .unwrap();

    let report = s.ok("validate_data", json!({
        "dataset_uri": "datasets/messy.csv", "target_column": "label",
        "expectations": {"required_columns": ["amount", "region"], "columns": {"plan": {"allowed_values": ["a"]}}}
    }))
    .await;
    assert_eq!(report["passed"], false);
    assert_eq!(report["duplicate_rows"], 1);
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for c in [
        "required_column",
        "allowed_values",
        "all_missing",
        "mixed_types",
        "duplicates",
    ] {
        assert!(checks.contains(&c), "{c} missing from {checks:?}");
    }
    let clean = s
        .ok(
            "validate_data",
            json!({"dataset_uri": "datasets/c.csv", "target_column": "label"}),
        )
        .await;
    assert_eq!(clean["passed"], true, "{clean}");

    // 200 ordinary rows and 5 with one wild value each.
    let mut spiky = String::from("a,b,kind\n");
    for i in 0..205 {
        let wild = if i >= 200 { 1000.0 } else { (i % 10) as f64 };
        spiky.push_str(&format!(
            "{},{wild},{}\n",
            i % 7,
            if i % 2 == 0 { "x" } else { "y" }
        ));
    }
    std::fs::write(s.path("datasets/spiky.csv"), spiky).unwrap();
    let unsup = s.ok("preprocess_unsupervised",
        json!({"dataset_uri": "datasets/spiky.csv", "outliers": {"zscore": {"threshold": 3.0}}}),
    )
    .await;
    assert_eq!(unsup["outlier_rows_removed"], 5);
    assert_eq!(
        unsup["feature_names"],
        json!(["a", "b", "kind=x", "kind=y"])
    );
    let loaded = s
        .ok("load_dataset", json!({"dataset_uri": unsup["data_uri"]}))
        .await;
    assert_eq!(loaded["row_count"], 200);
    let iqr = s.ok("preprocess_unsupervised", json!({"dataset_uri": "datasets/spiky.csv", "outliers": {"iqr": {"factor": 1.5}}, "output_name": "spiky-iqr"})).await;
    assert_eq!(iqr["outlier_rows_removed"], 5);
    let blobs = s
        .ok(
            "preprocess_unsupervised",
            json!({"dataset_uri": "datasets/blobs.csv"}),
        )
        .await;
    assert_eq!(blobs["feature_names"].as_array().unwrap().len(), 5);

    let split = s
        .ok(
            "split_dataset",
            json!({"dataset_uri": "datasets/c.csv", "stratify_column": "label"}),
        )
        .await;
    let fe = s
        .ok(
            "feature_engineering",
            json!({
                "dataset_uri": split["train"]["uri"], "apply_to": [split["test"]["uri"]],
                "operations": [
                    {"derive": {"name": "ratio", "expression": "f0 / (abs(f2) + 1)"}},
                    {"polynomial": {"columns": ["f0", "f1"], "interaction_only": true}},
                    {"bin": {"column": "f7", "bins": 4, "strategy": "quantile"}},
                    {"select": {"method": {"top_k": {"target": "label", "k": 6}}}}
                ]
            }),
        )
        .await;
    assert!(
        fe["added_columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "ratio"),
        "{fe}"
    );
    let test_out = s
        .ok(
            "load_dataset",
            json!({"dataset_uri": fe["outputs"][1]["uri"]}),
        )
        .await;
    let train_out = s
        .ok("load_dataset", json!({"dataset_uri": fe["data_uri"]}))
        .await;
    let names = |v: &Value| {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&train_out),
        names(&test_out),
        "train and test get the same columns"
    );

    // Engineered data trains like any other table.
    let job = s.ok("train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": fe["data_uri"], "target_column": "label",
        "validation_data_uri": fe["outputs"][1]["uri"], "hyperparameters": {"n_estimators": 20}
    }))
    .await;
    assert!(
        job["metrics"]["validation_accuracy"].as_f64().unwrap() > 0.8,
        "{job}"
    );

    std::fs::write(
        s.path("datasets/log.csv"),
        "x,v,a,r,x2,v2,d\n0.0,1.0,0,1.0,0.1,1.0,0\n0.1,1.0,1,1.0,0.2,0.9,1\n",
    )
    .unwrap();
    let cols = json!({"state_columns": ["x", "v"], "next_state_columns": ["x2", "v2"], "action_column": "a", "reward_column": "r", "done_column": "d"});
    let replay = s
        .ok(
            "preprocess_reinforcement",
            json!({"dataset_uri": "datasets/log.csv", "transitions": cols}),
        )
        .await;
    assert_eq!(replay["replay"]["episodes"], 1);
    assert!(
        replay["replay_uri"]
            .as_str()
            .unwrap()
            .ends_with("processed/log/replay/replay.parquet")
    );
    let env = s
        .ok(
            "preprocess_reinforcement",
            json!({"environment": {"name": "CartPole-v1"}}),
        )
        .await;
    assert_eq!(env["environment"]["max_episode_steps"], 500);

    let saved = s.ok("save_processed_data",
        json!({"dataset_uri": blobs["data_uri"], "output_name": "blobs-final", "format": "csv"}),
    )
    .await;
    assert!(
        saved["uri"]
            .as_str()
            .unwrap()
            .ends_with("processed/blobs-final/blobs.csv")
    );
    assert!(
        saved["pipeline_uri"].as_str().is_some(),
        "the pipeline travels with the data"
    );

    std::fs::write(s.path("datasets/nulls.csv"), "a,b\n,1\n,2\n").unwrap();
    s.err("feature_engineering", json!({"dataset_uri": "datasets/c.csv", "operations": [{"derive": {"name": "z", "expression": "nope * 2"}}]}), "column `nope` not found").await;
    s.err("feature_engineering", json!({"dataset_uri": "datasets/c.csv", "operations": [{"derive": {"name": "z", "expression": "segment * 2"}}]}), "not numeric").await;
    s.err("feature_engineering", json!({"dataset_uri": "datasets/c.csv", "operations": [{"derive": {"name": "f0", "expression": "f1"}}]}), "already exists").await;
    s.err(
        "preprocess_unsupervised",
        json!({"dataset_uri": "datasets/nulls.csv", "drop_columns": ["b"]}),
        "no usable feature columns",
    )
    .await;
    s.err(
        "preprocess_unsupervised",
        json!({"dataset_uri": "datasets/blobs.csv", "outliers": {"zscore": {"threshold": -1}}}),
        "positive number",
    )
    .await;
    s.err(
        "preprocess_reinforcement",
        json!({"environment": {"name": "Pong"}}),
        "unknown environment `Pong`",
    )
    .await;
    s.err(
        "preprocess_reinforcement",
        json!({"dataset_uri": "datasets/log.csv"}),
        "give either dataset_uri with transitions",
    )
    .await;
    s.err(
        "validate_data",
        json!({"dataset_uri": "datasets/c.csv", "expectations": {"max_missing_fraction": 2}}),
        "between 0 and 1",
    )
    .await;
    s.err(
        "save_processed_data",
        json!({"dataset_uri": "datasets/c.csv", "output_name": "../up"}),
        "output_name",
    )
    .await;

    // A file above the configured read limit is refused before it is read, naming the limit.
    let small =
        common::Server::connect_with(s.home.path(), &[("MLOPS_MAX_TABLE_BYTES", "1000")]).await;
    let r = common::call(
        &small,
        "load_dataset",
        json!({"dataset_uri": "datasets/c.csv"}),
    )
    .await;
    assert!(
        r.is_error
            && r.text.contains("more than the 1000 bytes")
            && r.text.contains("MLOPS_MAX_TABLE_BYTES"),
        "{}",
        r.text
    );
}
