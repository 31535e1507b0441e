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

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use subtle::ConditionallySelectable;

use crate::limits::{CallerLimits, LimitSettings, Refusal};
use futures::StreamExt;
use mlops_core::{ArtifactStore, ToolContext, ToolRouter};
use mlops_github::{ApprovalCommand, WebhookConfig, WebhookEvent, WebhookState, webhook_router};
use mlops_workflow::WorkflowEngine;
use mlops_workflow::store::Status;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::mcp::McpServer;

/// Where the MCP endpoint is mounted.
pub const MCP_PATH: &str = "/mcp";
/// Default largest request body on `/mcp`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Shortest bearer token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// Webhook events waiting to be processed; past this GitHub is told to redeliver later.
const WEBHOOK_QUEUE: usize = 256;
/// How long each readiness check may take.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// An oversized body up to this size is read and dropped before the 413 is sent.
const DRAIN_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// How long reading an oversized body may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// After the grace period, how long sessions get to close before the server gives up on them.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How `serve --http` serves.
#[derive(Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Bearer tokens accepted on `/mcp`; empty: no authentication.
    pub tokens: Vec<String>,
    /// Serve without tokens on a non-loopback address.
    pub allow_unauthenticated: bool,
    /// Exact origins (`scheme://host[:port]`) allowed on `/mcp`; empty: loopback origins only.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted on `/mcp`; `None`: the default for the address.
    pub allowed_hosts: Option<Vec<String>>,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub limits: LimitSettings,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("addr", &self.addr)
            .field("tokens", &format!("{} configured", self.tokens.len()))
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("limits", &self.limits)
            .finish()
    }
}

/// `ADDR` of `--http`: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| {
        format!("`{text}` is not an address to listen on; write IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    })
}

fn list_var(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    )
}

/// `MLOPS_HTTP_RATE_LIMIT` (0: off), `MLOPS_HTTP_RATE_BURST`, `MLOPS_HTTP_MAX_CONCURRENT`.
fn limit_settings() -> anyhow::Result<LimitSettings> {
    let number = |name: &str| -> anyhow::Result<Option<u32>> {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{name} must be a whole number, got `{v}`")),
            Err(_) => Ok(None),
        }
    };
    let mut settings = LimitSettings::default();
    if let Some(rate) = number("MLOPS_HTTP_RATE_LIMIT")? {
        settings.rate_per_second = std::num::NonZeroU32::new(rate);
        // A burst of two seconds' worth, unless MLOPS_HTTP_RATE_BURST says otherwise.
        if let Some(burst) = std::num::NonZeroU32::new(rate.saturating_mul(2)) {
            settings.burst = burst;
        }
    }
    if let Some(burst) = number("MLOPS_HTTP_RATE_BURST")? {
        settings.burst =
            std::num::NonZeroU32::new(burst).context("MLOPS_HTTP_RATE_BURST must be 1 or more")?;
    }
    if let Some(n) = number("MLOPS_HTTP_MAX_CONCURRENT")? {
        anyhow::ensure!(n >= 1, "MLOPS_HTTP_MAX_CONCURRENT must be 1 or more");
        settings.max_concurrent = n as usize;
    }
    Ok(settings)
}

impl HttpOptions {
    /// The options for `addr`, with the settings from the environment; checks them.
    pub fn from_env(addr: SocketAddr, allow_unauthenticated: bool) -> anyhow::Result<Self> {
        let tokens = match list_var("MLOPS_HTTP_TOKENS") {
            Some(t) if t.is_empty() => bail!(
                "MLOPS_HTTP_TOKENS is set but holds no token; give comma-separated tokens or unset it"
            ),
            Some(t) => t,
            None => Vec::new(),
        };
        for t in &tokens {
            mlops_core::logging::register_secret(t);
        }
        let max_body_bytes = match std::env::var("MLOPS_HTTP_MAX_BODY_BYTES") {
            Ok(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n: &usize| *n >= 1024)
                .context("MLOPS_HTTP_MAX_BODY_BYTES must be a number of bytes, 1024 or more")?,
            Err(_) => DEFAULT_MAX_BODY_BYTES,
        };
        let shutdown_grace = match std::env::var("MLOPS_HTTP_SHUTDOWN_GRACE_SECONDS") {
            Ok(v) => Duration::from_secs_f64(
                v.trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| (0.0..=3600.0).contains(s))
                    .context(
                        "MLOPS_HTTP_SHUTDOWN_GRACE_SECONDS must be a number of seconds from 0 to 3600",
                    )?,
            ),
            Err(_) => Duration::from_secs(30),
        };
        let limits = limit_settings()?;
        let options = Self {
            addr,
            limits,
            tokens,
            allow_unauthenticated,
            allowed_origins: list_var("MLOPS_HTTP_ALLOWED_ORIGINS")
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts: list_var("MLOPS_HTTP_ALLOWED_HOSTS"),
            max_body_bytes,
            shutdown_grace,
        };
        options.check()?;
        Ok(options)
    }

    /// Refuses unsafe combinations: no authentication on an address others can reach.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(short) = self.tokens.iter().find(|t| t.len() < MIN_TOKEN_LEN) {
            bail!(
                "a token in MLOPS_HTTP_TOKENS is {} characters long; use tokens of {MIN_TOKEN_LEN} characters or more (e.g. `openssl rand -hex 32`)",
                short.len()
            );
        }
        if self.tokens.is_empty() && !self.addr.ip().is_loopback() && !self.allow_unauthenticated {
            bail!(
                "refusing to serve MCP without authentication on {}, an address other machines can reach: set MLOPS_HTTP_TOKENS to comma-separated bearer tokens, bind a loopback address (127.0.0.1:{}), or pass --allow-unauthenticated if a proxy in front authenticates",
                self.addr,
                self.addr.port()
            );
        }
        Ok(())
    }

    fn rmcp_config(&self, ct: CancellationToken) -> StreamableHttpServerConfig {
        let config = StreamableHttpServerConfig::default()
            .with_cancellation_token(ct)
            .with_max_request_body_bytes(self.max_body_bytes);
        match &self.allowed_hosts {
            Some(hosts) => config.with_allowed_hosts(hosts.clone()),
            None if self.addr.ip().is_loopback() => config,
            // Behind a load balancer the Host is the public name; tokens guard the endpoint.
            None => config.disable_allowed_hosts(),
        }
    }
}

/// Requests in flight (except long-lived event streams): shutdown waits for them.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What the `/mcp` guards need.
struct Guard {
    tokens: Vec<Vec<u8>>,
    allowed_origins: Vec<String>,
    max_body_bytes: usize,
    in_flight: Arc<InFlight>,
    limits: CallerLimits,
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

fn unauthorized(message: &str, invalid: bool) -> Response {
    let mut r = json_error(StatusCode::UNAUTHORIZED, message);
    let challenge = if invalid {
        r#"Bearer realm="mlops-mcp", error="invalid_token""#
    } else {
        r#"Bearer realm="mlops-mcp""#
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// True for `http(s)://localhost`, `127.x.x.x` and `[::1]`, any port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn origin_allowed(guard: &Guard, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if guard.allowed_origins.is_empty() {
        is_loopback_origin(&origin)
    } else {
        guard.allowed_origins.contains(&origin)
    }
}

/// Which of the tokens `given` is (its position); every token is compared, in constant time.
fn token_index(tokens: &[Vec<u8>], given: &[u8]) -> Option<usize> {
    let (found, index) = tokens.iter().enumerate().fold(
        (subtle::Choice::from(0), 0u64),
        |(found, index), (i, t)| {
            let same = t.as_slice().ct_eq(given);
            (
                found | same,
                u64::conditional_select(&index, &(i as u64), same),
            )
        },
    );
    bool::from(found).then_some(index as usize)
}

async fn guard_mcp(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !origin_allowed(&guard, headers) {
        tracing::warn!("MCP request from a foreign Origin refused");
        return json_error(
            StatusCode::FORBIDDEN,
            "this Origin may not call the MCP endpoint; add it to MLOPS_HTTP_ALLOWED_ORIGINS",
        );
    }
    // Without tokens every client is one caller.
    let mut caller = String::from("anonymous");
    if !guard.tokens.is_empty() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match given.map(|t| token_index(&guard.tokens, t.as_bytes())) {
            None => {
                return unauthorized(
                    "authentication required: send `Authorization: Bearer <token>` with a token from MLOPS_HTTP_TOKENS",
                    false,
                );
            }
            Some(None) => {
                tracing::warn!("MCP request with an invalid bearer token refused");
                return unauthorized("the bearer token is not valid", true);
            }
            Some(Some(i)) => caller = format!("token-{i}"),
        }
    }
    let permit = match guard.limits.admit(&caller, request.method() != Method::GET) {
        Ok(permit) => permit,
        Err(refusal) => {
            let (message, wait) = match refusal {
                Refusal::Rate(wait) => (
                    format!(
                        "too many requests for this token; retry in {} ms (MLOPS_HTTP_RATE_LIMIT)",
                        wait.as_millis()
                    ),
                    wait,
                ),
                Refusal::Concurrency(n) => (
                    format!(
                        "this token already has {n} requests in flight; wait for one to finish (MLOPS_HTTP_MAX_CONCURRENT)"
                    ),
                    Duration::from_secs(1),
                ),
            };
            tracing::warn!(caller, "MCP request over the caller's limit refused");
            let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, &message);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return r;
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > guard.max_body_bytes as u64) {
        // Read and drop a moderately oversized body first (as nginx's lingering close does): a
        // client still writing it when the connection closes would see a reset, not the 413.
        if n <= DRAIN_MAX_BYTES {
            let mut body = request.into_body().into_data_stream();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
                while let Some(Ok(_)) = body.next().await {}
            })
            .await;
        }
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than {} bytes (MLOPS_HTTP_MAX_BODY_BYTES); pass large data by location (a dataset URI), not inline",
                guard.max_body_bytes
            ),
        );
    }
    // Event streams opened by GET live as long as the session; shutdown does not wait for them.
    if request.method() == Method::GET {
        return next.run(request).await;
    }
    let delete = request.method() == Method::DELETE;
    let in_flight = guard.in_flight.enter();
    let response = next.run(request).await;
    if delete && response.status() == StatusCode::ACCEPTED {
        // rmcp answers a closed session with 202; clients (the Python SDK) expect 200 or 204.
        return StatusCode::NO_CONTENT.into_response();
    }
    // A tool call's answer may be a stream: the request is in flight until its body ends.
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _ = (&in_flight, &permit);
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Clone)]
struct MetricsSource {
    router: ToolRouter,
    db: sqlx::AnyPool,
}

/// Prometheus text: tool calls and latencies, and (from the shared database, so every instance
/// reports the whole fleet) workflow executions and training jobs by status and the outbox depth.
async fn metrics(State(source): State<MetricsSource>) -> Response {
    let mut text = String::new();
    source.router.metrics().render(&mut text);
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
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Clone)]
struct Ready {
    workflows: Arc<WorkflowEngine>,
    store: ArtifactStore,
}

async fn readyz(State(ready): State<Ready>) -> Response {
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
            }),
        )
        .merge(mcp);
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

async fn call(router: &ToolRouter, tool: &str, args: Value) -> Result<Value, String> {
    router
        .call(tool, args, ToolContext::default())
        .await
        .map(|out| out.structured)
        .map_err(|e| mlops_core::logging::mask_str(&e.to_string()))
}

/// Comments on an issue, best effort: a failure is logged, not returned.
async fn comment(router: &ToolRouter, issue: u64, body: &str) {
    if let Err(e) = call(
        router,
        "comment_on_issue",
        json!({"issue_number": issue, "body": body}),
    )
    .await
    {
        tracing::warn!(issue_number = issue, error = %e, "could not comment on the issue");
    }
}

/// Turns webhook events into workflow starts and approval decisions, one at a time.
async fn process_webhook_events(
    mut rx: mpsc::Receiver<WebhookEvent>,
    router: ToolRouter,
    workflows: Arc<WorkflowEngine>,
) {
    while let Some(event) = rx.recv().await {
        match event {
            WebhookEvent::TrainingRequested {
                delivery_id, issue, ..
            } => training_requested(&router, &workflows, &delivery_id, issue.number).await,
            WebhookEvent::Command {
                delivery_id,
                issue_number,
                command,
                arguments,
                user,
                ..
            } => {
                approval(
                    &router,
                    &workflows,
                    &delivery_id,
                    issue_number,
                    command,
                    &arguments,
                    &user,
                )
                .await
            }
        }
    }
}

/// The newest execution of `issue` in `status`, if any.
async fn active_execution(
    workflows: &WorkflowEngine,
    issue: u64,
    status: Status,
) -> Result<Option<mlops_workflow::store::Execution>, String> {
    let (executions, _) = workflows
        .store()
        .list(Some(status), Some(issue as i64), 1, 0)
        .await
        .map_err(|e| e.to_string())?;
    Ok(executions.into_iter().next())
}

async fn training_requested(
    router: &ToolRouter,
    workflows: &WorkflowEngine,
    delivery: &str,
    issue: u64,
) {
    // A label removed and added again must not start a second run beside the first.
    for status in [Status::Running, Status::Waiting] {
        match active_execution(workflows, issue, status).await {
            Ok(Some(e)) => {
                tracing::info!(delivery, issue_number = issue, execution_id = %e.id, "training already in progress; not starting another");
                comment(
                    router,
                    issue,
                    &format!(
                        "Training is already in progress for this issue (execution `{}`, {}); no new run was started.",
                        e.id,
                        e.status.as_str()
                    ),
                )
                .await;
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(delivery, issue_number = issue, error = %e, "cannot list the issue's executions")
            }
        }
    }
    match call(router, "start_workflow", json!({"issue_number": issue})).await {
        Ok(out) => {
            let id = out["execution"]["id"]
                .as_str()
                .or(out["id"].as_str())
                .unwrap_or("?");
            tracing::info!(
                delivery,
                issue_number = issue,
                execution_id = id,
                "workflow started from the webhook"
            );
            comment(
                router,
                issue,
                &format!("Training workflow started: execution `{id}`."),
            )
            .await;
        }
        // Invalid parameters were already commented on the issue by start_workflow.
        Err(e) if e.contains("commented on the issue") => {
            tracing::info!(delivery, issue_number = issue, error = %e, "training request rejected");
        }
        Err(e) => {
            tracing::warn!(delivery, issue_number = issue, error = %e, "cannot start the workflow");
            comment(
                router,
                issue,
                &format!("The training workflow could not be started:\n\n{e}"),
            )
            .await;
        }
    }
}

async fn approval(
    router: &ToolRouter,
    workflows: &WorkflowEngine,
    delivery: &str,
    issue: u64,
    command: ApprovalCommand,
    arguments: &str,
    user: &str,
) {
    let word = match command {
        ApprovalCommand::Approve => "/approve",
        ApprovalCommand::Reject => "/reject",
        ApprovalCommand::Retry => "/retry",
    };
    let waiting = match active_execution(workflows, issue, Status::Waiting).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(delivery, issue_number = issue, error = %e, "cannot list the issue's executions");
            comment(
                router,
                issue,
                &format!("`{word}` could not be applied: {e}"),
            )
            .await;
            return;
        }
    };
    let Some((execution, token)) = waiting.and_then(|e| {
        let token = e.context["task_token"].as_str()?.to_string();
        Some((e, token))
    }) else {
        tracing::info!(
            delivery,
            issue_number = issue,
            command = word,
            "no execution waiting for approval"
        );
        comment(
            router,
            issue,
            &format!("`{word}` by @{user}: no training run of this issue is waiting for approval."),
        )
        .await;
        return;
    };
    // `/retry` asks for the retry the execution is waiting on: an approval.
    let decision = match command {
        ApprovalCommand::Reject => "reject",
        ApprovalCommand::Approve | ApprovalCommand::Retry => "approve",
    };
    let mut args = json!({"task_token": token, "decision": decision, "actor": user});
    if !arguments.is_empty() {
        args["comment"] = json!(arguments);
    }
    match call(router, "approve_workflow_step", args).await {
        Ok(_) => {
            tracing::info!(delivery, issue_number = issue, execution_id = %execution.id, decision, "approval answered from an issue comment");
        }
        Err(e) => {
            tracing::warn!(delivery, issue_number = issue, execution_id = %execution.id, error = %e, "cannot answer the approval");
            comment(
                router,
                issue,
                &format!(
                    "`{word}` by @{user} could not be applied to execution `{}`: {e}",
                    execution.id
                ),
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr("localhost:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(parse_listen_addr("[::1]:80").is_ok());
        assert!(parse_listen_addr("0.0.0.0:1").is_ok());
        assert!(
            parse_listen_addr("example.com:80")
                .unwrap_err()
                .contains("IP:PORT")
        );
    }

    fn options(addr: &str, tokens: &[&str], allow: bool) -> HttpOptions {
        HttpOptions {
            addr: addr.parse().unwrap(),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            allow_unauthenticated: allow,
            allowed_origins: vec![],
            allowed_hosts: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: Duration::from_secs(1),
            limits: LimitSettings::default(),
        }
    }

    #[test]
    fn no_authentication_only_on_loopback() {
        assert!(options("127.0.0.1:1", &[], false).check().is_ok());
        assert!(options("[::1]:1", &[], false).check().is_ok());
        let e = options("0.0.0.0:1", &[], false).check().unwrap_err();
        assert!(e.to_string().contains("MLOPS_HTTP_TOKENS"), "{e}");
        assert!(options("0.0.0.0:1", &[], true).check().is_ok());
        assert!(
            options("0.0.0.0:1", &["0123456789abcdef"], false)
                .check()
                .is_ok()
        );
        assert!(options("0.0.0.0:1", &["short"], false).check().is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        let tokens = vec![b"0123456789abcdef".to_vec(), b"fedcba9876543210".to_vec()];
        assert_eq!(token_index(&tokens, b"0123456789abcdef"), Some(0));
        assert_eq!(token_index(&tokens, b"fedcba9876543210"), Some(1));
        assert_eq!(token_index(&tokens, b"0123456789abcde"), None);
        assert_eq!(token_index(&tokens, b"0123456789abcdefg"), None);
        assert_eq!(token_index(&tokens, b""), None);
        assert_eq!(token_index(&[], b"0123456789abcdef"), None);
    }

    #[test]
    fn origins() {
        let mut guard = Guard {
            tokens: vec![],
            allowed_origins: vec![],
            max_body_bytes: 1,
            in_flight: Arc::default(),
            limits: CallerLimits::new(LimitSettings::default()),
        };
        let with = |o: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            h
        };
        assert!(origin_allowed(&guard, &HeaderMap::new()));
        assert!(origin_allowed(&guard, &with("http://localhost:3000")));
        assert!(origin_allowed(&guard, &with("http://127.0.0.1")));
        assert!(origin_allowed(&guard, &with("http://[::1]:8080")));
        assert!(!origin_allowed(&guard, &with("https://evil.example")));
        assert!(!origin_allowed(
            &guard,
            &with("http://localhost.evil.example")
        ));
        assert!(!origin_allowed(&guard, &with("null")));
        guard.allowed_origins = vec!["https://app.example.com".into()];
        assert!(origin_allowed(&guard, &with("https://APP.example.com/")));
        assert!(!origin_allowed(&guard, &with("http://localhost:3000")));
        assert!(!origin_allowed(
            &guard,
            &with("https://app.example.com:8443")
        ));
    }
}
