//! One evaluation of any model kind (metrics plus plots), and its Markdown and HTML reports.
//! `compare_models`, `save_evaluation_results` and `generate_evaluation_report` are built on it.

use std::fmt::Write as _;

use base64::Engine as _;
use mlops_core::{ArtifactStore, ToolError};
use mlops_data::load_model_input;
use mlops_ml::{
    Matrix, MetricPoint, Pca, class_indices, cluster_scores, numeric_target, saved_history,
};
use serde_json::{Map, Value, json};

use crate::capability::{LoadedModel, load_for_task};
use mlops_ml::{classification_report, regression_report};
use mlops_plot::{self as plots, PlotError};

/// A drawn plot: its file stem (e.g. `confusion_matrix`) and PNG bytes.
pub struct Plot {
    pub name: &'static str,
    pub title: &'static str,
    pub png: Vec<u8>,
}

/// A model scored on one data set.
pub struct Evaluation {
    pub model_uri: String,
    pub data_uri: String,
    pub model_name: String,
    pub algorithm: String,
    pub task: String,
    pub rows: usize,
    /// The task's metrics (numbers, plus tables such as the confusion matrix).
    pub metrics: Map<String, Value>,
    /// What the model recorded at training time.
    pub training_metrics: Value,
    pub hyperparameters: Value,
    pub plots: Vec<Plot>,
}

fn plot_error(e: PlotError) -> ToolError {
    ToolError::Execution(e.to_string())
}

fn map_of(value: impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Loads a model (any evaluable task), scores it on `data_uri` and, when asked, draws its plots.
pub async fn evaluate(
    store: &ArtifactStore,
    model_uri: &str,
    data_uri: &str,
    with_plots: bool,
) -> Result<Evaluation, ToolError> {
    let (_, manifest) = mlops_core::ModelArtifact::load_manifest(store, model_uri).await?;
    let task = manifest.task.clone();
    if !matches!(
        task.as_str(),
        "classification" | "regression" | "clustering"
    ) {
        let hint = if task == "reinforcement" {
            "; score a policy with evaluate_reinforcement"
        } else {
            ""
        };
        return Err(ToolError::validation(format!(
            "`{model_uri}` is a {task} model; evaluation covers classification, regression and clustering models{hint}"
        )));
    }
    let loaded = load_for_task(store, model_uri, &task, "evaluation").await?;
    let df = load_model_input(store, data_uri, &loaded.pipeline).await?;
    if df.height() == 0 {
        return Err(ToolError::validation(format!(
            "`{data_uri}` has no rows to evaluate"
        )));
    }
    let manifest = loaded.artifact.manifest.clone();
    let x = Matrix::from_frame(&df, &manifest.feature_names).map_err(ToolError::from)?;
    let target = match &manifest.target {
        Some(t) if task != "clustering" => {
            if !df.schema().contains(t) {
                return Err(ToolError::validation(format!(
                    "`{data_uri}` has no target column `{t}` to compare predictions with"
                )));
            }
            Some(t.clone())
        }
        _ => None,
    };
    let truth = match (task.as_str(), &target) {
        ("classification", Some(t)) => {
            Truth::Classes(class_indices(&df, t, &manifest.classes).map_err(ToolError::from)?)
        }
        ("regression", Some(t)) => Truth::Values(numeric_target(&df, t).map_err(ToolError::from)?),
        _ => Truth::None,
    };
    let history = saved_history(&loaded.artifact);
    let model_uri = loaded.artifact.folder_uri();
    let rows = x.rows;
    let (metrics, plots) = tokio::task::spawn_blocking(move || {
        score_and_draw(&loaded, &x, truth, &history, with_plots)
    })
    .await
    .map_err(|e| ToolError::Execution(format!("evaluation stopped: {e}")))??;
    Ok(Evaluation {
        model_uri,
        data_uri: data_uri.into(),
        model_name: manifest.name,
        algorithm: manifest.algorithm,
        task,
        rows,
        metrics,
        training_metrics: manifest.metrics,
        hyperparameters: manifest.hyperparameters,
        plots,
    })
}

/// Computes a curve's points from scores and positive flags.
type CurveFn = fn(&[f64], &[bool]) -> Vec<(f64, f64)>;

enum Truth {
    Classes(Vec<u32>),
    Values(Vec<f64>),
    None,
}

fn score_and_draw(
    loaded: &LoadedModel,
    x: &Matrix,
    truth: Truth,
    history: &[MetricPoint],
    with_plots: bool,
) -> Result<(Map<String, Value>, Vec<Plot>), ToolError> {
    let manifest = &loaded.artifact.manifest;
    let model = &loaded.model;
    let mut plots = Vec::new();
    let mut add = |name: &'static str, title: &'static str, png: Result<Vec<u8>, PlotError>| {
        png.map(|png| plots.push(Plot { name, title, png }))
            .map_err(plot_error)
    };
    let metrics = match truth {
        Truth::Classes(y) => {
            let proba = model.predict_proba(x).map_err(ToolError::from)?;
            let report = classification_report(&y, &proba, &manifest.classes);
            if with_plots {
                add(
                    "confusion_matrix",
                    "Confusion matrix",
                    plots::confusion_matrix(&report.confusion_matrix, &manifest.classes),
                )?;
                let k = manifest.classes.len();
                // Binary: the positive class only; more classes: each one-vs-rest.
                let shown: Vec<usize> = if k == 2 { vec![1] } else { (0..k).collect() };
                let curves = |f: CurveFn| {
                    shown
                        .iter()
                        .map(|&c| {
                            let scores: Vec<f64> = (0..y.len()).map(|r| proba[r * k + c]).collect();
                            let positive: Vec<bool> = y.iter().map(|&t| t as usize == c).collect();
                            (manifest.classes[c].clone(), f(&scores, &positive))
                        })
                        .collect::<Vec<_>>()
                };
                add(
                    "roc_curve",
                    "ROC curve",
                    plots::roc_curve(&curves(plots::roc_points)),
                )?;
                add(
                    "precision_recall_curve",
                    "Precision–recall curve",
                    plots::precision_recall_curve(&curves(plots::pr_points)),
                )?;
            }
            map_of(report)
        }
        Truth::Values(y) => {
            let predicted = model.predict_values(x).map_err(ToolError::from)?;
            if with_plots {
                add(
                    "residuals",
                    "Residuals vs predicted",
                    plots::residuals(&predicted, &y),
                )?;
            }
            map_of(regression_report(&y, &predicted))
        }
        Truth::None => {
            let labels = model.predict_clusters(x).map_err(ToolError::from)?;
            if with_plots {
                let coords = principal_plane(x)?;
                add(
                    "cluster_scatter",
                    "Clusters on the first two principal components",
                    plots::cluster_scatter(&coords, &labels, ("PC 1", "PC 2")),
                )?;
            }
            map_of(cluster_scores(x, &labels, 42))
        }
    };
    if with_plots {
        if let Some(importances) = model.feature_importances() {
            let mut pairs: Vec<(String, f64)> = manifest
                .feature_names
                .iter()
                .cloned()
                .zip(importances)
                .collect();
            pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
            pairs.truncate(20);
            add(
                "feature_importance",
                "Feature importance",
                plots::feature_importance(&pairs),
            )?;
        }
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for p in history {
            match series.iter_mut().find(|s| s.0 == p.metric) {
                Some(s) => s.1.push((p.step as f64, p.value)),
                None => series.push((p.metric.clone(), vec![(p.step as f64, p.value)])),
            }
        }
        if !series.is_empty() {
            add(
                "learning_curve",
                "Learning curve",
                plots::learning_curve(&series),
            )?;
        }
    }
    Ok((metrics, plots))
}

/// Each row on the plane of the data's first two principal components.
fn principal_plane(x: &Matrix) -> Result<Vec<(f64, f64)>, ToolError> {
    if x.cols < 2 || x.rows < 2 {
        return Ok(x.column(0).iter().map(|v| (*v, 0.0)).collect());
    }
    let pca = Pca::fit(x, 2).map_err(ToolError::from)?;
    let flat = pca.transform(x);
    Ok(flat.chunks(2).map(|p| (p[0], p[1])).collect())
}

/// The scalar metrics, in a stable order, for tables.
pub fn scalar_metrics(metrics: &Map<String, Value>) -> Vec<(String, f64)> {
    metrics
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
        .filter(|(k, _)| !matches!(k.as_str(), "n_clusters" | "n_noise"))
        .collect()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report as Markdown, linking the PNG files saved beside it.
pub fn markdown(e: &Evaluation) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Evaluation of `{}`\n", e.model_name);
    let _ = writeln!(
        md,
        "- Model: `{}` ({} {})\n- Data: `{}` ({} rows)\n- Generated: {}\n",
        e.model_uri,
        e.task,
        e.algorithm,
        e.data_uri,
        e.rows,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    md.push_str("## Metrics\n\n| metric | value |\n|---|---|\n");
    for (k, v) in scalar_metrics(&e.metrics) {
        let _ = writeln!(md, "| {k} | {v:.4} |");
    }
    if let Some(Value::Array(per_class)) = e.metrics.get("per_class") {
        md.push_str("\n## Per class\n\n| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
        for c in per_class {
            let _ = writeln!(
                md,
                "| {} | {:.4} | {:.4} | {:.4} | {} |",
                c["class"].as_str().unwrap_or_default(),
                c["precision"].as_f64().unwrap_or_default(),
                c["recall"].as_f64().unwrap_or_default(),
                c["f1"].as_f64().unwrap_or_default(),
                c["support"]
            );
        }
    }
    if !e.hyperparameters.is_null() {
        let _ = writeln!(
            md,
            "\n## Hyperparameters\n\n```json\n{}\n```",
            serde_json::to_string_pretty(&e.hyperparameters).unwrap_or_default()
        );
    }
    if !e.plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for p in &e.plots {
            let _ = writeln!(md, "### {}\n\n![{}]({}.png)\n", p.title, p.title, p.name);
        }
    }
    md
}

/// The report as one self-contained HTML page (plots embedded as data URIs).
pub fn html(e: &Evaluation) -> String {
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(
        h,
        "<title>Evaluation of {}</title>\n<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}img{{max-width:100%}}</style></head><body>",
        escape_html(&e.model_name)
    );
    let _ = writeln!(
        h,
        "<h1>Evaluation of <code>{}</code></h1>\n<ul><li>Model: <code>{}</code> ({} {})</li><li>Data: <code>{}</code> ({} rows)</li></ul>",
        escape_html(&e.model_name),
        escape_html(&e.model_uri),
        escape_html(&e.task),
        escape_html(&e.algorithm),
        escape_html(&e.data_uri),
        e.rows
    );
    h.push_str("<h2>Metrics</h2>\n<table><tr><th>metric</th><th>value</th></tr>\n");
    for (k, v) in scalar_metrics(&e.metrics) {
        let _ = writeln!(h, "<tr><td>{}</td><td>{v:.4}</td></tr>", escape_html(&k));
    }
    h.push_str("</table>\n");
    for p in &e.plots {
        let data = base64::engine::general_purpose::STANDARD.encode(&p.png);
        let _ = writeln!(
            h,
            "<h2>{}</h2>\n<img alt=\"{}\" src=\"data:image/png;base64,{data}\">",
            escape_html(p.title),
            escape_html(p.title)
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// The evaluation's structured record (`results.json`).
pub fn results_json(e: &Evaluation, plot_uris: &[String]) -> Value {
    json!({
        "model_uri": e.model_uri,
        "model_name": e.model_name,
        "algorithm": e.algorithm,
        "task": e.task,
        "data_uri": e.data_uri,
        "rows": e.rows,
        "metrics": e.metrics,
        "training_metrics": e.training_metrics,
        "hyperparameters": e.hyperparameters,
        "plots": plot_uris,
        "evaluated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}
