//! [`Repository`] on a local git repository: the embedded default when no GitHub token is set.
//!
//! - Files (the training history) are committed with the `git` command, through plumbing
//!   (`hash-object`, a private index, `commit-tree`, `update-ref` with the old value), so any branch
//!   can be written without touching the work tree, and a concurrent writer is detected rather than
//!   overwritten. When the branch written is the one checked out, the file is also written to the
//!   work tree and the index, so `git status` stays clean.
//! - Issues, comments and labels are JSON files under `.mlops/` in the repository folder
//!   (`.mlops/issues/<n>.json`, `.mlops/labels.json`, `.mlops/state.json`). They are **not**
//!   committed: they are the state of a stand-in issue tracker, not history, and `.mlops/` is added
//!   to `.git/info/exclude` so it never shows as untracked. Writes are atomic (write, then rename).
//! - A new repository is created with `git init -b main`; when the repository has no committer
//!   identity, `mlops-mcp <mlops-mcp@localhost>` is set in its own config so commits work on a
//!   machine with no global git configuration.
//!
//! One process at a time: operations are serialised by an in-process lock.
//!
//! The git side (opening the repository, the history's files) is in [`git`]; the issue tracker's
//! files are in [`issues`]. Here: the [`Repository`] operations, their checks and their lock.

mod git;
mod issues;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::{Mutex, OnceCell};

use crate::error::RepoError;
use crate::repo::{
    CloseReason, Comment, CommitRequest, CommitResult, EnsuredLabels, Issue, IssueFilter,
    IssueState, LabelSpec, NewIssue, Repository, validate_label, validate_repo_path,
};
use git::Repo;
use issues::LocalIssue;

/// The issue tracker's folder in the repository, never committed.
const STATE_DIR: &str = ".mlops";

/// Local git implementation of [`Repository`]. Created lazily: nothing runs (no `git` process)
/// until the first operation, so opening it at server start-up costs nothing.
#[derive(Debug)]
pub struct LocalRepository {
    path: PathBuf,
    ready: OnceCell<Repo>,
    lock: Mutex<()>,
}

impl LocalRepository {
    /// The repository at `path`, opened (and `git init`ed if needed) on first use.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            ready: OnceCell::new(),
            lock: Mutex::new(()),
        }
    }

    /// Opens the git repository at `path` now, creating the folder and running `git init` if needed.
    pub async fn open(path: &Path) -> Result<Self, RepoError> {
        let repo = Self::new(path);
        repo.ready().await?;
        Ok(repo)
    }

    /// The repository folder, as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn ready(&self) -> Result<&Repo, RepoError> {
        self.ready.get_or_try_init(|| Repo::open(&self.path)).await
    }
}

/// Issue and comment times: UTC to the second, as GitHub gives them.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A file-system failure, saying what was being done to which file.
fn io_err(what: &str, path: &Path, e: std::io::Error) -> RepoError {
    RepoError::Io(format!("could not {what} `{}`: {e}", path.display()))
}

#[async_trait]
impl Repository for LocalRepository {
    fn describe(&self) -> String {
        format!("local:{}", self.path.display())
    }

    async fn create_issue(&self, new: NewIssue) -> Result<Issue, RepoError> {
        let r = self.ready().await?;
        if new.title.trim().is_empty() {
            return Err(RepoError::invalid("an issue needs a non-empty title"));
        }
        for l in &new.labels {
            validate_label(l)?;
        }
        let _g = self.lock.lock().await;
        let mut st = r.read_state().await?;
        let number = st.next_issue.max(1);
        st.next_issue = number + 1;
        let mut labels: Vec<String> = Vec::new();
        for l in new.labels {
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        r.register_labels(&labels).await?;
        let t = now();
        let issue = LocalIssue {
            number,
            title: new.title,
            body: new.body,
            state: IssueState::Open,
            state_reason: None,
            labels,
            author: Some(Repo::local_author()),
            created_at: t.clone(),
            updated_at: t,
            comments: Vec::new(),
        };
        r.write_issue(&issue).await?;
        r.write_state(&st).await?;
        Ok(issue.to_issue(&r.issue_path(number)))
    }

    async fn get_issue(&self, number: u64) -> Result<Issue, RepoError> {
        let r = self.ready().await?;
        let i = r.read_issue(number).await?;
        Ok(i.to_issue(&r.issue_path(number)))
    }

    async fn list_issues(&self, filter: &IssueFilter) -> Result<Vec<Issue>, RepoError> {
        let r = self.ready().await?;
        let mut all: Vec<LocalIssue> = r
            .all_issues()
            .await?
            .into_iter()
            .filter(|i| filter.state.is_none_or(|s| s == i.state))
            .filter(|i| {
                filter
                    .labels
                    .iter()
                    .all(|l| i.labels.iter().any(|il| il.eq_ignore_ascii_case(l)))
            })
            .collect();
        all.sort_by_key(|i| std::cmp::Reverse(i.number));
        all.truncate(filter.limit.max(1));
        Ok(all
            .iter()
            .map(|i| i.to_issue(&r.issue_path(i.number)))
            .collect())
    }

    async fn list_comments(&self, number: u64, limit: usize) -> Result<Vec<Comment>, RepoError> {
        let r = self.ready().await?;
        let mut c = r.read_issue(number).await?.comments;
        let skip = c.len().saturating_sub(limit);
        Ok(c.split_off(skip))
    }

    async fn comment(&self, number: u64, body: &str) -> Result<Comment, RepoError> {
        let r = self.ready().await?;
        if body.trim().is_empty() {
            return Err(RepoError::invalid("a comment needs a non-empty body"));
        }
        let _g = self.lock.lock().await;
        let mut issue = r.read_issue(number).await?;
        let mut st = r.read_state().await?;
        let id = st.next_comment.max(1);
        st.next_comment = id + 1;
        let c = Comment {
            id,
            body: body.to_string(),
            author: Some(Repo::local_author()),
            // The local operator owns the local repository.
            author_association: Some("OWNER".into()),
            url: Some(format!("{}#comment-{id}", r.issue_path(number).display())),
            created_at: Some(now()),
        };
        issue.comments.push(c.clone());
        issue.updated_at = now();
        r.write_issue(&issue).await?;
        r.write_state(&st).await?;
        Ok(c)
    }

    async fn close_issue(
        &self,
        number: u64,
        reason: Option<CloseReason>,
    ) -> Result<Issue, RepoError> {
        let r = self.ready().await?;
        let _g = self.lock.lock().await;
        let mut issue = r.read_issue(number).await?;
        issue.state = IssueState::Closed;
        issue.state_reason = Some(reason.unwrap_or(CloseReason::Completed));
        issue.updated_at = now();
        r.write_issue(&issue).await?;
        Ok(issue.to_issue(&r.issue_path(number)))
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<Vec<String>, RepoError> {
        let r = self.ready().await?;
        for l in labels {
            validate_label(l)?;
        }
        let _g = self.lock.lock().await;
        let mut issue = r.read_issue(number).await?;
        for l in labels {
            if !issue.labels.iter().any(|x| x.eq_ignore_ascii_case(l)) {
                issue.labels.push(l.clone());
            }
        }
        r.register_labels(labels).await?;
        issue.updated_at = now();
        r.write_issue(&issue).await?;
        Ok(issue.labels)
    }

    async fn remove_label(&self, number: u64, label: &str) -> Result<Vec<String>, RepoError> {
        let r = self.ready().await?;
        validate_label(label)?;
        let _g = self.lock.lock().await;
        let mut issue = r.read_issue(number).await?;
        let before = issue.labels.len();
        issue.labels.retain(|l| !l.eq_ignore_ascii_case(label));
        if issue.labels.len() != before {
            issue.updated_at = now();
            r.write_issue(&issue).await?;
        }
        Ok(issue.labels)
    }

    async fn ensure_labels(&self, labels: &[LabelSpec]) -> Result<EnsuredLabels, RepoError> {
        let r = self.ready().await?;
        for l in labels {
            validate_label(&l.name)?;
        }
        let _g = self.lock.lock().await;
        r.store_labels(labels.iter().cloned()).await
    }

    async fn commit_file(&self, req: &CommitRequest) -> Result<CommitResult, RepoError> {
        let r = self.ready().await?;
        validate_repo_path(&req.path)?;
        if req.path == STATE_DIR || req.path.starts_with(&format!("{STATE_DIR}/")) {
            return Err(RepoError::invalid(format!(
                "`{STATE_DIR}/` holds the local issue tracker's files; commit elsewhere"
            )));
        }
        if req.message.trim().is_empty() {
            return Err(RepoError::invalid("a commit needs a non-empty message"));
        }
        let _g = self.lock.lock().await;
        r.commit_file(req).await
    }

    async fn list_dir(&self, dir: &str, branch: Option<&str>) -> Result<Vec<String>, RepoError> {
        let r = self.ready().await?;
        validate_repo_path(dir)?;
        r.list_dir(dir, branch).await
    }

    async fn read_file(
        &self,
        path: &str,
        branch: Option<&str>,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let r = self.ready().await?;
        validate_repo_path(path)?;
        r.read_file(path, branch).await
    }
}
