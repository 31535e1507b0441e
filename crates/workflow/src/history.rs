//! The training history record committed as `training_history/train-YYYYMMDD-NNN.md`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::context::Context;
use crate::definition::StateName::{EvaluateModel, TrainModel, TuneHyperparameters};

/// The Markdown record of a passed run: parameters, data, metrics, registry version, retries.
pub(crate) fn markdown(c: &Context) -> String {
    let r = &c.request;
    let mut md = String::new();
    let _ = writeln!(md, "# Training history: {}\n", c.model_name);
    let _ = writeln!(md, "| | |\n|---|---|");
    let rows: Vec<(&str, String)> = vec![
        ("Execution", format!("`{}`", c.execution_id)),
        (
            "Issue",
            c.issue_number.map_or("–".into(), |n| format!("#{n}")),
        ),
        (
            "Date (UTC)",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        ),
        ("Dataset", format!("`{}`", r.dataset)),
        ("Target", r.target_column.clone().unwrap_or_default()),
        ("Task", r.task_type.as_str().to_string()),
        ("Algorithm", r.algorithm.clone()),
        (
            "Judged on",
            format!("{} (threshold {})", r.metric, r.threshold),
        ),
        (
            "Retries used",
            format!("{} of {}", c.retry_count, r.max_retry),
        ),
        (
            "Registry",
            c.promoted_version.map_or("–".into(), |v| {
                format!("`{}` version {v} (Production)", c.model_name)
            }),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    md.push_str("\n## Hyperparameters\n\n");
    let tuned = c
        .output(TuneHyperparameters, "best_hyperparameters")
        .filter(|h| h.is_object());
    if let Some(best) = tuned {
        let at = |field: &str| {
            c.output(TuneHyperparameters, field)
                .cloned()
                .unwrap_or(Value::Null)
        };
        let _ = writeln!(
            md,
            "Tuned by study `{}`: {} trials; cross-validated {} {} with the fixed settings, {} with the best (trial {}). Trained with:\n\n```json\n{}\n```",
            at("study_name").as_str().unwrap_or("?"),
            at("trials_complete"),
            at("metric").as_str().unwrap_or("?"),
            number(&at("baseline_value")),
            number(&at("best_value")),
            at("best_trial"),
            serde_json::to_string_pretty(best).unwrap_or_default()
        );
    } else if r.hyperparameters.is_empty() {
        md.push_str("Defaults.\n");
    } else {
        let _ = writeln!(
            md,
            "```json\n{}\n```",
            serde_json::to_string_pretty(&r.hyperparameters).unwrap_or_default()
        );
    }
    md.push_str("\n## Test metrics\n\n| metric | value |\n|---|---|\n");
    if let Some(Value::Object(m)) = c.output(EvaluateModel, "metrics") {
        for (k, v) in m {
            if let Some(f) = v.as_f64() {
                let _ = writeln!(md, "| {k} | {f:.4} |");
            }
        }
    }
    if let Some(Value::String(uri)) = c.output(TrainModel, "model_uri") {
        let _ = writeln!(md, "\nModel artifact: `{uri}`");
    }
    if let Some(reason) = &c.reason {
        let _ = writeln!(md, "\nJudgement: {reason}.");
    }
    md
}

/// A metric value as the record shows it.
fn number(v: &Value) -> String {
    v.as_f64().map_or("–".into(), |f| format!("{f:.4}"))
}
