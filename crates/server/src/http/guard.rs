//! The guard in front of `/mcp`: the `Origin` allow-list, bearer tokens compared in constant
//! time, the body limit, per-caller rates, and the count of requests in flight that shutdown
//! waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use tokio::sync::Notify;

use crate::limits::{CallerLimits, Refusal};

/// An oversized body up to this size is read and dropped before the 413 is sent.
const DRAIN_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// How long reading an oversized body may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests in flight (except long-lived event streams): shutdown waits for them.
#[derive(Default)]
pub(super) struct InFlight {
    pub(super) count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub(super) async fn wait_idle(&self) {
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
pub(super) struct Guard {
    pub(super) tokens: Vec<Vec<u8>>,
    pub(super) allowed_origins: Vec<String>,
    pub(super) max_body_bytes: usize,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) limits: CallerLimits,
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

pub(super) async fn guard_mcp(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LimitSettings;

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
