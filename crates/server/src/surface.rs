//! The MCP surface beyond tools: prompts (short guided recipes naming the tools in order) and
//! resources under `mlops://` URIs: datasets, processed data, model cards, evaluation reports and
//! plots, per-row results and saved oversized tool results from the artifact store, and the
//! training-history files from the history repository.

use base64::Engine;
use std::sync::Arc;

use mlops_core::ArtifactStore;
use mlops_github::{HISTORY_DIR, Repository};
use rmcp::ErrorData;
use rmcp::model::{
    GetPromptResult, Prompt, PromptArgument, PromptMessage, Resource, ResourceContents,
    ResourceTemplate, Role,
};
use serde_json::{Map, Value};

/// Resources one `resources/list` page holds.
pub const PAGE: usize = 50;
/// The largest resource read returns; bigger ones are refused with a pointer to the file.
const MAX_READ: usize = 4 << 20;
/// The artifact folders resources may come from.
const ROOTS: [&str; 6] = [
    "models",
    "evaluations",
    "results",
    "datasets",
    "processed",
    "outputs",
];
/// The URI folder of the training-history files (read from the history repository).
const HISTORY: &str = "history";

struct Recipe {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    arguments: &'static [(&'static str, &'static str, bool)],
    steps: &'static str,
}

const RECIPES: &[Recipe] = &[
    Recipe {
        name: "train_model",
        title: "Train a model from this dataset",
        description: "Profile a dataset, prepare it, train and evaluate a model, save the evaluation and register the model.",
        arguments: &[
            (
                "dataset_uri",
                "The table to learn from (datasets/..., file://, s3://)",
                true,
            ),
            ("target_column", "The column to predict", true),
            ("task_type", "classification (default) or regression", false),
        ],
        steps: "Train a {task_type} model on `{dataset_uri}` predicting `{target_column}`:\n1. load_dataset {dataset_uri}: check the columns, types and missing values.\n2. validate_data with target_column {target_column}: stop and report if it fails.\n3. preprocess_supervised with target_column {target_column}, task_type {task_type} and split {{validation_fraction: 0.15, test_fraction: 0.15}}: note train_data_uri, validation_data_uri and test_data_uri.\n4. train_supervised_{trainer} with algorithm xgboost (or random_forest), the train_data_uri and validation_data_uri, and a training_job_name.\n5. evaluate_{evaluator} on the test_data_uri.\n6. save_evaluation_results for the model: look at the plots.\n7. If the metrics are good enough, register_model with the model_uri and the evaluation metrics.",
    },
    Recipe {
        name: "evaluate_and_compare",
        title: "Evaluate and compare these models",
        description: "Rank several trained models on the same held-out data and write a report for the best one.",
        arguments: &[
            (
                "model_uris",
                "Comma-separated model folders (models/...)",
                true,
            ),
            (
                "test_data_uri",
                "Held-out data with the target column",
                true,
            ),
            (
                "metric",
                "The metric to rank by (default: accuracy, R² or silhouette)",
                false,
            ),
        ],
        steps: "Compare {model_uris} on `{test_data_uri}`:\n1. load_model for each model: check they are of the same task and verified.\n2. compare_models with model_uris [{model_uris}], test_data_uri {test_data_uri}{metric_clause}.\n3. generate_evaluation_report for the first-ranked model on {test_data_uri}.\n4. Summarise the ranking table and link the report (mlops://evaluations/<name>/report.md).",
    },
    Recipe {
        name: "run_issue_workflow",
        title: "Run the workflow for this issue",
        description: "Check an issue's training request and run the issue-driven workflow to its end, answering approval requests.",
        arguments: &[("issue_number", "An issue labelled mlops:train", true)],
        steps: "Run the training workflow for issue #{issue_number}:\n1. parse_training_issue with issue_number {issue_number}: if it is invalid, comment_problems and stop.\n2. start_workflow with issue_number {issue_number}: note the execution id.\n3. get_workflow_status every few seconds until the status is not running.\n4. If it is waiting, show the operator the reason and the metrics, then call approve_workflow_step with the task_token (approve, optionally with changed hyperparameters, or reject) and go back to step 3.\n5. Report the final status, the registered version and the training history file.",
    },
];

/// The prompts, for `prompts/list`.
pub fn prompts() -> Vec<Prompt> {
    RECIPES
        .iter()
        .map(|r| {
            let args = r
                .arguments
                .iter()
                .map(|(name, description, required)| {
                    let mut a = PromptArgument::new(*name);
                    a.description = Some((*description).into());
                    a.required = Some(*required);
                    a
                })
                .collect();
            let mut p = Prompt::new(r.name, Some(r.description), Some(args));
            p.title = Some(r.title.into());
            p
        })
        .collect()
}

/// A prompt filled in with the caller's arguments.
pub fn prompt(
    name: &str,
    arguments: Option<&Map<String, Value>>,
) -> Result<GetPromptResult, ErrorData> {
    let recipe = RECIPES.iter().find(|r| r.name == name).ok_or_else(|| {
        let names: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
        ErrorData::invalid_params(
            format!("unknown prompt `{name}`; prompts are: {}", names.join(", ")),
            None,
        )
    })?;
    let empty = Map::new();
    let given = arguments.unwrap_or(&empty);
    let value = |key: &str| {
        given
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let mut text = recipe.steps.to_string();
    for (arg, _, required) in recipe.arguments {
        let v = match value(arg) {
            Some(v) => v.to_string(),
            None if *required => {
                return Err(ErrorData::invalid_params(
                    format!("prompt `{name}` needs the argument `{arg}`"),
                    None,
                ));
            }
            // Optional arguments are filled in below, with their defaults.
            None => continue,
        };
        text = text.replace(&format!("{{{arg}}}"), &v);
    }
    let task = value("task_type").unwrap_or("classification");
    let (trainer, evaluator) = if task == "regression" {
        ("regressor", "regressor")
    } else {
        ("classifier", "classifier")
    };
    let metric_clause = value("metric")
        .map(|m| format!(", metric {m}"))
        .unwrap_or_default();
    let text = text
        .replace("{task_type}", task)
        .replace("{trainer}", trainer)
        .replace("{evaluator}", evaluator)
        .replace("{metric_clause}", &metric_clause)
        .replace("{{", "{")
        .replace("}}", "}");
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(recipe.description),
    )
}

/// The URI templates, for `resources/templates/list`.
pub fn templates() -> Vec<ResourceTemplate> {
    [
        ("mlops://models/{name}", "model card", "A trained model's manifest: algorithm, task, features, classes, hyperparameters, metrics, checksums", "application/json"),
        ("mlops://evaluations/{name}/{file}", "evaluation file", "An evaluation's report.md, report.html, results.json or a PNG plot", ""),
        ("mlops://results/{job}/{file}", "per-row result", "clusters.csv or embedding.csv of an unsupervised job", "text/csv"),
        ("mlops://datasets/{path}", "dataset", "A raw table under datasets/ (CSV or Parquet)", ""),
        ("mlops://processed/{name}/{file}", "processed data", "Prepared splits, the fitted pipeline (pipeline.json) and its summary", ""),
        ("mlops://outputs/{tool}/{file}", "full tool result", "A tool result too large to return whole, saved as JSON", "application/json"),
        ("mlops://history/{file}", "training history", "A training_history/train-YYYYMMDD-NNN.md record of a workflow run", "text/markdown"),
    ]
    .into_iter()
    .map(|(uri, name, description, mime)| {
        let mut t = ResourceTemplate::new(uri, name);
        t.description = Some(description.into());
        if !mime.is_empty() {
            t.mime_type = Some(mime.into());
        }
        t
    })
    .collect()
}

fn mime_of(key: &str) -> &'static str {
    match key.rsplit('.').next().unwrap_or_default() {
        "md" => "text/markdown",
        "html" => "text/html",
        "json" => "application/json",
        "csv" => "text/csv",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// The artifact key behind an `mlops://` URI, refusing anything outside the resource folders.
fn key_of(uri: &str) -> Result<String, ErrorData> {
    let not_found = || {
        ErrorData::resource_not_found(
            format!(
                "no resource `{uri}`; resources are mlops://models/{{name}}, mlops://evaluations/{{name}}/{{file}}, mlops://results/{{job}}/{{file}}, mlops://datasets/..., mlops://processed/..., mlops://outputs/... and mlops://history/{{file}} (resources/templates/list has them all)"
            ),
            None,
        )
    };
    let path = uri.strip_prefix("mlops://").ok_or_else(not_found)?;
    let mut parts = path.split('/');
    let root = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    if !(ROOTS.contains(&root) || root == HISTORY)
        || rest.is_empty()
        || rest.iter().any(|p| p.is_empty() || *p == ".." || *p == ".")
    {
        return Err(not_found());
    }
    Ok(match (root, rest.as_slice()) {
        ("models", [name]) => format!("models/{name}/manifest.json"),
        ("models", _) | (HISTORY, [_, _, ..]) => return Err(not_found()),
        (HISTORY, [file]) => format!("{HISTORY_DIR}/{file}"),
        _ => path.to_string(),
    })
}

/// Resources for the artifacts a tool result names (a model folder, a report, a plot, a
/// processed table), so clients can open them; at most `MAX_LINKS`, in the order found.
pub fn links(store: &ArtifactStore, result: &Value) -> Vec<Resource> {
    const MAX_LINKS: usize = 12;
    // The URI prefix of every artifact in this store (`file:///home/x/` or `s3://bucket/prefix/`).
    let Ok(probe) = store.key("_") else {
        return Vec::new();
    };
    let root = probe.uri().trim_end_matches('_').to_string();
    let mut found: Vec<String> = Vec::new();
    let mut stack = vec![result];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(text) => {
                let Some(key) = text.strip_prefix(&root) else {
                    continue;
                };
                let parts: Vec<&str> = key.split('/').collect();
                let uri = match parts.as_slice() {
                    ["models", name] | ["models", name, "manifest.json"] => {
                        format!("mlops://models/{name}")
                    }
                    [first, .., last]
                        if *first != "models" && ROOTS.contains(first) && last.contains('.') =>
                    {
                        format!("mlops://{key}")
                    }
                    _ => continue,
                };
                if !found.contains(&uri) {
                    found.push(uri);
                }
            }
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
        if found.len() >= MAX_LINKS {
            break;
        }
    }
    found
        .into_iter()
        .map(|uri| {
            let name = uri.trim_start_matches("mlops://").to_string();
            let mime = if uri.starts_with("mlops://models/") {
                "application/json"
            } else {
                mime_of(&name)
            };
            let mut r = Resource::new(uri, name);
            r.mime_type = Some(mime.into());
            r
        })
        .collect()
}

/// Reads a resource.
pub async fn read(
    store: &ArtifactStore,
    history: Option<&Arc<dyn Repository>>,
    uri: &str,
) -> Result<ResourceContents, ErrorData> {
    let key = key_of(uri)?;
    if key.starts_with(&format!("{HISTORY_DIR}/")) {
        let missing = || ErrorData::resource_not_found(format!("no resource `{uri}`"), None);
        let repo = history.ok_or_else(missing)?;
        let data = repo
            .read_file(&key, None)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
            .ok_or_else(missing)?;
        return Ok(
            ResourceContents::text(String::from_utf8_lossy(&data).into_owned(), uri)
                .with_mime_type("text/markdown"),
        );
    }
    let r = store
        .key(&key)
        .map_err(|e| ErrorData::resource_not_found(e.to_string(), None))?;
    let data = store.get(&r).await.map_err(|e| match e {
        mlops_core::StoreError::NotFound { .. } => {
            ErrorData::resource_not_found(format!("no resource `{uri}`"), None)
        }
        e => ErrorData::internal_error(e.to_string(), None),
    })?;
    if data.len() > MAX_READ {
        return Err(ErrorData::invalid_params(
            format!(
                "`{uri}` is {} bytes, more than a resource read returns ({MAX_READ}); read the file {} instead",
                data.len(),
                r.uri()
            ),
            None,
        ));
    }
    let mime = mime_of(&key);
    let contents = if mime.starts_with("text/") || mime == "application/json" {
        ResourceContents::text(String::from_utf8_lossy(&data).into_owned(), uri)
    } else {
        ResourceContents::blob(base64::engine::general_purpose::STANDARD.encode(&data), uri)
    };
    Ok(contents.with_mime_type(mime))
}

/// One page of resources (model cards, evaluation files, results, data, saved results, then
/// history files) from `cursor`.
pub async fn list(
    store: &ArtifactStore,
    history: Option<&Arc<dyn Repository>>,
    cursor: Option<&str>,
) -> Result<(Vec<Resource>, Option<String>), ErrorData> {
    let offset: usize = match cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            ErrorData::invalid_params(
                format!("invalid cursor `{c}`: pass the nextCursor of the previous page"),
                None,
            )
        })?,
    };
    let mut all: Vec<Resource> = Vec::new();
    for root in ROOTS {
        let keys = store
            .list(root, 100_000)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        for key in keys {
            let resource = match root {
                "models" => match key
                    .strip_suffix("/manifest.json")
                    .and_then(|k| k.strip_prefix("models/"))
                {
                    Some(name) if !name.contains('/') => {
                        let mut r = Resource::new(
                            format!("mlops://models/{name}"),
                            format!("model {name}"),
                        );
                        r.mime_type = Some("application/json".into());
                        r
                    }
                    _ => continue,
                },
                _ => {
                    let mut r = Resource::new(format!("mlops://{key}"), key.clone());
                    r.mime_type = Some(mime_of(&key).into());
                    r
                }
            };
            all.push(resource);
        }
    }
    if let Some(repo) = history {
        let files = repo
            .list_dir(HISTORY_DIR, None)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        for file in files.into_iter().filter(|f| f.ends_with(".md")) {
            let mut r = Resource::new(
                format!("mlops://{HISTORY}/{file}"),
                format!("{HISTORY_DIR}/{file}"),
            );
            r.mime_type = Some("text/markdown".into());
            all.push(r);
        }
    }
    if offset > all.len() {
        return Err(ErrorData::invalid_params(
            format!("invalid cursor `{offset}`: past the end"),
            None,
        ));
    }
    let next = (offset + PAGE < all.len()).then(|| (offset + PAGE).to_string());
    Ok((all.into_iter().skip(offset).take(PAGE).collect(), next))
}
