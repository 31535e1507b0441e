//! `mlops-mcp serve --http ADDR`: MCP over streamable HTTP, for deployment behind a load balancer.
//!
//! Routes:
//! - `/mcp`: the MCP streamable HTTP transport (rmcp) on the same [`McpServer`] as stdio. Guarded,
//!   in this order, by the `Origin` allow-list (403), bearer tokens (401 with `WWW-Authenticate`)
//!   and the body limit (413);
//! - `GET /healthz`: liveness, `200 ok` while the process serves;
//! - `GET /readyz`: readiness, 200 when the database and the artifact store answer, else 503 with
//!   the reason of each failed check;
//! - `POST /webhooks/github` (when `GITHUB_WEBHOOK_SECRET` is set): GitHub deliveries, verified by
//!   [`mlops_github::webhook_router`]; a task turns them into workflow starts and approvals.
//!
//! Settings, from the environment:
//! - `MLOPS_HTTP_TOKENS`: comma-separated bearer tokens accepted on `/mcp` (16 characters at
//!   least). Without tokens the server binds only loopback addresses, unless
//!   `--allow-unauthenticated`;
//! - `MLOPS_HTTP_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example.com`) a browser
//!   may call `/mcp` from; without it only loopback origins are. Requests without `Origin` pass;
//! - `MLOPS_HTTP_ALLOWED_HOSTS`: comma-separated `Host` values accepted on `/mcp` (DNS-rebinding
//!   protection); default: loopback names on a loopback address, any host otherwise;
//! - `MLOPS_HTTP_MAX_BODY_BYTES`: largest request body on `/mcp` (default 4 MiB);
//! - `MLOPS_HTTP_RATE_LIMIT`, `MLOPS_HTTP_RATE_BURST`, `MLOPS_HTTP_MAX_CONCURRENT`: per caller
//!   (bearer token) requests a second (default 100, 0 turns it off), burst above it (default twice
//!   the rate) and requests in flight (default 32); over them, 429 with `Retry-After`
//!   ([`crate::limits`]);
//! - `MLOPS_HTTP_SHUTDOWN_GRACE_SECONDS`: how long in-flight requests may finish after SIGTERM or
//!   Ctrl-C (default 30).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware;
use axum::routing::get;
use axum::serve::ListenerExt;
use mlops_github::{WebhookConfig, WebhookEvent, WebhookState, webhook_router};
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::limits::CallerLimits;
use crate::mcp::McpServer;
use crate::webhook_events::process_webhook_events;
use guard::{Guard, InFlight, guard_mcp};
use probes::{MetricsSource, Ready, healthz, metrics, readyz};

mod guard;
mod options;
mod probes;

pub use options::{HttpOptions, parse_listen_addr};

/// Where the MCP endpoint is mounted.
const MCP_PATH: &str = "/mcp";
/// Webhook events waiting to be processed; past this GitHub is told to redeliver later.
const WEBHOOK_QUEUE: usize = 256;
/// After the grace period, how long sessions get to close before the server gives up on them.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's routes; also returns the queue of webhook events when the webhook is on.
fn routes(
    app: &App,
    options: &HttpOptions,
    mcp_ct: CancellationToken,
    in_flight: Arc<InFlight>,
) -> anyhow::Result<(Router, Option<mpsc::Receiver<WebhookEvent>>)> {
    // The same face as stdio: the exposed toolsets, and artifacts as resources.
    let server = McpServer::new(app.exposed.clone(), app.config.tool_output_schemas)
        .with_resources(app.store.clone())
        .with_history(app.repository.clone());
    let mcp: StreamableHttpService<McpServer, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(server.clone()),
        Default::default(),
        options.rmcp_config(mcp_ct),
    );
    let guard = Arc::new(Guard {
        tokens: options
            .tokens
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect(),
        allowed_origins: options.allowed_origins.clone(),
        max_body_bytes: options.max_body_bytes,
        in_flight,
        limits: CallerLimits::new(options.limits),
    });
    let mcp = Router::new()
        .nest_service(MCP_PATH, mcp)
        .layer(middleware::from_fn_with_state(guard.clone(), guard_mcp));
    // Online inference stands behind the same tokens, limits and Origin checks as MCP.
    let inference = mlops_serve::inference_routes(app.serving.clone())
        .layer(middleware::from_fn_with_state(guard, guard_mcp));
    let ready = Ready {
        workflows: app.workflows.clone(),
        store: app.store.clone(),
    };
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(ready))
        .route(
            "/metrics",
            get(metrics).with_state(MetricsSource {
                router: app.router.clone(),
                db: app.db.clone(),
                serving: app.serving.clone(),
                monitoring: app.monitoring.clone(),
            }),
        )
        .merge(mcp)
        .merge(inference);
    let mut events = None;
    if let Some(secret) = app
        .github
        .webhook_secret
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        let (state, rx) = WebhookState::with_channel(WebhookConfig::new(secret), WEBHOOK_QUEUE)
            .context("configuring the GitHub webhook")?;
        router = router.merge(webhook_router(state));
        events = Some(rx);
    }
    Ok((router, events))
}

/// Serves until `shutdown` resolves (or SIGTERM / Ctrl-C when it is [`shutdown_signal`]), then
/// stops accepting, lets requests in flight finish within the grace period, closes the MCP
/// sessions and stops the workers.
pub async fn serve(
    app: App,
    options: HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("listening on {}", options.addr))?;
    let addr = listener.local_addr()?;
    let mcp_ct = CancellationToken::new();
    let in_flight = Arc::new(InFlight::default());
    let (router, events) = routes(&app, &options, mcp_ct.clone(), in_flight.clone())?;
    let notify_worker = app.notifier.start_worker();
    let workflow_worker = app.workflows.start_worker();
    let monitor_scheduler = app.monitoring.start_scheduler();
    let tuning_resumer = app.tuning.start_resumer();
    let webhook_task = events.map(|rx| {
        tokio::spawn(process_webhook_events(
            rx,
            app.router.clone(),
            app.workflows.clone(),
        ))
    });
    tracing::info!(
        %addr,
        tools = app.exposed.list().count(),
        root = app.store.root_display(),
        authentication = if options.tokens.is_empty() { "none" } else { "bearer" },
        webhook = webhook_task.is_some(),
        "serving MCP over HTTP at http://{addr}{MCP_PATH}"
    );
    // The one line on stdout: where to connect. With port 0 it is how a caller (a test, a
    // supervisor) learns the port the system picked, without racing another process for it.
    println!("Serving MCP over HTTP at http://{addr}{MCP_PATH}");
    let stopping = CancellationToken::new();
    // Without TCP_NODELAY an event stream's small writes wait on delayed ACKs (~40 ms each).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(stopping.clone().cancelled_owned())
        .into_future();
    let mut server = tokio::spawn(server);
    let early = tokio::select! {
        r = &mut server => Some(r),
        () = shutdown => None,
    };
    let result = match early {
        Some(r) => r
            .context("the HTTP server task failed")?
            .context("serving HTTP"),
        None => {
            tracing::info!(
                grace_s = options.shutdown_grace.as_secs_f64(),
                "shutting down: no new connections; waiting for requests in flight"
            );
            stopping.cancel();
            if tokio::time::timeout(options.shutdown_grace, in_flight.wait_idle())
                .await
                .is_err()
            {
                tracing::warn!(
                    in_flight = in_flight.count.load(Ordering::SeqCst),
                    "shutdown grace period over; closing the remaining requests"
                );
            }
            // Ends the MCP sessions and their event streams, so the connections close.
            mcp_ct.cancel();
            match tokio::time::timeout(CLOSE_TIMEOUT, &mut server).await {
                Ok(r) => r
                    .context("the HTTP server task failed")?
                    .context("serving HTTP"),
                Err(_) => {
                    tracing::warn!("connections still open after shutdown; dropping them");
                    server.abort();
                    Ok(())
                }
            }
        }
    };
    // The webhook router is gone with the server: its queue closes and the task ends.
    if let Some(task) = webhook_task
        && tokio::time::timeout(options.shutdown_grace.max(CLOSE_TIMEOUT), task)
            .await
            .is_err()
    {
        tracing::warn!("webhook events still being processed at shutdown");
    }
    workflow_worker.stop().await;
    monitor_scheduler.stop().await;
    tuning_resumer.stop().await;
    notify_worker.stop().await;
    tracing::info!("HTTP server stopped");
    result
}

/// Resolves on SIGTERM (what ECS and Kubernetes send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
