//! The Open Inference Protocol v2 (KServe's "V2 inference protocol", Triton's HTTP API): health,
//! metadata and `infer`, with JSON tensors or the binary tensor extension (`tritonclient` sends
//! and asks for binary data unless told otherwise).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mlops_ml::Prediction;
use serde_json::{Map, Value, json};

use super::{
    Body, Choice, EndpointState, Failure, NamePath, query_choice, score, selector_of, served_for,
    versioned,
};
use crate::endpoint::Endpoint;
use crate::loaded::{InputColumn, Scored, Served};

/// The header that says how long the JSON part of a binary-extension body is.
const HEADER_LENGTH: &str = "inference-header-content-length";

pub(super) async fn server_metadata() -> Response {
    axum::Json(json!({
        "name": "mlops-mcp",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
    .into_response()
}

pub(super) async fn live() -> Response {
    axum::Json(json!({"live": true})).into_response()
}

pub(super) async fn ready() -> Response {
    axum::Json(json!({"ready": true})).into_response()
}

pub(super) async fn model_metadata(
    State(endpoint): EndpointState,
    Path(name): NamePath,
    q: Result<Query<Choice>, QueryRejection>,
) -> Response {
    metadata(&endpoint, &name, q, None)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn version_metadata(
    State(endpoint): EndpointState,
    Path((name, version)): Path<(String, String)>,
    q: Result<Query<Choice>, QueryRejection>,
) -> Response {
    match parse_version(&version) {
        Ok(v) => metadata(&endpoint, &name, q, Some(v)).await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn model_ready(
    State(endpoint): EndpointState,
    Path(name): NamePath,
    q: Result<Query<Choice>, QueryRejection>,
) -> Response {
    readiness(&endpoint, &name, q, None).await
}

pub(super) async fn version_ready(
    State(endpoint): EndpointState,
    Path((name, version)): Path<(String, String)>,
    q: Result<Query<Choice>, QueryRejection>,
) -> Response {
    match parse_version(&version) {
        Ok(v) => readiness(&endpoint, &name, q, Some(v)).await,
        Err(e) => e.into_response(),
    }
}

pub(super) async fn infer(
    State(endpoint): EndpointState,
    Path(name): NamePath,
    q: Result<Query<Choice>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(&endpoint, &name, q, None, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn version_infer(
    State(endpoint): EndpointState,
    Path((name, version)): Path<(String, String)>,
    q: Result<Query<Choice>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match parse_version(&version) {
        Ok(v) => run_infer(&endpoint, &name, q, Some(v), &headers, &body).await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(IntoResponse::into_response)
}

fn parse_version(v: &str) -> Result<i64, Failure> {
    v.parse()
        .map_err(|_| Failure::bad(format!("`{v}` is not a version number")))
}

async fn chosen(
    endpoint: &Arc<Endpoint>,
    name: &str,
    q: Result<Query<Choice>, QueryRejection>,
    version: Option<i64>,
) -> Result<(String, Served), Failure> {
    let (name, selector) = selector_of(name, &query_choice(q)?, version)?;
    let served = served_for(endpoint, &name, &selector).await?;
    Ok((name, served))
}

async fn metadata(
    endpoint: &Arc<Endpoint>,
    name: &str,
    q: Result<Query<Choice>, QueryRejection>,
    version: Option<i64>,
) -> Result<Response, Failure> {
    let (name, served) = chosen(endpoint, name, q, version).await?;
    let inputs: Vec<Value> = served
        .model
        .input_columns()
        .iter()
        .map(|c| json!({"name": c.name, "datatype": if c.numeric { "FP64" } else { "BYTES" }, "shape": [-1]}))
        .collect();
    let outputs: Vec<Value> = output_specs(&served)
        .into_iter()
        .map(|(n, datatype, width)| {
            let shape = match width {
                Some(w) => json!([-1, w]),
                None => json!([-1]),
            };
            json!({"name": n, "datatype": datatype, "shape": shape})
        })
        .collect();
    Ok(versioned(
        &served,
        json!({
            "name": name,
            "versions": served.origin.version.map(|v| vec![v.to_string()]).unwrap_or_default(),
            "platform": format!("mlops-mcp/{}", served.model.algorithm),
            "inputs": inputs,
            "outputs": outputs,
        }),
    ))
}

async fn readiness(
    endpoint: &Arc<Endpoint>,
    name: &str,
    q: Result<Query<Choice>, QueryRejection>,
    version: Option<i64>,
) -> Response {
    match chosen(endpoint, name, q, version).await {
        Ok((name, served)) => versioned(&served, json!({"name": name, "ready": true})),
        Err(e) => e.into_response(),
    }
}

/// The outputs of a model kind: name, datatype, and the width of a 2-D output.
fn output_specs(served: &Served) -> Vec<(&'static str, &'static str, Option<usize>)> {
    match served.model.task.as_str() {
        "classification" => vec![
            ("label", "BYTES", None),
            ("probabilities", "FP64", Some(served.model.classes.len())),
        ],
        "regression" => vec![("value", "FP64", None)],
        "clustering" if served.model.algorithm == "autoencoder" => vec![
            ("cluster", "INT64", None),
            ("anomaly_score", "FP64", None),
            ("anomaly", "BOOL", None),
        ],
        "clustering" => vec![("cluster", "INT64", None)],
        "dimension_reduction" => vec![("components", "FP64", None)],
        _ => vec![("action", "INT64", None)],
    }
}

/// One input tensor, its elements flattened row-major.
struct Tensor {
    name: String,
    shape: Vec<i64>,
    values: Vec<Value>,
}

async fn run_infer(
    endpoint: &Arc<Endpoint>,
    name: &str,
    q: Result<Query<Choice>, QueryRejection>,
    version: Option<i64>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Failure> {
    let (request, binary) = split_binary(headers, body)?;
    let (name, served) = chosen(endpoint, name, q, version).await?;
    let records = input_tensors(&request, binary)
        .and_then(|tensors| records_of(&served.model.input_columns(), tensors))
        .inspect_err(|_| endpoint.count_failure(&served))?;
    let scored = score(endpoint, &served, &records)?;
    answer(&name, &served, &scored, &request)
}

/// The JSON part of a request and, with the binary extension, the bytes after it.
fn split_binary<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(Value, &'a [u8]), Failure> {
    let json_len = match headers.get(HEADER_LENGTH) {
        Some(v) => {
            let n: usize = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| Failure::bad("Inference-Header-Content-Length is not a number"))?;
            if n > body.len() {
                return Err(Failure::bad(format!(
                    "Inference-Header-Content-Length says {n} bytes of JSON, but the body has {}",
                    body.len()
                )));
            }
            n
        }
        None => body.len(),
    };
    let request: Value = serde_json::from_slice(&body[..json_len])
        .map_err(|e| Failure::bad(format!("the request is not valid JSON: {e}")))?;
    Ok((request, &body[json_len..]))
}

/// The request's input tensors, from JSON `data` or the binary part.
fn input_tensors(request: &Value, mut binary: &[u8]) -> Result<Vec<Tensor>, Failure> {
    let inputs = request
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::bad("the request has no `inputs` list"))?;
    let mut tensors = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::bad("an input has no `name`"))?
            .to_string();
        let datatype = input
            .get("datatype")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::bad(format!("input `{name}` has no `datatype`")))?;
        let shape: Vec<i64> = input
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::bad(format!("input `{name}` has no `shape`")))?
            .iter()
            .map(|d| d.as_i64().filter(|d| *d >= 0))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Failure::bad(format!(
                    "input `{name}` has a shape that is not a list of sizes"
                ))
            })?;
        let count: i64 = shape.iter().product();
        let values = match input
            .pointer("/parameters/binary_data_size")
            .and_then(Value::as_u64)
        {
            Some(size) => {
                let size = size as usize;
                if size > binary.len() {
                    return Err(Failure::bad(format!(
                        "input `{name}` says {size} binary bytes, but only {} remain",
                        binary.len()
                    )));
                }
                let (bytes, rest) = binary.split_at(size);
                binary = rest;
                decode_binary(&name, datatype, bytes)?
            }
            None => {
                let mut flat = Vec::new();
                flatten_data(
                    input
                        .get("data")
                        .ok_or_else(|| Failure::bad(format!("input `{name}` has no `data`")))?,
                    &mut flat,
                );
                flat
            }
        };
        if values.len() as i64 != count {
            return Err(Failure::bad(format!(
                "input `{name}` has {} values but its shape {shape:?} holds {count}",
                values.len()
            )));
        }
        tensors.push(Tensor {
            name,
            shape,
            values,
        });
    }
    Ok(tensors)
}

fn flatten_data(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten_data(i, out)),
        v => out.push(v.clone()),
    }
}

/// Elements of a binary tensor: little-endian numbers, one byte per BOOL, and for BYTES each
/// element's 4-byte little-endian length, then its bytes.
fn decode_binary(name: &str, datatype: &str, bytes: &[u8]) -> Result<Vec<Value>, Failure> {
    let fixed = |width: usize, read: &dyn Fn(&[u8]) -> Value| -> Result<Vec<Value>, Failure> {
        if !bytes.len().is_multiple_of(width) {
            return Err(Failure::bad(format!(
                "input `{name}`: {} bytes is not a whole number of {datatype} values",
                bytes.len()
            )));
        }
        Ok(bytes.chunks_exact(width).map(read).collect())
    };
    let array = |b: &[u8], n: usize| -> [u8; 8] {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&b[..n]);
        a
    };
    match datatype {
        "FP64" => fixed(8, &|b| json!(f64::from_le_bytes(array(b, 8)))),
        "FP32" => fixed(4, &|b| {
            json!(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
        }),
        "INT64" => fixed(8, &|b| json!(i64::from_le_bytes(array(b, 8)))),
        "INT32" => fixed(4, &|b| json!(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        "INT16" => fixed(2, &|b| json!(i16::from_le_bytes([b[0], b[1]]))),
        "INT8" => fixed(1, &|b| json!(b[0] as i8)),
        "UINT64" => fixed(8, &|b| json!(u64::from_le_bytes(array(b, 8)))),
        "UINT32" => fixed(4, &|b| json!(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        "UINT16" => fixed(2, &|b| json!(u16::from_le_bytes([b[0], b[1]]))),
        "UINT8" => fixed(1, &|b| json!(b[0])),
        "BOOL" => fixed(1, &|b| json!(b[0] != 0)),
        "BYTES" => {
            let mut out = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(Failure::bad(format!(
                        "input `{name}`: a BYTES element is cut short"
                    )));
                }
                let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if rest.len() < 4 + n {
                    return Err(Failure::bad(format!(
                        "input `{name}`: a BYTES element is cut short"
                    )));
                }
                out.push(json!(String::from_utf8_lossy(&rest[4..4 + n])));
                rest = &rest[4 + n..];
            }
            Ok(out)
        }
        other => Err(Failure::bad(format!(
            "input `{name}`: datatype {other} is not supported (use FP64, FP32, INT64, INT32, BOOL or BYTES)"
        ))),
    }
}

/// Rows from tensors: one tensor per raw column (shape [rows] or [rows, 1]), or one
/// [rows, columns] tensor with the columns in the model's input order.
fn records_of(
    columns: &[InputColumn],
    tensors: Vec<Tensor>,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    if tensors.is_empty() {
        return Err(Failure::bad("the request has no inputs"));
    }
    // One tensor per column: the model's columns are taken, other tensors (an id) left aside.
    if tensors.iter().any(|t| names.contains(&t.name.as_str())) {
        let tensors: Vec<Tensor> = tensors
            .into_iter()
            .filter(|t| names.contains(&t.name.as_str()))
            .collect();
        let rows = tensors[0].shape.first().copied().unwrap_or(0) as usize;
        for t in &tensors {
            if t.values.len() != rows {
                return Err(Failure::bad(format!(
                    "every input needs one value per row: `{}` has {} values, `{}` has {rows}",
                    t.name,
                    t.values.len(),
                    tensors[0].name
                )));
            }
        }
        let given: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !given.contains(n))
            .collect();
        if !missing.is_empty() {
            return Err(Failure::bad(format!(
                "the model also needs the inputs: {}",
                missing.join(", ")
            )));
        }
        let mut records = vec![Map::new(); rows];
        for t in tensors {
            for (record, v) in records.iter_mut().zip(t.values) {
                record.insert(t.name.clone(), v);
            }
        }
        return Ok(records);
    }
    if let [t] = tensors.as_slice()
        && t.shape.len() == 2
        && t.shape[1] as usize == names.len()
    {
        return Ok(t
            .values
            .chunks(names.len().max(1))
            .map(|row| {
                names
                    .iter()
                    .zip(row)
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect()
            })
            .collect());
    }
    Err(Failure::bad(format!(
        "give one input per column ({}), or one [rows, {}] input with the columns in that order",
        names.join(", "),
        names.len()
    )))
}

/// An output tensor's elements.
enum Elements {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
}

impl Elements {
    fn datatype(&self) -> &'static str {
        match self {
            Elements::F64(_) => "FP64",
            Elements::I64(_) => "INT64",
            Elements::Bool(_) => "BOOL",
            Elements::Text(_) => "BYTES",
        }
    }

    fn json(&self) -> Value {
        match self {
            Elements::F64(v) => json!(v),
            Elements::I64(v) => json!(v),
            Elements::Bool(v) => json!(v),
            Elements::Text(v) => json!(v),
        }
    }

    fn binary(&self) -> Vec<u8> {
        match self {
            Elements::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Elements::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Elements::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
            Elements::Text(v) => v
                .iter()
                .flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes()))
                .collect(),
        }
    }
}

/// The model's outputs for the scored rows: name, shape, elements.
fn outputs(served: &Served, scored: &Scored) -> Vec<(&'static str, Vec<usize>, Elements)> {
    let n = scored.rows;
    match &scored.prediction {
        Prediction::Probabilities(p) => {
            let k = served.model.classes.len().max(1);
            vec![
                (
                    "label",
                    vec![n],
                    Elements::Text(p.chunks(k).map(|row| served.model.label(row)).collect()),
                ),
                ("probabilities", vec![n, k], Elements::F64(p.clone())),
            ]
        }
        Prediction::Values(v) => vec![("value", vec![n], Elements::F64(v.clone()))],
        Prediction::Clusters { ids, anomaly } => {
            let mut out = vec![("cluster", vec![n], Elements::I64(ids.clone()))];
            if let Some(a) = anomaly {
                out.push(("anomaly_score", vec![n], Elements::F64(a.scores.clone())));
                out.push((
                    "anomaly",
                    vec![n],
                    Elements::Bool(a.scores.iter().map(|s| *s > a.threshold).collect()),
                ));
            }
            out
        }
        Prediction::Components { width, values } => {
            vec![("components", vec![n, *width], Elements::F64(values.clone()))]
        }
        Prediction::Actions(a) => vec![(
            "action",
            vec![n],
            Elements::I64(a.iter().map(|x| *x as i64).collect()),
        )],
    }
}

/// The inference response: the outputs asked for (all by default), in JSON or, where asked, as
/// binary tensors after the JSON.
fn answer(
    name: &str,
    served: &Served,
    scored: &Scored,
    request: &Value,
) -> Result<Response, Failure> {
    let all = outputs(served, scored);
    let binary_default = request
        .pointer("/parameters/binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let wanted: Vec<(String, bool)> = match request.get("outputs").and_then(Value::as_array) {
        Some(asked) => asked
            .iter()
            .map(|o| {
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let binary = o
                    .pointer("/parameters/binary_data")
                    .and_then(Value::as_bool)
                    .unwrap_or(binary_default);
                (name, binary)
            })
            .collect(),
        None => all
            .iter()
            .map(|(n, _, _)| (n.to_string(), binary_default))
            .collect(),
    };
    let mut json_outputs = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    for (out_name, binary) in &wanted {
        let Some((n, shape, elements)) = all.iter().find(|(n, _, _)| n == out_name) else {
            return Err(Failure::bad(format!(
                "the model has no output `{out_name}`; it has {}",
                all.iter().map(|o| o.0).collect::<Vec<_>>().join(", ")
            )));
        };
        let mut o = json!({"name": n, "datatype": elements.datatype(), "shape": shape});
        if *binary {
            let bytes = elements.binary();
            o["parameters"] = json!({"binary_data_size": bytes.len()});
            tail.extend(bytes);
        } else {
            o["data"] = elements.json();
        }
        json_outputs.push(o);
    }
    let mut body = json!({
        "model_name": name,
        "model_version": served.origin.version.map(|v| v.to_string()).unwrap_or_default(),
        "outputs": json_outputs,
    });
    if let Some(id) = request.get("id") {
        body["id"] = id.clone();
    }
    if tail.is_empty() {
        return Ok(versioned(served, body));
    }
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    let json_len = bytes.len();
    bytes.extend(tail);
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(json_len));
    if let Some(v) = served.origin.version {
        headers.insert("x-model-version", HeaderValue::from(v));
    }
    Ok(response)
}
