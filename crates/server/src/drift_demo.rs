//! `mlops-mcp drift-demo`: the monitoring loop on generated data, driven through the MCP tools.
//!
//! v1 is trained, judged and promoted by the workflow; it is served with the prediction log on;
//! rows that drifted (a shifted feature and a segment never seen) are sent to it; a monitor finds
//! the drift, notifies, opens a retraining issue and starts the workflow on it; the workflow
//! trains v2 on the new labelled rows and promotes it; and the endpoint answers with v2.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use mlops_core::{ArtifactStore, Config};
use mlops_data::{SyntheticKind, TableFormat, encode, generate_dataset};
use polars::prelude::*;
use serde_json::{Map, Value, json};

use crate::demo::Session;

/// Drift-demo settings.
pub struct DriftDemoOptions {
    pub rows: usize,
    pub seed: u64,
    pub model_name: String,
}

/// The rows a model was trained on, and new rows that drifted: `f6` shifted by 3 and one row in
/// ten from a `segment` training never saw.
fn tables(rows: usize, seed: u64) -> anyhow::Result<(DataFrame, DataFrame)> {
    let train = generate_dataset(SyntheticKind::Classification, rows, seed)?;
    let new = generate_dataset(SyntheticKind::Classification, rows, seed + 1)?
        .lazy()
        .with_columns([
            (col("f6") + lit(3.0)).alias("f6"),
            when(col("customer_id").str().ends_with(lit("7")))
                .then(lit("enterprise"))
                .otherwise(col("segment"))
                .alias("segment"),
        ])
        .collect()?;
    Ok((train, new))
}

/// The rows of `df` as JSON objects (the raw columns `predict` takes).
fn records(df: &DataFrame) -> Vec<Map<String, Value>> {
    let columns = df.columns();
    (0..df.height())
        .map(|i| {
            columns
                .iter()
                .filter(|c| c.name() != "label")
                .map(|c| {
                    let v = match c.get(i) {
                        Ok(AnyValue::Float64(x)) => json!(x),
                        Ok(AnyValue::Int64(x)) => json!(x),
                        Ok(AnyValue::String(s)) => json!(s),
                        Ok(AnyValue::StringOwned(s)) => json!(s.as_str()),
                        _ => Value::Null,
                    };
                    (c.name().to_string(), v)
                })
                .collect()
        })
        .collect()
}

async fn until(
    session: &Session,
    tool: &str,
    args: Value,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let Value::Object(arguments) = args.clone() else {
            bail!("arguments must be an object")
        };
        let r = session
            .0
            .call_tool(
                rmcp::model::CallToolRequestParams::new(tool.to_string()).with_arguments(arguments),
            )
            .await?;
        let v = r.structured_content.unwrap_or(Value::Null);
        if done(&v) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{tool} did not reach the expected state in {secs} s: {v}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the loop against the artifact root and database of `config`.
pub async fn run(config: &Config, opts: DriftDemoOptions) -> anyhow::Result<()> {
    let store = ArtifactStore::from_config(config)?;
    let (mut train, mut new) = tables(opts.rows, opts.seed)?;
    for (name, df) in [("train", &mut train), ("new", &mut new)] {
        let key = store.key(&format!("datasets/drift-demo-{name}.csv"))?;
        store.put(&key, encode(df, TableFormat::Csv)?).await?;
    }
    println!(
        "Generated {} training rows and {} new rows (f6 shifted, a new segment) under datasets/",
        opts.rows, opts.rows
    );
    let session = Session::start(&[("MLOPS_PREDICTION_LOG_FLUSH_SECONDS", "0.5")]).await?;
    let model = &opts.model_name;
    let body = format!(
        "```yaml\ndataset: datasets/drift-demo-train.csv\ntarget_column: label\ntask_type: classification\nalgorithm: random_forest\nhyperparameters: {{n_estimators: 50}}\nmetric: accuracy\nthreshold: 0.7\nmodel_name: {model}\nseed: {}\n```\n",
        opts.seed
    );
    let started = session
        .call(
            "1/6 train v1 (workflow)",
            "start_workflow",
            json!({"body": body}),
        )
        .await?;
    let v1 = until(
        &session,
        "get_workflow_status",
        json!({"execution_id": started["id"]}),
        300,
        |r| r["status"] != "running",
    )
    .await?;
    if v1["status"] != "succeeded" {
        bail!(
            "the workflow for v1 ended {}: {}",
            v1["status"],
            v1["context"]["reason"]
        );
    }
    println!("  v1 trained, judged and promoted to Production");

    session
        .call(
            "2/6 serve with the log on",
            "set_prediction_logging",
            json!({"model_name": model}),
        )
        .await?;
    let rows = records(&new);
    for chunk in rows.chunks(1000) {
        session
            .0
            .call_tool(
                rmcp::model::CallToolRequestParams::new("predict").with_arguments(
                    json!({"model_name": model, "records": chunk})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            )
            .await?;
    }
    println!(
        "\n[3/6 drifted traffic] {} rows sent to `{model}` in {} predict calls",
        rows.len(),
        rows.len().div_ceil(1000)
    );
    until(
        &session,
        "detect_drift",
        json!({"model_name": model}),
        60,
        |r| r["current_rows"].as_u64() >= Some(rows.len() as u64),
    )
    .await?;

    session
        .call("4/6 watch", "create_monitor", json!({
            "name": format!("{model}-drift"), "model_name": model, "every_seconds": 2, "window_seconds": 3600,
            "actions": {"open_retraining_issue": true, "start_workflow": true},
            "retrain": {"data_uri": "datasets/drift-demo-new.csv", "threshold": 0.7}
        }))
        .await?;
    let runs = until(
        &session,
        "list_monitor_runs",
        json!({"name": format!("{model}-drift")}),
        120,
        |r| {
            r["runs"]
                .as_array()
                .is_some_and(|runs| runs.iter().any(|r| r["execution_id"].is_string()))
        },
    )
    .await?;
    session
        .call(
            "5/6 one retraining is enough for a demo",
            "pause_monitor",
            json!({"name": format!("{model}-drift")}),
        )
        .await?;
    let fired = runs["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["execution_id"].is_string()))
        .ok_or_else(|| anyhow!("no monitor run started the workflow"))?;
    println!(
        "\n[5/6 drift found] {} drifted; retraining issue #{} opened, workflow {} started",
        fired["drifted_features"],
        fired["issue_number"],
        fired["execution_id"].as_str().unwrap_or_default()
    );
    let v2 = until(
        &session,
        "get_workflow_status",
        json!({"execution_id": fired["execution_id"]}),
        300,
        |r| r["status"] != "running",
    )
    .await?;
    if v2["status"] != "succeeded" {
        bail!(
            "the retraining workflow ended {}: {}",
            v2["status"],
            v2["context"]["reason"]
        );
    }
    let answer = until(
        &session,
        "predict",
        json!({"model_name": model, "records": [rows[0].clone()]}),
        30,
        |r| r["version"] == 2,
    )
    .await
    .context("waiting for the endpoint to answer with v2")?;
    println!(
        "\n[6/6 retrained] the workflow trained v2 on the new rows and promoted it; `{model}` answers with version {}",
        answer["version"]
    );
    session.0.cancel().await?;
    Ok(())
}
