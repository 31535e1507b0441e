//! End to end over stdio: the real binary, a real MCP client (rmcp), the whole spine pipeline on
//! generated data, and bad input that must yield tool errors and leave nothing behind.

mod common;

use common::Server;
use serde_json::json;

const SPINE_TOOLS: [&str; 6] = [
    "load_dataset",
    "preprocess_supervised",
    "split_dataset",
    "train_supervised_classifier",
    "evaluate_classifier",
    "register_model",
];

#[tokio::test]
async fn lists_every_tool_with_a_schema_and_runs_the_pipeline() {
    let s = Server::start().await;
    let info = s.client.peer_info().expect("initialize answered");
    assert_eq!(
        info.server_info.as_ref().unwrap().name,
        "unified-mlops-mcp-server"
    );

    let tools = s.client.list_all_tools().await.unwrap();
    for name in SPINE_TOOLS {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(tool.input_schema["type"], "object", "{name}");
        assert!(tool.input_schema.contains_key("properties"), "{name}");
        assert!(
            tool.output_schema.is_none(),
            "{name}: output schemas are off by default"
        );
        assert!(
            tool.description.as_ref().is_some_and(|d| d.len() > 40),
            "{name}"
        );
    }
    let train = tools
        .iter()
        .find(|t| t.name == "train_supervised_classifier")
        .unwrap();
    assert_eq!(
        train.input_schema["required"],
        json!(["algorithm", "train_data_uri"])
    );

    s.generate("classification", 3000, "datasets/customers.csv");
    let loaded = s
        .call(
            "load_dataset",
            json!({"dataset_uri": "datasets/customers.csv"}),
        )
        .await;
    assert!(!loaded.is_error, "{}", loaded.text);
    assert_eq!(loaded.structured["row_count"], 3000);
    assert_eq!(loaded.structured["rows"].as_array().unwrap().len(), 5);
    let f1 = loaded.structured["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "f1")
        .unwrap();
    assert!(
        f1["null_count"].as_u64().unwrap() > 0,
        "the generator leaves values missing in f1"
    );

    let split = s
        .call(
            "split_dataset",
            json!({"dataset_uri": "datasets/customers.csv", "stratify_column": "label", "seed": 7}),
        )
        .await;
    assert!(!split.is_error, "{}", split.text);
    let rows = |part: &str| split.structured[part]["rows"].as_u64().unwrap();
    assert_eq!(rows("train") + rows("validation") + rows("test"), 3000);
    assert_eq!(rows("test"), 450);

    let prep = s
        .call(
            "preprocess_supervised",
            json!({
                "dataset_uri": split.structured["train"]["uri"],
                "target_column": "label", "task_type": "classification",
                "apply_to": [split.structured["validation"]["uri"], split.structured["test"]["uri"]]
            }),
        )
        .await;
    assert!(!prep.is_error, "{}", prep.text);
    let dropped: Vec<&str> = prep.structured["dropped_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["column"].as_str().unwrap())
        .collect();
    assert_eq!(
        dropped,
        vec!["customer_id"],
        "the identifier column is dropped"
    );
    assert!(
        prep.structured["feature_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "segment=premium")
    );
    assert!(
        s.path("processed/customers/preprocessed/pipeline.json")
            .is_file()
    );

    let job = s
        .call("train_supervised_classifier", json!({
            "algorithm": "random_forest", "train_data_uri": prep.structured["train_data_uri"],
            "validation_data_uri": prep.structured["validation_data_uri"], "training_job_name": "rf-1",
            "hyperparameters": {"n_estimators": 40, "max_depth": 10}
        }))
        .await;
    assert!(!job.is_error, "{}", job.text);
    assert_eq!(job.structured["status"], "completed");
    let oob = job.structured["metrics"]["oob_accuracy"].as_f64().unwrap();
    assert!(oob > 0.85, "out-of-bag accuracy {oob}");
    assert!(
        !job.structured["metrics_history"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Evaluate on the raw test split: the model applies its own pipeline.
    let eval = s
        .call(
            "evaluate_classifier",
            json!({"model_uri": "models/rf-1", "test_data_uri": split.structured["test"]["uri"]}),
        )
        .await;
    assert!(!eval.is_error, "{}", eval.text);
    let accuracy = eval.structured["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.85,
        "test accuracy {accuracy}: chance is about 0.6"
    );
    let cm = eval.structured["confusion_matrix"].as_array().unwrap();
    let total: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 450);
    // The processed test split gives the same answer as the raw one.
    let eval2 = s
        .call(
            "evaluate_classifier",
            json!({"model_uri": "models/rf-1", "test_data_uri": prep.structured["test_data_uri"]}),
        )
        .await;
    assert_eq!(eval2.structured["accuracy"], eval.structured["accuracy"]);

    for expected in 1..=2 {
        let reg = s
            .call("register_model", json!({"model_name": "churn", "model_uri": "models/rf-1", "metrics": {"accuracy": accuracy}}))
            .await;
        assert!(!reg.is_error, "{}", reg.text);
        assert_eq!(reg.structured["version"], expected);
        assert_eq!(
            reg.structured["metrics"]["accuracy"].as_f64().unwrap(),
            accuracy
        );
        assert_eq!(reg.structured["lineage"]["training_job_name"], "rf-1");
    }
    let listed = s
        .call("list_model_versions", json!({"model_name": "churn"}))
        .await;
    assert_eq!(listed.structured["total"], 2);

    // A second server process on the same home sees the registry and the finished job.
    s.client.cancel().await.unwrap();
    let again = common::Server::connect(s.home.path()).await;
    let got = common::call(
        &again,
        "get_model_version",
        json!({"model_name": "churn", "version": 2}),
    )
    .await;
    assert!(!got.is_error, "{}", got.text);
    let metrics = common::call(
        &again,
        "get_training_metrics",
        json!({"training_job_name": "rf-1"}),
    )
    .await;
    assert_eq!(metrics.structured["status"], "completed");
    assert!(
        (metrics.structured["metrics"]["oob_accuracy"]
            .as_f64()
            .unwrap()
            - oob)
            .abs()
            < 1e-12
    );
}

#[tokio::test]
async fn bad_input_yields_actionable_tool_errors_and_no_partial_files() {
    let s = Server::start().await;
    s.generate("classification", 300, "datasets/ok.csv");
    std::fs::write(s.path("datasets/empty.csv"), "").unwrap();
    std::fs::write(s.path("datasets/header_only.csv"), "a,b,label\n").unwrap();
    std::fs::write(
        s.path("datasets/malformed.csv"),
        "a,b\n1,2\n3,4,5,6\n\"unterminated,7\n",
    )
    .unwrap();
    std::fs::write(s.path("datasets/notes.txt.gz"), "x").unwrap();

    let cases = [
        (
            "load_dataset",
            json!({"dataset_uri": "datasets/missing.csv"}),
            "does not exist",
        ),
        (
            "load_dataset",
            json!({"dataset_uri": "../../etc/passwd"}),
            "not allowed",
        ),
        (
            "load_dataset",
            json!({"dataset_uri": "/etc/passwd"}),
            "outside the artifact root",
        ),
        (
            "load_dataset",
            json!({"dataset_uri": "datasets/empty.csv"}),
            "empty.csv",
        ),
        (
            "load_dataset",
            json!({"dataset_uri": "datasets/malformed.csv"}),
            "malformed.csv",
        ),
        (
            "load_dataset",
            json!({"dataset_uri": "datasets/notes.txt.gz"}),
            "use a .csv or .parquet file",
        ),
        (
            "load_dataset",
            json!({"dataset_uri": "ftp://host/x.csv"}),
            "not supported",
        ),
        (
            "load_dataset",
            json!({"dataset_ur": "datasets/ok.csv"}),
            "unknown field `dataset_ur`",
        ),
        (
            "split_dataset",
            json!({"dataset_uri": "datasets/header_only.csv"}),
            "no data rows",
        ),
        (
            "split_dataset",
            json!({"dataset_uri": "datasets/ok.csv", "train_fraction": 0.9}),
            "add up to 1",
        ),
        (
            "preprocess_supervised",
            json!({"dataset_uri": "datasets/ok.csv", "target_column": "labels", "task_type": "classification"}),
            "column `labels` not found; available columns: customer_id, f0",
        ),
        (
            "preprocess_supervised",
            json!({"dataset_uri": "datasets/ok.csv", "target_column": "segment", "task_type": "regression"}),
            "is not numeric",
        ),
        (
            "preprocess_supervised",
            json!({"dataset_uri": "datasets/ok.csv", "target_column": "label", "task_type": "clustering"}),
            "unknown variant `clustering`",
        ),
        (
            "train_supervised_classifier",
            json!({"algorithm": "deep_magic", "train_data_uri": "datasets/ok.csv"}),
            "unknown variant `deep_magic`, expected one of `random_forest`, `xgboost`, `logistic_regression`",
        ),
        (
            "train_supervised_classifier",
            json!({"algorithm": "random_forest", "train_data_uri": "datasets/ok.csv"}),
            "give target_column",
        ),
        (
            "train_supervised_classifier",
            json!({"algorithm": "random_forest", "train_data_uri": "datasets/ok.csv", "target_column": "label", "hyperparameters": {"n_estimators": -5}}),
            "n_estimators must be between 1 and 5000 (got -5)",
        ),
        (
            "train_supervised_classifier",
            json!({"algorithm": "random_forest", "train_data_uri": "datasets/ok.csv", "target_column": "label", "training_job_name": "../evil"}),
            "training_job_name",
        ),
        (
            "evaluate_classifier",
            json!({"model_uri": "models/none", "test_data_uri": "datasets/ok.csv"}),
            "does not exist",
        ),
        (
            "register_model",
            json!({"model_name": "m", "model_uri": "models/none"}),
            "no model at `models/none`",
        ),
    ];
    let before = s.files();
    for (tool, args, expected) in cases {
        let r = s.call(tool, args.clone()).await;
        assert!(r.is_error, "{tool} {args} should fail, got {}", r.text);
        assert!(
            r.text.contains(expected),
            "{tool} {args}: `{}` lacks `{expected}`",
            r.text
        );
        assert_eq!(s.files(), before, "{tool} {args} left files behind");
    }

    // An unknown tool is a protocol error that names the closest tool.
    let err = s
        .client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("load_datset")
                .with_arguments(serde_json::Map::new()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean `load_dataset`"), "{err}");

    // The server keeps serving.
    let ok = s
        .call("load_dataset", json!({"dataset_uri": "datasets/ok.csv"}))
        .await;
    assert!(!ok.is_error, "{}", ok.text);
}

#[tokio::test]
async fn output_schemas_are_published_when_asked() {
    let home = tempfile::tempdir().unwrap();
    let client =
        common::Server::connect_with(home.path(), &[("MLOPS_TOOL_OUTPUT_SCHEMAS", "1")]).await;
    let tools = client.list_all_tools().await.unwrap();
    for tool in &tools {
        let schema = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no output schema", tool.name));
        assert_eq!(schema["type"], "object", "{}", tool.name);
    }
    let eval = tools
        .iter()
        .find(|t| t.name == "evaluate_classifier")
        .unwrap();
    assert!(eval.output_schema.as_ref().unwrap()["properties"]["confusion_matrix"].is_object());
}

#[test]
fn list_tools_prints_each_tool_with_its_capability() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("--list-tools")
        .env("MLOPS_HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in SPINE_TOOLS {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("load_dataset") && l.contains("data_preparation"))
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("register_model") && l.contains("model_registry"))
    );
}
