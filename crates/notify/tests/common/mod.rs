//! Test helpers: a fake HTTP service on 127.0.0.1 that records requests and answers as scripted,
//! a PostgreSQL schema per test, a raw (unmasked) log capture, and an aiosmtpd SMTP sink.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mlops_db::testing::fresh_pg_schema;
use mlops_notify::Secret;
use mlops_notify::{Notifier, NotifyConfig, RetryPolicy};
use serde_json::Value;

/// A request the fake service received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    default: Option<Reply>,
}

/// A fake Slack/Teams/Discord/GitHub: records every request; answers with the scripted replies in
/// order, then with the default (200 `ok`).
#[derive(Clone)]
pub struct FakeService {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeService {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Answers every unscripted request with this reply.
    pub fn always(&self, reply: Reply) {
        self.state.lock().unwrap().default = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        s.script
            .pop_front()
            .or_else(|| s.default.clone())
            .unwrap_or_else(|| Reply::ok("ok"))
    };
    let mut response = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    response.body(Full::new(Bytes::from(reply.body))).unwrap()
}

/// A configuration with only the outbox file, fast retries and a short lease.
pub fn fast_config(home: &Path, database_url: &str) -> NotifyConfig {
    let mut c = NotifyConfig::local(home, database_url);
    c.retry = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(5),
    };
    c.poll_interval = Duration::from_millis(20);
    c.lease = Duration::from_secs(5);
    c.send_timeout = Duration::from_secs(5);
    c
}

/// A secret as the configuration makes it (webhook URLs with their parts).
pub fn secret(s: &str) -> Secret {
    if s.starts_with("http") {
        Secret::webhook(s)
    } else {
        Secret::new(s)
    }
}

/// A database on each backend (SQLite in a temp folder; PostgreSQL in a fresh schema when
/// reachable). The guard keeps the folder and schema alive.
pub async fn databases() -> Vec<(&'static str, String, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out: Vec<(&'static str, String, Box<dyn std::any::Any>)> = vec![(
        "sqlite",
        format!("sqlite://{}/mlops.db", dir.path().display()),
        Box::new(dir),
    )];
    if let Some((url, schema)) = fresh_pg_schema("ntf").await {
        out.push(("postgres", url, Box::new(schema)));
    }
    out
}

/// Polls until `f` is true or `timeout` passes; returns whether it became true.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Builds a notifier whose worker runs until the returned handle stops.
pub async fn notifier(config: NotifyConfig) -> Arc<Notifier> {
    Arc::new(Notifier::new(config).await.unwrap())
}

/// Every log event, all fields, exactly as emitted (no masking), for secret checks.
#[derive(Clone, Default)]
pub struct RawLogs(Arc<Mutex<String>>);

impl RawLogs {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct Visitor<'a>(&'a mut String);
impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RawLogs {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut line = format!("{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut Visitor(&mut line));
        line.push('\n');
        self.0.lock().unwrap().push_str(&line);
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut line = format!("SPAN {}", attrs.metadata().name());
        attrs.record(&mut Visitor(&mut line));
        line.push('\n');
        self.0.lock().unwrap().push_str(&line);
    }
}

/// Installs a raw log capture for this thread (tests run on a current-thread runtime).
pub fn capture_logs() -> (RawLogs, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::prelude::*;
    let logs = RawLogs::default();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.clone()));
    (logs, guard)
}

/// A running aiosmtpd sink; stops when dropped.
pub struct SmtpSink {
    pub port: u16,
    pub out: PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the sink, or returns None (loudly) when Python's aiosmtpd is missing outside CI.
    pub fn start(user: &str, password: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mail.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let spawned = std::process::Command::new("python3")
            .arg(&script)
            .arg(&out)
            .arg(user)
            .arg(password)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return missing(&format!("cannot run python3: {e}")),
        };
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut first);
        let port = first
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            return missing(&format!("the aiosmtpd sink did not start: {err}"));
        };
        Some(Self {
            port,
            out,
            child,
            _dir: dir,
        })
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn missing<T>(why: &str) -> Option<T> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the SMTP sink is required in CI (pip install aiosmtpd): {why}");
    }
    eprintln!("\n!!! SKIPPING the SMTP test: {why} (pip install aiosmtpd)\n");
    None
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin stops the sink; kill it if it lingers.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
