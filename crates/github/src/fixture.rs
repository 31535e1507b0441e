//! An in-process stand-in for the GitHub REST API, for tests (feature `test-fixture`).
//!
//! It serves, on `127.0.0.1:<random port>`, the calls [`crate::GithubRepository`] makes: issues
//! (create, get, list with label/state filters, update), comments, issue labels, repository
//! labels, and the contents API (files and folders per branch, with blob shas checked on update as
//! GitHub does). It keeps its state in memory, records every request (method, path, query, JSON
//! body, whether a token was sent) so tests can assert what was sent, checks the bearer token
//! (401 "Bad credentials" otherwise), and can be told to fail the next request.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One request the fixture received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Decoded path, e.g. `/repos/acme/models/issues/1/labels/mlops:train`.
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    pub body: Option<Value>,
    /// The `Authorization` header was `Bearer <the expected token>` (or `token <it>`).
    pub authorized: bool,
}

#[derive(Debug, Clone)]
struct FxIssue {
    number: u64,
    title: String,
    body: String,
    state: String,
    state_reason: Option<String>,
    labels: Vec<String>,
    comments: Vec<Value>,
}

#[derive(Default)]
struct FxState {
    issues: BTreeMap<u64, FxIssue>,
    next_issue: u64,
    next_comment: u64,
    labels: Vec<(String, String, String)>,
    /// (branch, path) → content
    files: BTreeMap<(String, String), Vec<u8>>,
    branches: BTreeSet<String>,
    commits: u64,
    requests: Vec<RecordedRequest>,
    fail_next: VecDeque<(u16, String)>,
}

struct Shared {
    owner: String,
    repo: String,
    token: String,
    state: Mutex<FxState>,
}

/// A running fixture; stops when dropped.
pub struct GithubFixture {
    /// `http://127.0.0.1:PORT`: give it to [`crate::GithubRepository::new`] as the API URL.
    pub base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GithubFixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn blob_sha(content: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex::encode(h.finalize())[..40].to_string()
}

fn decode(s: &str) -> String {
    decode_with(s, false)
}

fn decode_query(s: &str) -> String {
    decode_with(s, true)
}

fn decode_with(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl GithubFixture {
    /// Starts a fixture for `owner/repo` accepting `token`, with a `main` branch.
    pub async fn start(owner: &str, repo: &str, token: &str) -> Self {
        let shared = Arc::new(Shared {
            owner: owner.into(),
            repo: repo.into(),
            token: token.into(),
            state: Mutex::new(FxState {
                next_issue: 1,
                next_comment: 1000,
                branches: ["main".to_string()].into(),
                ..Default::default()
            }),
        });
        let s = shared.clone();
        let app = Router::new().fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| {
            let s = s.clone();
            async move { s.handle(m, u, h, b) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FxState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// The issue as the fixture would return it.
    pub fn issue(&self, number: u64) -> Option<Value> {
        let st = self.state();
        st.issues.get(&number).map(|i| self.shared.issue_json(i))
    }

    /// The content of a file on a branch.
    pub fn file(&self, branch: &str, path: &str) -> Option<Vec<u8>> {
        self.state()
            .files
            .get(&(branch.to_string(), path.to_string()))
            .cloned()
    }

    /// Names of the repository's labels.
    pub fn label_names(&self) -> Vec<String> {
        self.state().labels.iter().map(|l| l.0.clone()).collect()
    }

    /// Adds a branch.
    pub fn add_branch(&self, name: &str) {
        self.state().branches.insert(name.to_string());
    }

    /// Writes a file directly (as if pushed by someone else).
    pub fn put_file(&self, branch: &str, path: &str, content: &[u8]) {
        self.state()
            .files
            .insert((branch.to_string(), path.to_string()), content.to_vec());
    }

    /// Makes the next request fail with `status` and GitHub's `{"message": ...}` body.
    pub fn fail_next(&self, status: u16, message: &str) {
        self.state()
            .fail_next
            .push_back((status, message.to_string()));
    }

    /// How many commits the contents API made.
    pub fn commit_count(&self) -> u64 {
        self.state().commits
    }
}

fn msg(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        ),
    )
        .into_response()
}

fn ok(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// The label names a request body lists under `labels` (creating an issue, or labelling one).
fn requested_labels(body: &Value) -> Vec<String> {
    body["labels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Shared {
    fn label_json(&self, st: &FxState, name: &str) -> Value {
        let (color, desc) = st
            .labels
            .iter()
            .find(|l| l.0 == name)
            .map(|l| (l.1.clone(), l.2.clone()))
            .unwrap_or_else(|| ("ededed".into(), String::new()));
        json!({"id": 1, "node_id": "LA_x", "url": "", "name": name, "color": color, "default": false, "description": desc})
    }

    fn issue_json(&self, i: &FxIssue) -> Value {
        json!({
            "id": i.number * 10,
            "node_id": format!("I_{}", i.number),
            "number": i.number,
            "title": i.title,
            "body": i.body,
            "state": i.state,
            "state_reason": i.state_reason,
            "labels": i.labels.iter().map(|l| json!({"name": l, "color": "ededed"})).collect::<Vec<_>>(),
            "user": {"login": "octocat", "id": 1, "type": "User"},
            "author_association": "OWNER",
            "comments": i.comments.len(),
            "html_url": format!("https://github.com/{}/{}/issues/{}", self.owner, self.repo, i.number),
            "created_at": "2026-11-25T00:00:00Z",
            "updated_at": "2026-11-25T00:00:00Z",
        })
    }

    fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = decode(uri.path());
        let query: BTreeMap<String, String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode_query(k), decode_query(v)),
                None => (decode_query(p), String::new()),
            })
            .collect();
        let json_body: Option<Value> = if body.is_empty() {
            None
        } else {
            serde_json::from_slice(&body).ok()
        };
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let authorized =
            auth == format!("Bearer {}", self.token) || auth == format!("token {}", self.token);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: json_body.clone(),
            authorized,
        });
        if let Some((status, message)) = st.fail_next.pop_front() {
            return msg(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &message,
            );
        }
        if !authorized {
            return msg(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        let prefix = format!("/repos/{}/{}", self.owner, self.repo);
        // GitHub Enterprise serves the API under `/api/v3`.
        let routed = path.strip_prefix("/api/v3").unwrap_or(&path);
        let Some(rest) = routed.strip_prefix(&prefix) else {
            return msg(StatusCode::NOT_FOUND, "Not Found");
        };
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let body = json_body.unwrap_or(Value::Null);
        let page = |items: Vec<Value>| -> Vec<Value> {
            let per: usize = query
                .get("per_page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30);
            let page: usize = query.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
            items
                .into_iter()
                .skip(per * page.saturating_sub(1))
                .take(per)
                .collect()
        };
        match (method.as_str(), segs.as_slice()) {
            ("GET", [""]) => ok(
                StatusCode::OK,
                json!({"full_name": format!("{}/{}", self.owner, self.repo), "default_branch": "main"}),
            ),
            ("POST", ["issues"]) => {
                let Some(title) = body["title"].as_str().filter(|t| !t.is_empty()) else {
                    return msg(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
                };
                let number = st.next_issue;
                st.next_issue += 1;
                let labels = requested_labels(&body);
                for l in &labels {
                    if !st.labels.iter().any(|x| &x.0 == l) {
                        st.labels.push((l.clone(), "ededed".into(), String::new()));
                    }
                }
                let issue = FxIssue {
                    number,
                    title: title.into(),
                    body: body["body"].as_str().unwrap_or_default().into(),
                    state: "open".into(),
                    state_reason: None,
                    labels,
                    comments: Vec::new(),
                };
                let v = self.issue_json(&issue);
                st.issues.insert(number, issue);
                ok(StatusCode::CREATED, v)
            }
            ("GET", ["issues"]) => {
                let state = query.get("state").map(String::as_str).unwrap_or("open");
                let want: Vec<&str> = query
                    .get("labels")
                    .map(|l| l.split(',').filter(|x| !x.is_empty()).collect())
                    .unwrap_or_default();
                let items: Vec<Value> = st
                    .issues
                    .values()
                    .rev()
                    .filter(|i| state == "all" || i.state == state)
                    .filter(|i| want.iter().all(|w| i.labels.iter().any(|l| l == w)))
                    .map(|i| self.issue_json(i))
                    .collect();
                ok(StatusCode::OK, Value::Array(page(items)))
            }
            (m, ["issues", n, tail @ ..]) => {
                let Some(number) = n.parse::<u64>().ok().filter(|n| st.issues.contains_key(n))
                else {
                    return msg(StatusCode::NOT_FOUND, "Not Found");
                };
                self.issue_route(&mut st, m, number, tail, &body, page)
            }
            ("GET", ["labels"]) => {
                let items: Vec<Value> = st
                    .labels
                    .iter()
                    .map(|l| self.label_json(&st, &l.0))
                    .collect();
                ok(StatusCode::OK, Value::Array(page(items)))
            }
            ("POST", ["labels"]) => {
                let name = body["name"].as_str().unwrap_or_default().to_string();
                if name.is_empty() {
                    return msg(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
                }
                if st.labels.iter().any(|l| l.0.eq_ignore_ascii_case(&name)) {
                    return ok(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": "Validation Failed", "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}]}),
                    );
                }
                st.labels.push((
                    name.clone(),
                    body["color"].as_str().unwrap_or("ededed").into(),
                    body["description"].as_str().unwrap_or_default().into(),
                ));
                let v = self.label_json(&st, &name);
                ok(StatusCode::CREATED, v)
            }
            (m, ["contents", path @ ..]) if !path.is_empty() => {
                self.contents(&mut st, m, &path.join("/"), &query, &body)
            }
            _ => msg(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn issue_route(
        &self,
        st: &mut FxState,
        method: &str,
        number: u64,
        tail: &[&str],
        body: &Value,
        page: impl Fn(Vec<Value>) -> Vec<Value>,
    ) -> Response {
        let next_comment = st.next_comment;
        let known_labels: Vec<String> = st.labels.iter().map(|l| l.0.clone()).collect();
        let Some(issue) = st.issues.get_mut(&number) else {
            return msg(StatusCode::NOT_FOUND, "Not Found");
        };
        let labels_json =
            |i: &FxIssue| Value::Array(i.labels.iter().map(|l| json!({"name": l})).collect());
        match (method, tail) {
            ("GET", []) => ok(StatusCode::OK, self.issue_json(issue)),
            ("PATCH", []) => {
                if let Some(s) = body["state"].as_str() {
                    issue.state = s.into();
                }
                if let Some(r) = body["state_reason"].as_str() {
                    issue.state_reason = Some(r.into());
                }
                if let Some(t) = body["title"].as_str() {
                    issue.title = t.into();
                }
                if let Some(b) = body["body"].as_str() {
                    issue.body = b.into();
                }
                ok(StatusCode::OK, self.issue_json(issue))
            }
            ("GET", ["comments"]) => ok(StatusCode::OK, Value::Array(page(issue.comments.clone()))),
            ("POST", ["comments"]) => {
                let Some(text) = body["body"].as_str() else {
                    return msg(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
                };
                let c = json!({
                    "id": next_comment,
                    "body": text,
                    "user": {"login": "mlops-bot", "type": "Bot"},
                    "author_association": "NONE",
                    "html_url": format!("https://github.com/{}/{}/issues/{number}#issuecomment-{next_comment}", self.owner, self.repo),
                    "created_at": "2026-11-25T00:00:00Z",
                });
                issue.comments.push(c.clone());
                st.next_comment += 1;
                ok(StatusCode::CREATED, c)
            }
            ("POST", ["labels"]) => {
                let add = requested_labels(body);
                for l in &add {
                    if !issue.labels.contains(l) {
                        issue.labels.push(l.clone());
                    }
                }
                let v = labels_json(issue);
                for l in add {
                    if !known_labels.contains(&l) {
                        st.labels.push((l, "ededed".into(), String::new()));
                    }
                }
                ok(StatusCode::OK, v)
            }
            ("DELETE", ["labels", name]) => {
                let before = issue.labels.len();
                issue.labels.retain(|l| l != name);
                if issue.labels.len() == before {
                    return msg(StatusCode::NOT_FOUND, "Label does not exist");
                }
                ok(StatusCode::OK, labels_json(issue))
            }
            _ => msg(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn contents(
        &self,
        st: &mut FxState,
        method: &str,
        path: &str,
        query: &BTreeMap<String, String>,
        body: &Value,
    ) -> Response {
        match method {
            "GET" => {
                let branch = query.get("ref").cloned().unwrap_or_else(|| "main".into());
                if !st.branches.contains(&branch) {
                    return msg(
                        StatusCode::NOT_FOUND,
                        &format!("No commit found for the ref {branch}"),
                    );
                }
                if let Some(c) = st.files.get(&(branch.clone(), path.to_string())) {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(c);
                    // GitHub wraps the base64 at 60 characters.
                    let wrapped: Vec<String> = b64
                        .as_bytes()
                        .chunks(60)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    return ok(
                        StatusCode::OK,
                        json!({
                            "type": "file", "encoding": "base64", "size": c.len(),
                            "name": path.rsplit('/').next().unwrap_or(path), "path": path,
                            "sha": blob_sha(c), "content": wrapped.join("\n") + "\n",
                        }),
                    );
                }
                let prefix = format!("{path}/");
                let mut names = BTreeSet::new();
                for ((b, p), _) in st.files.iter() {
                    if b == &branch
                        && let Some(rest) = p.strip_prefix(&prefix)
                    {
                        let first = rest.split('/').next().unwrap_or(rest);
                        let kind = if rest.contains('/') { "dir" } else { "file" };
                        names.insert((first.to_string(), kind));
                    }
                }
                if names.is_empty() {
                    return msg(StatusCode::NOT_FOUND, "Not Found");
                }
                ok(
                    StatusCode::OK,
                    Value::Array(
                        names
                            .into_iter()
                            .map(|(n, k)| json!({"name": n, "path": format!("{prefix}{n}"), "type": k, "sha": "0"}))
                            .collect(),
                    ),
                )
            }
            "PUT" => {
                let branch = body["branch"].as_str().unwrap_or("main").to_string();
                if !st.branches.contains(&branch) {
                    return msg(StatusCode::NOT_FOUND, &format!("Branch {branch} not found"));
                }
                let Some(content) = body["content"]
                    .as_str()
                    .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                else {
                    return msg(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "content is not valid Base64",
                    );
                };
                if body["message"].as_str().is_none_or(str::is_empty) {
                    return msg(StatusCode::UNPROCESSABLE_ENTITY, "message is missing");
                }
                let key = (branch.clone(), path.to_string());
                let existing = st.files.get(&key).map(|c| blob_sha(c));
                match (&existing, body["sha"].as_str()) {
                    (Some(_), None) => {
                        return msg(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid request.\n\n\"sha\" wasn't supplied.",
                        );
                    }
                    (Some(have), Some(given)) if have != given => {
                        return msg(
                            StatusCode::CONFLICT,
                            &format!("{path} does not match {given}"),
                        );
                    }
                    _ => {}
                }
                let sha = blob_sha(&content);
                st.files.insert(key, content);
                st.commits += 1;
                let commit = format!("{:040x}", st.commits);
                ok(
                    if existing.is_some() {
                        StatusCode::OK
                    } else {
                        StatusCode::CREATED
                    },
                    json!({
                        "content": {"name": path.rsplit('/').next().unwrap_or(path), "path": path, "sha": sha,
                            "html_url": format!("https://github.com/{}/{}/blob/{branch}/{path}", self.owner, self.repo)},
                        "commit": {"sha": commit,
                            "html_url": format!("https://github.com/{}/{}/commit/{commit}", self.owner, self.repo)},
                    }),
                )
            }
            _ => msg(StatusCode::NOT_FOUND, "Not Found"),
        }
    }
}
