//! Predictions as tables: output rows flattened into columns, and a data frame built from JSON
//! rows, for prediction files and the prediction log.

use mlops_core::ToolError;
use mlops_ml::Prediction;
use polars::prelude::{Column, DataFrame};
use serde_json::{Map, Value};

use crate::loaded::{LoadedModel, Scored};

/// A scored batch as columns, named as [`flatten`] names an output row's fields: `label` and
/// `proba_<class>` (classifiers), `value`, `cluster` (+ `anomaly_score`, `anomaly`),
/// `component_<i>` or `action`. Built straight from the prediction, with no row objects.
pub fn prediction_columns(model: &LoadedModel, scored: &Scored) -> Vec<Column> {
    match &scored.prediction {
        Prediction::Probabilities(p) => {
            let k = model.classes.len().max(1);
            let labels: Vec<String> = p.chunks(k).map(|row| model.label(row)).collect();
            let mut columns = vec![Column::new("label".into(), labels)];
            for (i, class) in model.classes.iter().enumerate() {
                let values: Vec<f64> = p.iter().skip(i).step_by(k).copied().collect();
                columns.push(Column::new(format!("proba_{class}").into(), values));
            }
            columns
        }
        Prediction::Values(v) => vec![Column::new("value".into(), v.clone())],
        Prediction::Clusters { ids, anomaly } => {
            let mut columns = vec![Column::new("cluster".into(), ids.clone())];
            if let Some(a) = anomaly {
                let flags: Vec<bool> = a.scores.iter().map(|s| *s > a.threshold).collect();
                columns.push(Column::new("anomaly_score".into(), a.scores.clone()));
                columns.push(Column::new("anomaly".into(), flags));
            }
            columns
        }
        Prediction::Components { width, values } => (0..*width)
            .map(|c| {
                let values: Vec<f64> = values.iter().skip(c).step_by(*width).copied().collect();
                Column::new(format!("component_{}", c + 1).into(), values)
            })
            .collect(),
        Prediction::Actions(a) => vec![Column::new(
            "action".into(),
            a.iter().map(|x| *x as i64).collect::<Vec<_>>(),
        )],
    }
}

/// Adds an output row's fields to `row` as flat columns named with `prefix`: probabilities as
/// `<prefix>proba_<class>`, components as `<prefix>component_<i>`, anything else as
/// `<prefix><name>`.
pub fn flatten(output: &Map<String, Value>, prefix: &str, row: &mut Map<String, Value>) {
    for (k, v) in output {
        match v {
            Value::Object(probabilities) => {
                for (class, p) in probabilities {
                    row.insert(format!("{prefix}proba_{class}"), p.clone());
                }
            }
            Value::Array(components) => {
                for (i, c) in components.iter().enumerate() {
                    row.insert(format!("{prefix}component_{}", i + 1), c.clone());
                }
            }
            v => {
                row.insert(format!("{prefix}{k}"), v.clone());
            }
        }
    }
}

/// A frame from JSON rows: a column per key (in first-seen order), numbers as floats (integers
/// when every value is one), booleans as booleans, anything else as text.
pub fn frame_of(rows: &[Map<String, Value>]) -> Result<DataFrame, ToolError> {
    let mut names: Vec<&String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !names.contains(&k) {
                names.push(k);
            }
        }
    }
    let columns: Vec<Column> = names
        .into_iter()
        .map(|name| {
            let values: Vec<Option<&Value>> = rows
                .iter()
                .map(|r| r.get(name).filter(|v| !v.is_null()))
                .collect();
            let present = || values.iter().flatten();
            if present().all(|v| v.is_i64()) {
                Column::new(
                    name.into(),
                    values
                        .iter()
                        .map(|v| v.and_then(Value::as_i64))
                        .collect::<Vec<_>>(),
                )
            } else if present().all(|v| v.is_number()) {
                Column::new(
                    name.into(),
                    values
                        .iter()
                        .map(|v| v.and_then(Value::as_f64))
                        .collect::<Vec<_>>(),
                )
            } else if present().all(|v| v.is_boolean()) {
                Column::new(
                    name.into(),
                    values
                        .iter()
                        .map(|v| v.and_then(Value::as_bool))
                        .collect::<Vec<_>>(),
                )
            } else {
                Column::new(
                    name.into(),
                    values
                        .iter()
                        .map(|v| {
                            v.map(|v| match v {
                                Value::String(s) => s.clone(),
                                v => v.to_string(),
                            })
                        })
                        .collect::<Vec<_>>(),
                )
            }
        })
        .collect();
    DataFrame::new(rows.len(), columns)
        .map_err(|e| ToolError::Execution(format!("building the prediction log table: {e}")))
}
