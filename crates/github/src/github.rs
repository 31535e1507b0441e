//! [`Repository`] on the GitHub REST API (GitHub.com or Enterprise), through octocrab.
//!
//! Requests use octocrab's generic `get`/`post`/... with small response types of our own, so only
//! the fields the workflow reads must be present.

use async_trait::async_trait;
use base64::Engine;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::error::RepoError;
use crate::repo::{
    CloseReason, Comment, CommitRequest, CommitResult, EnsuredLabels, Issue, IssueFilter,
    IssueState, LabelSpec, NewIssue, Repository, validate_branch, validate_label,
    validate_repo_path,
};

/// GitHub REST implementation of [`Repository`].
pub struct GithubRepository {
    /// Built on first use: loading the system's root certificates is not free, and a server that
    /// never calls GitHub should not pay for it at start-up.
    client: OnceCell<Octocrab>,
    token: String,
    owner: String,
    name: String,
    base: String,
    default_branch: OnceCell<String>,
}

impl std::fmt::Debug for GithubRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GithubRepository({}/{} at {})",
            self.owner, self.name, self.base
        )
    }
}

impl GithubRepository {
    /// A client for `owner/name`. `api_url` is the REST base (`None`: <https://api.github.com>; for
    /// Enterprise `https://HOST/api/v3`). The token is registered as a secret so logs mask it.
    pub fn new(
        token: &str,
        owner: &str,
        name: &str,
        api_url: Option<&str>,
    ) -> Result<Self, RepoError> {
        mlops_core::logging::register_secret(token);
        let (owner, name) = crate::config::parse_owner_repo(&format!("{owner}/{name}"))?;
        let base = api_url
            .unwrap_or("https://api.github.com")
            .trim_end_matches('/')
            .to_string();
        let valid = base
            .parse::<axum::http::Uri>()
            .ok()
            .is_some_and(|u| u.scheme().is_some() && u.authority().is_some());
        if !valid {
            return Err(RepoError::invalid(format!(
                "GITHUB_API_URL `{base}` is not a valid URL; use e.g. https://api.github.com or https://github.example.com/api/v3"
            )));
        }
        Ok(Self {
            client: OnceCell::new(),
            token: token.to_string(),
            owner,
            name,
            base,
            default_branch: OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<&Octocrab, RepoError> {
        self.client
            .get_or_try_init(|| async {
                Octocrab::builder()
                    .personal_token(self.token.clone())
                    .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
                    .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                    .base_uri(self.base.as_str())
                    .map_err(|e| {
                        RepoError::invalid(format!(
                            "GITHUB_API_URL `{}` is not a valid URL: {e}",
                            self.base
                        ))
                    })?
                    .build()
                    .map_err(|e| {
                        RepoError::Backend(format!(
                            "could not set up the GitHub client (are the system's root certificates installed?): {e}"
                        ))
                    })
            })
            .await
    }

    fn route(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.name)
    }

    fn full(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    async fn get<R: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        route: &str,
        query: Option<&Q>,
        what: &str,
    ) -> Result<R, RepoError> {
        self.client()
            .await?
            .get::<R, _, _>(route, query)
            .await
            .map_err(|e| self.map_err(e, what))
    }

    async fn send<R: DeserializeOwned>(
        &self,
        method: &str,
        route: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<R, RepoError> {
        let client = self.client().await?;
        let r = match method {
            "POST" => client.post::<Value, R>(route, body).await,
            "PATCH" => client.patch::<R, _, Value>(route, body).await,
            "PUT" => client.put::<R, _, Value>(route, body).await,
            _ => client.delete::<R, _, Value>(route, body).await,
        };
        r.map_err(|e| self.map_err(e, what))
    }

    fn map_err(&self, e: octocrab::Error, what: &str) -> RepoError {
        let repo = self.full();
        let err = match e {
            octocrab::Error::GitHub { source, .. } => {
                let status = source.status_code.as_u16();
                let msg = source.message.clone();
                match status {
                    401 => RepoError::Auth(format!(
                        "GitHub rejected the token while trying to {what} (401 {msg}); check that GITHUB_TOKEN is valid and not expired"
                    )),
                    403 if msg.to_ascii_lowercase().contains("rate limit") => {
                        RepoError::Backend(format!(
                            "GitHub's rate limit was hit while trying to {what}: {msg}; wait and retry"
                        ))
                    }
                    403 => RepoError::Auth(format!(
                        "GitHub refused to {what} in {repo} (403 {msg}); the token needs the `repo` scope (or Issues and Contents read/write for a fine-grained token)"
                    )),
                    404 => RepoError::NotFound(format!(
                        "could not {what}: GitHub says not found in {repo} ({msg})"
                    )),
                    409 => RepoError::Conflict(format!("could not {what}: {msg}")),
                    422 => {
                        let details = source
                            .errors
                            .as_ref()
                            .map(|e| format!(" {}", Value::Array(e.clone())))
                            .unwrap_or_default();
                        RepoError::Invalid(format!(
                            "GitHub rejected the request to {what}: {msg}{details}"
                        ))
                    }
                    _ => RepoError::Backend(format!(
                        "GitHub failed to {what} ({status} {msg}); retry later"
                    )),
                }
            }
            other => RepoError::Backend(format!(
                "could not reach GitHub at {} to {what}: {other}",
                self.base
            )),
        };
        // Never let a token through, whatever the server echoed back.
        match err {
            RepoError::Auth(m) => RepoError::Auth(mlops_core::logging::mask_str(&m)),
            RepoError::Backend(m) => RepoError::Backend(mlops_core::logging::mask_str(&m)),
            other => other,
        }
    }

    async fn branch_or_default(&self, branch: Option<&str>) -> Result<String, RepoError> {
        if let Some(b) = branch {
            validate_branch(b)?;
            return Ok(b.to_string());
        }
        self.default_branch
            .get_or_try_init(|| async {
                let repo: GhRepo = self
                    .get(&self.route(""), None::<&()>, "read the repository")
                    .await?;
                Ok(repo.default_branch.unwrap_or_else(|| "main".into()))
            })
            .await
            .cloned()
    }
}

#[derive(Deserialize)]
struct GhRepo {
    default_branch: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GhLabel {
    Object { name: String },
    Name(String),
}

impl GhLabel {
    fn name(self) -> String {
        match self {
            GhLabel::Object { name } | GhLabel::Name(name) => name,
        }
    }
}

#[derive(Deserialize)]
struct GhUser {
    login: String,
}

#[derive(Deserialize)]
struct GhIssue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    state_reason: Option<String>,
    #[serde(default)]
    labels: Vec<GhLabel>,
    #[serde(default)]
    user: Option<GhUser>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    comments: Option<u64>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    pull_request: Option<Value>,
}

impl From<GhIssue> for Issue {
    fn from(i: GhIssue) -> Self {
        Issue {
            number: i.number,
            title: i.title,
            body: i.body.unwrap_or_default(),
            state: if i.state == "closed" {
                IssueState::Closed
            } else {
                IssueState::Open
            },
            state_reason: match i.state_reason.as_deref() {
                Some("completed") => Some(CloseReason::Completed),
                Some("not_planned") => Some(CloseReason::NotPlanned),
                _ => None,
            },
            labels: i.labels.into_iter().map(GhLabel::name).collect(),
            author: i.user.map(|u| u.login),
            url: i.html_url,
            comments: i.comments.unwrap_or(0),
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

#[derive(Deserialize)]
struct GhComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<GhUser>,
    #[serde(default)]
    author_association: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

impl From<GhComment> for Comment {
    fn from(c: GhComment) -> Self {
        Comment {
            id: c.id,
            body: c.body.unwrap_or_default(),
            author: c.user.map(|u| u.login),
            author_association: c.author_association,
            url: c.html_url,
            created_at: c.created_at,
        }
    }
}

#[derive(Deserialize)]
struct GhContentFile {
    #[serde(rename = "type")]
    kind: String,
    sha: String,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct GhDirEntry {
    name: String,
}

#[derive(Deserialize)]
struct GhPutResult {
    #[serde(default)]
    content: Option<GhPutContent>,
    commit: GhPutCommit,
}

#[derive(Deserialize)]
struct GhPutContent {
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct GhPutCommit {
    sha: String,
    #[serde(default)]
    html_url: Option<String>,
}

/// Percent-encodes one path segment for a URL.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Serialize)]
struct RefQuery<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
}

#[derive(Serialize)]
struct Page {
    per_page: u32,
    page: u32,
}

#[async_trait]
impl Repository for GithubRepository {
    fn describe(&self) -> String {
        format!("github:{}", self.full())
    }

    async fn create_issue(&self, new: NewIssue) -> Result<Issue, RepoError> {
        if new.title.trim().is_empty() {
            return Err(RepoError::invalid("an issue needs a non-empty title"));
        }
        for l in &new.labels {
            validate_label(l)?;
        }
        let body = json!({"title": new.title, "body": new.body, "labels": new.labels});
        let i: GhIssue = self
            .send(
                "POST",
                &self.route("/issues"),
                Some(&body),
                "create an issue",
            )
            .await?;
        Ok(i.into())
    }

    async fn get_issue(&self, number: u64) -> Result<Issue, RepoError> {
        let i: GhIssue = self
            .get(
                &self.route(&format!("/issues/{number}")),
                None::<&()>,
                &format!("read issue #{number}"),
            )
            .await?;
        if i.pull_request.is_some() {
            return Err(RepoError::invalid(format!(
                "#{number} is a pull request, not an issue"
            )));
        }
        Ok(i.into())
    }

    async fn list_issues(&self, filter: &IssueFilter) -> Result<Vec<Issue>, RepoError> {
        #[derive(Serialize)]
        struct Q<'a> {
            state: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            labels: Option<String>,
            sort: &'a str,
            direction: &'a str,
            per_page: u32,
            page: u32,
        }
        let state = match filter.state {
            Some(IssueState::Open) => "open",
            Some(IssueState::Closed) => "closed",
            None => "all",
        };
        let limit = filter.limit.clamp(1, 1000);
        let per_page = limit.min(100) as u32;
        let mut out = Vec::new();
        for page in 1..=20 {
            let q = Q {
                state,
                labels: (!filter.labels.is_empty()).then(|| filter.labels.join(",")),
                sort: "created",
                direction: "desc",
                per_page,
                page,
            };
            let items: Vec<GhIssue> = self
                .get(&self.route("/issues"), Some(&q), "list issues")
                .await?;
            let n = items.len();
            out.extend(
                items
                    .into_iter()
                    .filter(|i| i.pull_request.is_none())
                    .map(Issue::from),
            );
            if out.len() >= limit || n < per_page as usize {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn list_comments(&self, number: u64, limit: usize) -> Result<Vec<Comment>, RepoError> {
        let mut out: Vec<Comment> = Vec::new();
        for page in 1..=10 {
            let items: Vec<GhComment> = self
                .get(
                    &self.route(&format!("/issues/{number}/comments")),
                    Some(&Page {
                        per_page: 100,
                        page,
                    }),
                    &format!("read the comments of issue #{number}"),
                )
                .await?;
            let n = items.len();
            out.extend(items.into_iter().map(Comment::from));
            if n < 100 {
                break;
            }
        }
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }

    async fn comment(&self, number: u64, body: &str) -> Result<Comment, RepoError> {
        if body.trim().is_empty() {
            return Err(RepoError::invalid("a comment needs a non-empty body"));
        }
        let c: GhComment = self
            .send(
                "POST",
                &self.route(&format!("/issues/{number}/comments")),
                Some(&json!({"body": body})),
                &format!("comment on issue #{number}"),
            )
            .await?;
        Ok(c.into())
    }

    async fn close_issue(
        &self,
        number: u64,
        reason: Option<CloseReason>,
    ) -> Result<Issue, RepoError> {
        let mut body = json!({"state": "closed"});
        if let Some(r) = reason {
            body["state_reason"] = serde_json::to_value(r).unwrap_or(Value::Null);
        }
        let i: GhIssue = self
            .send(
                "PATCH",
                &self.route(&format!("/issues/{number}")),
                Some(&body),
                &format!("close issue #{number}"),
            )
            .await?;
        Ok(i.into())
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<Vec<String>, RepoError> {
        for l in labels {
            validate_label(l)?;
        }
        let got: Vec<GhLabel> = self
            .send(
                "POST",
                &self.route(&format!("/issues/{number}/labels")),
                Some(&json!({"labels": labels})),
                &format!("label issue #{number}"),
            )
            .await?;
        Ok(got.into_iter().map(GhLabel::name).collect())
    }

    async fn remove_label(&self, number: u64, label: &str) -> Result<Vec<String>, RepoError> {
        validate_label(label)?;
        let r: Result<Vec<GhLabel>, _> = self
            .send(
                "DELETE",
                &self.route(&format!(
                    "/issues/{number}/labels/{}",
                    encode_segment(label)
                )),
                None,
                &format!("remove label `{label}` from issue #{number}"),
            )
            .await;
        match r {
            Ok(left) => Ok(left.into_iter().map(GhLabel::name).collect()),
            // The label is not on the issue (or does not exist): fine, if the issue exists.
            Err(RepoError::NotFound(_)) => Ok(self.get_issue(number).await?.labels),
            Err(e) => Err(e),
        }
    }

    async fn ensure_labels(&self, labels: &[LabelSpec]) -> Result<EnsuredLabels, RepoError> {
        let mut have = Vec::new();
        for page in 1..=10 {
            let items: Vec<GhLabel> = self
                .get(
                    &self.route("/labels"),
                    Some(&Page {
                        per_page: 100,
                        page,
                    }),
                    "list the repository's labels",
                )
                .await?;
            let n = items.len();
            have.extend(items.into_iter().map(GhLabel::name));
            if n < 100 {
                break;
            }
        }
        let mut report = EnsuredLabels::default();
        for l in labels {
            validate_label(&l.name)?;
            if have.iter().any(|h| h.eq_ignore_ascii_case(&l.name)) {
                report.existing.push(l.name.clone());
                continue;
            }
            let body = json!({"name": l.name, "color": l.color, "description": l.description});
            let r: Result<Value, _> = self
                .send(
                    "POST",
                    &self.route("/labels"),
                    Some(&body),
                    &format!("create label `{}`", l.name),
                )
                .await;
            match r {
                Ok(_) => report.created.push(l.name.clone()),
                // Created meanwhile by someone else (422 already_exists).
                Err(RepoError::Invalid(m)) if m.contains("already_exists") => {
                    report.existing.push(l.name.clone())
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn commit_file(&self, req: &CommitRequest) -> Result<CommitResult, RepoError> {
        validate_repo_path(&req.path)?;
        if req.message.trim().is_empty() {
            return Err(RepoError::invalid("a commit needs a non-empty message"));
        }
        let branch = self.branch_or_default(req.branch.as_deref()).await?;
        let route = self.route(&format!("/contents/{}", encode_path(&req.path)));
        let existing: Result<Value, _> = self
            .get(
                &route,
                Some(&RefQuery { reference: &branch }),
                &format!("read `{}` on branch `{branch}`", req.path),
            )
            .await;
        let existing = match existing {
            Ok(Value::Array(_)) => {
                return Err(RepoError::invalid(format!(
                    "`{}` is a folder in {}; give a file path",
                    req.path,
                    self.full()
                )));
            }
            Ok(v) => Some(serde_json::from_value::<GhContentFile>(v).map_err(|e| {
                RepoError::Backend(format!(
                    "GitHub's answer for `{}` was not a file description: {e}",
                    req.path
                ))
            })?),
            Err(RepoError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(f) = &existing {
            if f.kind != "file" {
                return Err(RepoError::invalid(format!(
                    "`{}` is a {} in {}, not a file",
                    req.path,
                    f.kind,
                    self.full()
                )));
            }
            if req.create_only {
                return Err(RepoError::Conflict(format!(
                    "`{}` already exists on branch `{branch}`",
                    req.path
                )));
            }
            let same = f.content.as_deref().and_then(|c| {
                let clean: String = c.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD.decode(clean).ok()
            });
            if same.as_deref() == Some(req.content.as_slice()) {
                return Ok(CommitResult::unchanged(&req.path, branch));
            }
        }
        let mut body = json!({
            "message": req.message,
            "content": base64::engine::general_purpose::STANDARD.encode(&req.content),
            "branch": branch,
        });
        if let Some(f) = &existing {
            body["sha"] = Value::String(f.sha.clone());
        }
        let what = format!("commit `{}` to branch `{branch}`", req.path);
        let put: GhPutResult = match self.send("PUT", &route, Some(&body), &what).await {
            Ok(p) => p,
            // The file appeared (or changed) between our read and write.
            Err(RepoError::Invalid(m)) if m.contains("sha") => {
                return Err(RepoError::Conflict(format!(
                    "`{}` changed on branch `{branch}` while committing; retry ({m})",
                    req.path
                )));
            }
            Err(e) => return Err(e),
        };
        Ok(CommitResult {
            path: req.path.clone(),
            branch,
            commit_sha: Some(put.commit.sha),
            created: existing.is_none(),
            changed: true,
            url: put.content.and_then(|c| c.html_url).or(put.commit.html_url),
        })
    }

    async fn list_dir(&self, dir: &str, branch: Option<&str>) -> Result<Vec<String>, RepoError> {
        validate_repo_path(dir)?;
        let branch = self.branch_or_default(branch).await?;
        let r: Result<Value, _> = self
            .get(
                &self.route(&format!("/contents/{}", encode_path(dir))),
                Some(&RefQuery { reference: &branch }),
                &format!("list `{dir}` on branch `{branch}`"),
            )
            .await;
        match r {
            Ok(Value::Array(items)) => Ok(items
                .into_iter()
                .filter_map(|v| serde_json::from_value::<GhDirEntry>(v).ok())
                .map(|e| e.name)
                .collect()),
            Ok(_) => Err(RepoError::invalid(format!(
                "`{dir}` is a file in {}, not a folder",
                self.full()
            ))),
            Err(RepoError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn read_file(
        &self,
        path: &str,
        branch: Option<&str>,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        validate_repo_path(path)?;
        let branch = self.branch_or_default(branch).await?;
        let r: Result<Value, _> = self
            .get(
                &self.route(&format!("/contents/{}", encode_path(path))),
                Some(&RefQuery { reference: &branch }),
                &format!("read `{path}` on branch `{branch}`"),
            )
            .await;
        let file = match r {
            Ok(Value::Array(_)) => return Ok(None),
            Ok(v) => serde_json::from_value::<GhContentFile>(v).map_err(|e| {
                RepoError::Backend(format!(
                    "GitHub's answer for `{path}` was not a file description: {e}"
                ))
            })?,
            Err(RepoError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.kind != "file" {
            return Ok(None);
        }
        // The contents API wraps its Base64 in lines.
        let clean: String = file
            .content
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map(Some)
            .map_err(|e| {
                RepoError::Backend(format!("GitHub's content of `{path}` is not Base64: {e}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_api_urls_are_refused_up_front() {
        for bad in ["not a url", "api.github.com", "https://"] {
            let e = GithubRepository::new("t", "a", "b", Some(bad)).unwrap_err();
            assert!(e.to_string().contains("GITHUB_API_URL"), "{bad}: {e}");
        }
        GithubRepository::new("t", "a", "b", Some("https://ghe.example.com/api/v3")).unwrap();
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("mlops:train"), "mlops%3Atrain");
        assert_eq!(encode_path("a b/c.md"), "a%20b/c.md");
    }
}
