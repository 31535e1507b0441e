//! Online inference over HTTP, for the server to mount behind its guard (bearer tokens, limits,
//! Origin checks): the Open Inference Protocol v2 (KServe, Triton, Seldon and MLServer speak it;
//! JSON tensors and the binary tensor extension) and MLflow's scoring format. `{name}` serves the
//! registered model's Production version; `{name}@{alias}`, `?alias=`, `?stage=` or a
//! `/versions/{v}` route choose another. Every answer names the version that gave it, in the
//! `x-model-version` header and the body.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mlops_core::ToolError;
use mlops_ml::Prediction;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::endpoint::Endpoint;
use crate::loaded::{Scored, Served};
use crate::resolve::Selector;

mod mlflow;
mod oip;

/// The inference routes: `/v2/...` (Open Inference Protocol) and `/v1/models/{name}/invocations`
/// (MLflow).
pub fn inference_routes(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{name}", get(oip::model_metadata))
        .route("/v2/models/{name}/ready", get(oip::model_ready))
        .route("/v2/models/{name}/infer", post(oip::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(oip::version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(oip::version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(oip::version_infer),
        )
        .route("/v1/models/{name}/invocations", post(mlflow::invocations))
        .with_state(endpoint)
}

/// `?alias=`, `?stage=` or `?version=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Choice {
    alias: Option<String>,
    stage: Option<String>,
    version: Option<i64>,
}

/// The model a route names: `name`, or `name@alias`, with the query's choice.
fn selector_of(
    name: &str,
    q: &Choice,
    version: Option<i64>,
) -> Result<(String, Selector), Failure> {
    let (name, alias) = match name.split_once('@') {
        Some((n, a)) => (n, Some(a.to_string())),
        None => (name, None),
    };
    let chosen = [
        alias.is_some() || q.alias.is_some(),
        q.stage.is_some(),
        version.is_some() || q.version.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() > 1 || (alias.is_some() && q.alias.is_some()) {
        return Err(Failure::bad(
            "choose the version one way: an alias (`name@alias` or ?alias=), a stage, or a version",
        ));
    }
    let selector = Selector::from_parts(
        version.or(q.version),
        q.stage.clone(),
        alias.or_else(|| q.alias.clone()),
    )
    .map_err(Failure::from)?;
    Ok((name.to_string(), selector))
}

async fn served_for(
    endpoint: &Arc<Endpoint>,
    name: &str,
    selector: &Selector,
) -> Result<Served, Failure> {
    endpoint.current(name, selector).await.map_err(|e| match e {
        // The registry says it has no such model or version.
        ToolError::Validation(m) => Failure {
            status: StatusCode::NOT_FOUND,
            message: m,
        },
        e => Failure::from(e),
    })
}

/// Scores `records` and counts the request under its model.
fn score(
    endpoint: &Endpoint,
    served: &Served,
    records: &[Map<String, Value>],
) -> Result<Scored, Failure> {
    endpoint.predict(served, records).map_err(Failure::from)
}

/// An error answer: a status and a message, as `{"error": ...}`.
struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<ToolError> for Failure {
    fn from(e: ToolError) -> Self {
        let status = match e {
            ToolError::Validation(_) | ToolError::NotFound { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: mlops_core::logging::mask_str(&e.to_string()),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// A JSON answer naming the version that gave it.
fn versioned(served: &Served, body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Some(v) = served.origin.version
        && let Ok(value) = HeaderValue::from_str(&v.to_string())
    {
        response.headers_mut().insert("x-model-version", value);
    }
    response
}

/// Reads a JSON body, with a message a client can act on when it is not JSON.
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Failure> {
    if let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && !kind.starts_with("application/json")
        && !kind.starts_with("application/octet-stream")
    {
        return Err(Failure {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("send JSON (content-type application/json), not {kind}"),
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| Failure::bad(format!("the body is not valid JSON: {e}")))
}

/// The prediction of every row as one JSON value per row, as MLflow answers: labels, values,
/// cluster ids, component lists or actions.
fn plain_predictions(served: &Served, scored: &Scored) -> Vec<Value> {
    match &scored.prediction {
        Prediction::Probabilities(p) => {
            let k = served.model.classes.len().max(1);
            p.chunks(k)
                .map(|row| json!(served.model.label(row)))
                .collect()
        }
        Prediction::Values(v) => v.iter().map(|x| json!(x)).collect(),
        Prediction::Clusters { ids, .. } => ids.iter().map(|x| json!(x)).collect(),
        Prediction::Components { width, values } => {
            values.chunks((*width).max(1)).map(|c| json!(c)).collect()
        }
        Prediction::Actions(a) => a.iter().map(|x| json!(x)).collect(),
    }
}

/// Tolerates `Bytes` and `Query` extraction failing over to a clear message.
fn query_choice(
    q: Result<Query<Choice>, axum::extract::rejection::QueryRejection>,
) -> Result<Choice, Failure> {
    q.map(|Query(c)| c).map_err(|e| Failure::bad(e.body_text()))
}

type Body = Bytes;
type NamePath = Path<String>;
type EndpointState = State<Arc<Endpoint>>;
