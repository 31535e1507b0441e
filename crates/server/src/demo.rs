//! `mlops-mcp demo`: the whole pipeline on generated data, driven through the MCP tools.
//!
//! It writes a sample data set into the artifact root, starts `mlops-mcp serve` as a child process,
//! and calls load → split → preprocess → train → evaluate → register as any MCP client would.

use std::process::Stdio;

use anyhow::{Context, anyhow, bail};
use mlops_core::{ArtifactStore, Config};
use mlops_data::{SyntheticKind, generate_dataset};
use mlops_data::{TableFormat, encode};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// Demo settings.
pub struct DemoOptions {
    pub rows: usize,
    pub seed: u64,
    pub model_name: String,
}

/// A connected MCP client that prints each step.
pub(crate) struct Session(pub(crate) RunningService<RoleClient, ()>);

impl Session {
    /// Starts `mlops-mcp serve` (this program, with `env` added) and connects to it over stdio.
    pub(crate) async fn start(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating this program to start the server")?;
        let (transport, _) =
            TokioChildProcess::builder(tokio::process::Command::new(exe).configure(|cmd| {
                cmd.arg("serve")
                    .env("LOG_LEVEL", "WARN")
                    .envs(env.iter().copied());
            }))
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting `mlops-mcp serve`")?;
        let session = Session(
            ().serve(transport)
                .await
                .context("initializing the MCP session")?,
        );
        let tools = session.0.list_all_tools().await?;
        println!(
            "Connected to the MCP server over stdio: {} tools",
            tools.len()
        );
        Ok(session)
    }

    pub(crate) async fn call(&self, step: &str, tool: &str, args: Value) -> anyhow::Result<Value> {
        let Value::Object(arguments) = args else {
            bail!("arguments must be an object")
        };
        let result = self
            .0
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
            .await?;
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        if result.is_error == Some(true) {
            bail!("{tool} failed: {}", text.join(" "));
        }
        println!(
            "\n[{step}] {tool}\n  {}",
            text.first()
                .cloned()
                .unwrap_or_default()
                .replace('\n', "\n  ")
        );
        result
            .structured_content
            .ok_or_else(|| anyhow!("{tool} returned no structured content"))
    }
}

pub(crate) fn text_at<'a>(v: &'a Value, pointer: &str) -> anyhow::Result<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("missing {pointer} in a tool result"))
}

/// Runs the demo against the artifact root and database of `config`.
pub async fn run(config: &Config, opts: DemoOptions) -> anyhow::Result<()> {
    let store = ArtifactStore::from_config(config)?;
    let mut df = generate_dataset(SyntheticKind::Classification, opts.rows, opts.seed)?;
    let dataset = store.key("datasets/demo-classification.csv")?;
    store
        .put(&dataset, encode(&mut df, TableFormat::Csv)?)
        .await?;
    println!(
        "Generated {} rows of sample classification data at {}",
        opts.rows,
        dataset.uri()
    );

    let session = Session::start(&[]).await?;

    session
        .call(
            "1/6",
            "load_dataset",
            json!({"dataset_uri": "datasets/demo-classification.csv", "limit": 0}),
        )
        .await?;
    let split = session
        .call(
            "2/6",
            "split_dataset",
            json!({
                "dataset_uri": "datasets/demo-classification.csv",
                "stratify_column": "label", "seed": opts.seed, "output_name": "demo"
            }),
        )
        .await?;
    let prep = session
        .call(
            "3/6",
            "preprocess_supervised",
            json!({
                "dataset_uri": text_at(&split, "/train/uri")?,
                "target_column": "label", "task_type": "classification",
                "apply_to": [text_at(&split, "/validation/uri")?, text_at(&split, "/test/uri")?]
            }),
        )
        .await?;
    let job_name = format!("demo-rf-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f"));
    let job = session
        .call(
            "4/6",
            "train_supervised_classifier",
            json!({
                "algorithm": "random_forest",
                "train_data_uri": text_at(&prep, "/train_data_uri")?,
                "validation_data_uri": text_at(&prep, "/validation_data_uri")?,
                "training_job_name": job_name,
                "hyperparameters": {"n_estimators": 100, "max_depth": 12},
                "seed": opts.seed
            }),
        )
        .await?;
    let model_uri = text_at(&job, "/model_uri")?.to_string();
    let eval = session
        .call(
            "5/6",
            "evaluate_classifier",
            json!({"model_uri": model_uri, "test_data_uri": text_at(&split, "/test/uri")?}),
        )
        .await?;
    let metric = |k: &str| eval.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let registered = session
        .call("6/6", "register_model", json!({
            "model_name": opts.model_name, "model_uri": model_uri,
            "metrics": {"accuracy": metric("accuracy"), "f1_macro": metric("f1_macro"), "roc_auc": metric("roc_auc")},
            "lineage": {"dataset_uri": dataset.uri()}
        }))
        .await?;
    session.0.cancel().await?;

    println!(
        "\nDone: test accuracy {:.4}, F1 macro {:.4}, ROC-AUC {:.4}; registered `{}` version {} ({}).",
        metric("accuracy"),
        metric("f1_macro"),
        metric("roc_auc"),
        opts.model_name,
        registered
            .get("version")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        model_uri
    );
    Ok(())
}
