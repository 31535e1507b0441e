//! Batch predictions and the prediction log, over MCP with the real binary: a table many times
//! larger than `MLOPS_MAX_TABLE_BYTES` is scored a chunk at a time with the server's memory
//! growing far less than the table, giving exactly what `predict` gives for the same rows; a
//! cancelled job leaves no output; logged requests land as Parquet with inputs, outputs and the
//! version; a store that cannot be written drops and counts rows instead of failing requests.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Map, Value, json};

/// Resident and peak memory of a process, in kB (`VmRSS`, `VmHWM`).
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Rows of a CSV file as objects (numbers where the text is one), at the given positions.
fn csv_rows(path: &std::path::Path, at: &[usize]) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let lines: Vec<&str> = lines.collect();
    at.iter()
        .map(|&i| {
            header
                .iter()
                .zip(lines[i].split(','))
                .filter(|(h, _)| **h != "label")
                .map(|(h, v)| {
                    let v = if v.is_empty() {
                        Value::Null
                    } else {
                        v.parse::<f64>().map_or_else(|_| json!(v), |x| json!(x))
                    };
                    (h.to_string(), v)
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_table_larger_than_the_limit_is_scored_in_bounded_memory() {
    let home = tempfile::tempdir().unwrap();
    common::generate(
        "classification",
        600,
        &home.path().join("datasets/train.csv"),
    );
    common::generate_seeded(
        "classification",
        20_000,
        4,
        &home.path().join("datasets/small.csv"),
    );
    common::generate_seeded(
        "classification",
        80_000,
        5,
        &home.path().join("datasets/big.csv"),
    );
    let size = std::fs::metadata(home.path().join("datasets/big.csv"))
        .unwrap()
        .len();
    let limit = 256 * 1024;
    assert!(
        size > 40 * limit,
        "the table ({size} bytes) must dwarf the limit"
    );
    let (client, pid) = Server::spawn(
        home.path(),
        &[("MLOPS_MAX_TABLE_BYTES", &limit.to_string())],
    )
    .await;
    let call = |tool: &'static str, args: Value| {
        let client = &client;
        async move {
            let r = common::call(client, tool, args.clone()).await;
            assert!(!r.is_error, "{tool} {args}: {}", r.text);
            r.structured
        }
    };
    call("train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": "datasets/train.csv", "target_column": "label",
        "training_job_name": "rf", "hyperparameters": {"n_estimators": 20}
    }))
    .await;
    // The table is too large to read whole.
    let r = common::call(
        &client,
        "predict",
        json!({"model_uri": "models/rf", "data_uri": "datasets/big.csv"}),
    )
    .await;
    assert!(
        r.is_error && r.text.contains("MLOPS_MAX_TABLE_BYTES"),
        "{}",
        r.text
    );

    // A table four times larger costs no more memory than a small one: it is read a chunk at a
    // time (the small one first, so what any first run allocates is counted there).
    let small = call("batch_predict", json!({
        "model_uri": "models/rf", "data_uri": "datasets/small.csv", "job_name": "small", "chunk_rows": 4000
    }))
    .await;
    assert_eq!(small["result"]["rows_out"], 20_000, "{small}");
    let (_, peak_small) = memory_kb(pid);
    let job = call(
        "batch_predict",
        json!({
            "model_uri": "models/rf", "data_uri": "datasets/big.csv", "job_name": "big",
            "chunk_rows": 4000, "passthrough_columns": ["customer_id"]
        }),
    )
    .await;
    let (_, peak_big) = memory_kb(pid);
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["rows_in"], 80_000);
    assert_eq!(job["result"]["rows_out"], 80_000);
    assert_eq!(job["result"]["chunks"], 20);
    let grew = peak_big.saturating_sub(peak_small) * 1024;
    assert!(
        grew < size / 2,
        "scoring a {size}-byte table raised the peak by {grew} bytes over a table a quarter its size: it was not streamed"
    );
    let parts: Vec<String> = std::fs::read_dir(home.path().join("predictions/big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        parts.iter().filter(|p| p.starts_with("part-")).count(),
        20,
        "{parts:?}"
    );
    assert!(
        parts.contains(&"_manifest.json".to_string())
            && !parts.iter().any(|p| p.starts_with("_incomplete"))
    );

    // The same numbers as predict on a sample of rows (from the first, a middle and the last part).
    let picks = [0, 1, 3999, 4000, 31_337, 79_999];
    let sample = csv_rows(&home.path().join("datasets/big.csv"), &picks);
    let predicted = call("predict", json!({"model_uri": "models/rf", "records": sample, "passthrough_columns": ["customer_id"]})).await;
    for (pick, want) in picks
        .iter()
        .zip(predicted["predictions"].as_array().unwrap())
    {
        let part = pick / 4000;
        let page = call(
            "load_dataset",
            json!({
                "dataset_uri": format!("predictions/big/part-{part:05}.parquet"),
                "offset": pick % 4000, "limit": 1, "profile": false
            }),
        )
        .await;
        let row = &page["rows"][0];
        assert_eq!(row["customer_id"], want["customer_id"], "{page}");
        assert_eq!(row["label"], want["label"], "row {pick}");
        for (class, p) in want["probabilities"].as_object().unwrap() {
            assert_eq!(row[format!("proba_{class}")], *p, "row {pick}");
        }
    }

    // Cancelled: it stops within a chunk and leaves nothing behind.
    call(
        "batch_predict",
        json!({
            "model_uri": "models/rf", "data_uri": "datasets/big.csv", "job_name": "stopped",
            "chunk_rows": 500, "wait": false
        }),
    )
    .await;
    call("cancel_batch_prediction", json!({"job_name": "stopped"})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = call("get_batch_prediction", json!({"job_name": "stopped"})).await;
        if s["status"] == "cancelled" {
            break;
        }
        assert!(s["status"] == "running" && Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = home.path().join("predictions/stopped");
    let files = std::fs::read_dir(&left).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0, "a cancelled job left files in {left:?}");

    // Bad input: an existing output, a chunk size out of range, a missing table.
    let r = common::call(
        &client,
        "batch_predict",
        json!({"model_uri": "models/rf", "data_uri": "datasets/big.csv", "job_name": "big"}),
    )
    .await;
    assert!(
        r.is_error && r.text.contains("overwrite: true"),
        "{}",
        r.text
    );
    let r = common::call(
        &client,
        "batch_predict",
        json!({"model_uri": "models/rf", "data_uri": "datasets/big.csv", "chunk_rows": 0}),
    )
    .await;
    assert!(r.is_error && r.text.contains("chunk_rows"), "{}", r.text);
    let r = common::call(
        &client,
        "batch_predict",
        json!({"model_uri": "models/rf", "data_uri": "datasets/none.csv"}),
    )
    .await;
    assert!(
        r.is_error && r.text.contains("does not exist"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn logged_requests_land_as_parquet_and_a_broken_store_only_drops_rows() {
    let s = Server::start().await;
    let again = Server::connect_with(
        s.home.path(),
        &[("MLOPS_PREDICTION_LOG_FLUSH_SECONDS", "0.2")],
    )
    .await;
    s.generate("classification", 400, "datasets/d.csv");
    s.ok("train_supervised_classifier", json!({
        "algorithm": "random_forest", "train_data_uri": "datasets/d.csv", "target_column": "label",
        "training_job_name": "rf", "hyperparameters": {"n_estimators": 10}
    }))
    .await;
    s.ok(
        "register_model",
        json!({"model_name": "churn", "model_uri": "models/rf"}),
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
    let records = csv_rows(&s.path("datasets/d.csv"), &[0, 1, 2]);
    s.err(
        "set_prediction_logging",
        json!({"model_name": "churn", "sample_rate": 1.5}),
        "between 0 and 1",
    )
    .await;
    // Set on one server, followed by the other through the database.
    s.ok("set_prediction_logging", json!({"model_name": "churn"}))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..4 {
        let r = common::call(
            &again,
            "predict",
            json!({"model_name": "churn", "records": records}),
        )
        .await;
        assert!(!r.is_error, "{}", r.text);
    }
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let folder = s.path(&format!("predictions/log/churn/date={day}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !folder.exists() || std::fs::read_dir(&folder).unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "no prediction log in {folder:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let part = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let logged = s
        .ok("load_dataset", json!({"dataset_uri": format!("predictions/log/churn/date={day}/{}", part.to_string_lossy()), "limit": 20}))
        .await;
    assert_eq!(logged["row_count"], 12, "{logged}");
    let row = &logged["rows"][0];
    assert_eq!(row["_model_version"], 1);
    assert_eq!(row["f0"], records[0]["f0"]);
    assert_eq!(row["segment"], records[0]["segment"]);
    assert!(
        row["_label"].is_string() && row["_proba_0"].is_number() && row["_ts_ms"].is_number(),
        "{row}"
    );
    let status = common::call(&again, "get_serving_status", json!({}))
        .await
        .structured;
    assert_eq!(status["prediction_log_rows_written"], 12, "{status}");

    // A store that cannot take the log: requests still answer; rows are dropped and counted.
    std::fs::create_dir_all(s.path("predictions/log")).unwrap();
    s.ok(
        "register_model",
        json!({"model_name": "broken", "model_uri": "models/rf"}),
    )
    .await;
    s.ok(
        "set_model_approval",
        json!({"model_name": "broken", "version": 1, "approval_status": "Approved"}),
    )
    .await;
    s.ok(
        "transition_model_stage",
        json!({"model_name": "broken", "version": 1, "stage": "Production"}),
    )
    .await;
    std::fs::write(
        s.path("predictions/log/broken"),
        "a file where the log's folder would go",
    )
    .unwrap();
    s.ok("set_prediction_logging", json!({"model_name": "broken"}))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = common::call(
        &again,
        "predict",
        json!({"model_name": "broken", "records": records}),
    )
    .await;
    assert!(!r.is_error, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = common::call(&again, "get_serving_status", json!({}))
            .await
            .structured;
        if status["prediction_log_rows_dropped"] == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed rows were not counted: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
