//! `GET /healthz`, `GET /readyz` and `GET /metrics`: liveness, readiness (the database and the
//! artifact store answer) and Prometheus metrics.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use mlops_core::{ArtifactStore, ToolRouter};
use mlops_workflow::WorkflowEngine;
use serde_json::json;

/// How long each readiness check may take.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn healthz() -> &'static str {
    "ok"
}

#[derive(Clone)]
pub(super) struct MetricsSource {
    pub(super) router: ToolRouter,
    pub(super) db: sqlx::AnyPool,
    pub(super) serving: Arc<mlops_serve::Endpoint>,
    pub(super) monitoring: Arc<mlops_monitor::MonitoringCapability>,
}

/// Prometheus text: tool calls and latencies, and (from the shared database, so every instance
/// reports the whole fleet) workflow executions and training jobs by status and the outbox depth.
pub(super) async fn metrics(State(source): State<MetricsSource>) -> Response {
    let mut text = String::new();
    source.router.metrics().render(&mut text);
    let (loaded, evicted) = source.serving.cache_stats();
    source.serving.metrics.render(loaded, evicted, &mut text);
    let gauges = [
        (
            "mlops_workflow_executions",
            "Workflow executions by status.",
            "SELECT status, COUNT(*) FROM workflow_executions GROUP BY status",
        ),
        (
            "mlops_training_jobs",
            "Training jobs by status.",
            "SELECT status, COUNT(*) FROM training_jobs GROUP BY status",
        ),
        (
            "mlops_notifications",
            "Notification deliveries by state (pending ones are the outbox depth).",
            "SELECT state, COUNT(*) FROM notification_deliveries GROUP BY state",
        ),
    ];
    for (name, help, sql) in gauges {
        let rows: Result<Vec<(String, i64)>, _> =
            tokio::time::timeout(READY_TIMEOUT, sqlx::query_as(sql).fetch_all(&source.db))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)
                .and_then(|r| r);
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        match rows {
            Ok(rows) => {
                for (status, n) in rows {
                    let _ = writeln!(text, "{name}{{status=\"{status}\"}} {n}");
                }
            }
            Err(e) => tracing::warn!(metric = name, error = %e, "could not read a metric"),
        }
    }
    match source.monitoring.gauges().await {
        Ok(gauges) => render_gauges(&gauges, &mut text),
        Err(e) => tracing::warn!(error = %e, "could not read the monitoring metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Prometheus text of the monitoring gauges, one HELP/TYPE header per metric.
fn render_gauges(gauges: &[mlops_monitor::Gauge], text: &mut String) {
    let mut named = std::collections::BTreeSet::new();
    for g in gauges {
        if named.insert(g.metric) {
            let _ = writeln!(
                text,
                "# HELP {} {}\n# TYPE {} gauge",
                g.metric, g.help, g.metric
            );
        }
        // Model and monitor names are folder names (letters, digits, `-`, `_`, `.`): no escaping.
        let labels: Vec<String> = g
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let _ = writeln!(text, "{}{{{}}} {}", g.metric, labels.join(","), g.value);
    }
}

#[derive(Clone)]
pub(super) struct Ready {
    pub(super) workflows: Arc<WorkflowEngine>,
    pub(super) store: ArtifactStore,
}

pub(super) async fn readyz(State(ready): State<Ready>) -> Response {
    // A query on the workflow tables: the database answers and its schema is there. Not a tool
    // call, so a load balancer's probes do not fill the logs.
    let database = tokio::time::timeout(
        READY_TIMEOUT,
        ready.workflows.store().list(None, None, 1, 0),
    )
    .await;
    let database = match database {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", READY_TIMEOUT.as_secs())),
    };
    let store = async {
        let key = ready.store.key("readyz-probe").map_err(|e| e.to_string())?;
        ready.store.exists(&key).await.map_err(|e| e.to_string())
    };
    let store = match tokio::time::timeout(READY_TIMEOUT, store).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {}s", READY_TIMEOUT.as_secs())),
    };
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => mlops_core::logging::mask_str(e),
    };
    let body = json!({
        "status": if database.is_ok() && store.is_ok() { "ready" } else { "unavailable" },
        "checks": {"database": show(&database), "artifact_store": show(&store)},
    });
    if database.is_ok() && store.is_ok() {
        (StatusCode::OK, axum::Json(body)).into_response()
    } else {
        tracing::warn!(checks = %body["checks"], "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}
