//! MLflow's scoring format on `POST /v1/models/{name}/invocations`: `dataframe_split`,
//! `dataframe_records`, `instances` and `inputs`, answered as `{"predictions": [...]}` (labels,
//! values, cluster ids, component lists or actions), so clients written for `mlflow models
//! serve` can point here.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{
    Body, Choice, EndpointState, Failure, NamePath, json_body, plain_predictions, query_choice,
    score, selector_of, served_for, versioned,
};
use crate::loaded::InputColumn;

pub(super) async fn invocations(
    State(endpoint): EndpointState,
    Path(name): NamePath,
    q: Result<Query<Choice>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        let payload = json_body(&headers, &body)?;
        let (name, selector) = selector_of(&name, &query_choice(q)?, None)?;
        let served = served_for(&endpoint, &name, &selector).await?;
        let records = records_of(&payload, &served.model.input_columns())
            .inspect_err(|_| endpoint.count_failure(&served))?;
        let scored = score(&endpoint, &served, &records)?;
        Ok::<_, Failure>(versioned(
            &served,
            json!({
                "predictions": plain_predictions(&served, &scored),
                "model_version": served.origin.version,
            }),
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Rows from any of MLflow's four request shapes.
fn records_of(
    payload: &Value,
    columns: &[InputColumn],
) -> Result<Vec<Map<String, Value>>, Failure> {
    let Value::Object(p) = payload else {
        return Err(Failure::bad(
            "the body must be an object with one of dataframe_split, dataframe_records, instances or inputs",
        ));
    };
    let keys = [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
    ];
    let given: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| p.contains_key(*k))
        .collect();
    let [key] = given.as_slice() else {
        return Err(Failure::bad(format!(
            "give exactly one of {} (got {})",
            keys.join(", "),
            if given.is_empty() {
                "none".into()
            } else {
                given.join(", ")
            }
        )));
    };
    let value = &p[*key];
    match *key {
        "dataframe_split" => split(value),
        "dataframe_records" => objects(value),
        _ => match value {
            // {"inputs": {"col": [...], ...}}: columns.
            Value::Object(cols) => columnar(cols),
            Value::Array(items) if items.iter().all(Value::is_object) => objects(value),
            // [[...], ...]: rows in the model's input order.
            Value::Array(items) => positional(items, columns),
            _ => Err(Failure::bad(format!(
                "`{key}` must be a list of rows or an object of columns"
            ))),
        },
    }
}

fn split(v: &Value) -> Result<Vec<Map<String, Value>>, Failure> {
    let columns: Vec<&str> = v
        .get("columns")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::bad("dataframe_split needs `columns`"))?
        .iter()
        .map(|c| {
            c.as_str()
                .ok_or_else(|| Failure::bad("dataframe_split's columns must be names"))
        })
        .collect::<Result<_, _>>()?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::bad("dataframe_split needs `data`, a list of rows"))?;
    data.iter()
        .enumerate()
        .map(|(i, row)| {
            let row = row
                .as_array()
                .filter(|r| r.len() == columns.len())
                .ok_or_else(|| {
                    Failure::bad(format!(
                        "dataframe_split row {i} must hold {} values",
                        columns.len()
                    ))
                })?;
            Ok(columns
                .iter()
                .map(|c| c.to_string())
                .zip(row.iter().cloned())
                .collect())
        })
        .collect()
}

fn objects(v: &Value) -> Result<Vec<Map<String, Value>>, Failure> {
    v.as_array()
        .ok_or_else(|| Failure::bad("the records must be a list of objects"))?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_object()
                .cloned()
                .ok_or_else(|| Failure::bad(format!("row {i} is not an object of columns")))
        })
        .collect()
}

fn columnar(cols: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, Failure> {
    let mut rows: Option<usize> = None;
    for (name, values) in cols {
        let n = values
            .as_array()
            .ok_or_else(|| Failure::bad(format!("column `{name}` must be a list of values")))?
            .len();
        if rows.is_some_and(|r| r != n) {
            return Err(Failure::bad(
                "every column must hold the same number of values",
            ));
        }
        rows = Some(n);
    }
    let mut records = vec![Map::new(); rows.unwrap_or(0)];
    for (name, values) in cols {
        for (record, v) in records
            .iter_mut()
            .zip(values.as_array().into_iter().flatten())
        {
            record.insert(name.clone(), v.clone());
        }
    }
    Ok(records)
}

fn positional(
    items: &[Value],
    columns: &[InputColumn],
) -> Result<Vec<Map<String, Value>>, Failure> {
    items
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let row = row
                .as_array()
                .filter(|r| r.len() == columns.len())
                .ok_or_else(|| {
                    Failure::bad(format!(
                        "row {i} must hold {} values, in the model's input order ({})",
                        columns.len(),
                        columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            Ok(columns
                .iter()
                .map(|c| c.name.clone())
                .zip(row.iter().cloned())
                .collect())
        })
        .collect()
}
