//! The repository operations the workflow needs, behind one trait.

use async_trait::async_trait;
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::RepoError;

/// Where training history files are committed.
pub const HISTORY_DIR: &str = "training_history";

/// How many numbers `commit_history` tries before giving up (each lost race moves to the next).
const HISTORY_CLAIM_TRIES: usize = 10;

/// A label the project uses, with its colour (hex, no `#`) and description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LabelSpec {
    pub name: String,
    pub color: String,
    pub description: String,
}

/// The labels of the issue-driven workflow: the trigger and the status labels.
pub const MLOPS_LABELS: [(&str, &str, &str); 5] = [
    (
        "mlops:train",
        "1d76db",
        "Start an MLOps training run from this issue",
    ),
    (
        "mlops:running",
        "fbca04",
        "An MLOps training run is in progress",
    ),
    (
        "mlops:succeeded",
        "0e8a16",
        "The MLOps training run met its threshold",
    ),
    ("mlops:failed", "d73a4a", "The MLOps training run failed"),
    (
        "mlops:awaiting-approval",
        "d876e3",
        "Waiting for an operator to /approve or /reject a retry",
    ),
];

impl LabelSpec {
    /// The project's labels ([`MLOPS_LABELS`]).
    pub fn mlops() -> Vec<LabelSpec> {
        MLOPS_LABELS
            .iter()
            .map(|(n, c, d)| LabelSpec {
                name: (*n).into(),
                color: (*c).into(),
                description: (*d).into(),
            })
            .collect()
    }
}

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    #[default]
    Open,
    Closed,
}

/// Why an issue was closed (GitHub's `state_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Completed,
    NotPlanned,
}

/// An issue as the workflow sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: IssueState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<CloseReason>,
    pub labels: Vec<String>,
    /// Login of the author, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Web address (GitHub) or file path (local) of the issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Number of comments.
    pub comments: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// A comment on an issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comment {
    pub id: u64,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// GitHub's `author_association` (OWNER, MEMBER, COLLABORATOR, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_association: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A new issue.
#[derive(Debug, Clone, Default)]
pub struct NewIssue {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

/// Which issues to list.
#[derive(Debug, Clone)]
pub struct IssueFilter {
    /// Issues carrying all of these labels.
    pub labels: Vec<String>,
    /// `None`: open and closed.
    pub state: Option<IssueState>,
    /// At most this many, newest first.
    pub limit: usize,
}

impl Default for IssueFilter {
    fn default() -> Self {
        Self {
            labels: Vec::new(),
            state: Some(IssueState::Open),
            limit: 30,
        }
    }
}

/// What the label check did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnsuredLabels {
    /// Labels that did not exist and were created.
    pub created: Vec<String>,
    /// Labels that already existed.
    pub existing: Vec<String>,
}

/// A file to commit.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// Repository-relative path with `/` separators (checked by [`validate_repo_path`]).
    pub path: String,
    pub content: Vec<u8>,
    pub message: String,
    /// `None`: the repository's default branch.
    pub branch: Option<String>,
    /// Fail with [`RepoError::Conflict`] when the file already exists (used to claim a history number).
    pub create_only: bool,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommitResult {
    pub path: String,
    /// The branch written to.
    pub branch: String,
    /// The new commit, or `None` when the file already had this content (nothing committed).
    pub commit_sha: Option<String>,
    /// Whether the file was created (false: updated or unchanged).
    pub created: bool,
    /// Whether a commit was made.
    pub changed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl CommitResult {
    /// The answer when the file already holds the content: nothing is committed, so writing the
    /// same history twice is harmless.
    pub(crate) fn unchanged(path: &str, branch: String) -> Self {
        Self {
            path: path.to_string(),
            branch,
            commit_sha: None,
            created: false,
            changed: false,
            url: None,
        }
    }
}

/// Repository operations of the training workflow. Implemented by [`crate::GithubRepository`] and
/// [`crate::LocalRepository`].
#[async_trait]
pub trait Repository: Send + Sync {
    /// Which repository this is, for messages (`github:owner/name` or `local:/path`).
    fn describe(&self) -> String;
    async fn create_issue(&self, new: NewIssue) -> Result<Issue, RepoError>;
    async fn get_issue(&self, number: u64) -> Result<Issue, RepoError>;
    /// Issues (never pull requests) matching the filter, newest first.
    async fn list_issues(&self, filter: &IssueFilter) -> Result<Vec<Issue>, RepoError>;
    /// Comments of an issue, oldest first (at most `limit`, the most recent ones).
    async fn list_comments(&self, number: u64, limit: usize) -> Result<Vec<Comment>, RepoError>;
    async fn comment(&self, number: u64, body: &str) -> Result<Comment, RepoError>;
    async fn close_issue(
        &self,
        number: u64,
        reason: Option<CloseReason>,
    ) -> Result<Issue, RepoError>;
    /// Adds labels (creating unknown ones); returns the issue's labels afterwards.
    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<Vec<String>, RepoError>;
    /// Removes a label; a label the issue does not carry is not an error. Returns the labels left.
    async fn remove_label(&self, number: u64, label: &str) -> Result<Vec<String>, RepoError>;
    /// Creates the labels that do not exist yet.
    async fn ensure_labels(&self, labels: &[LabelSpec]) -> Result<EnsuredLabels, RepoError>;
    /// Creates or updates one file on a branch, as one commit.
    async fn commit_file(&self, req: &CommitRequest) -> Result<CommitResult, RepoError>;
    /// Names of the files directly inside `dir` on `branch` (empty when the folder does not exist).
    async fn list_dir(&self, dir: &str, branch: Option<&str>) -> Result<Vec<String>, RepoError>;
    /// The content of one file on `branch`, or `None` when there is no such file.
    async fn read_file(
        &self,
        path: &str,
        branch: Option<&str>,
    ) -> Result<Option<Vec<u8>>, RepoError>;

    /// `training_history/train-YYYYMMDD-NNN.md` with the next free number of that day (001, 002, ...).
    async fn next_history_path(
        &self,
        date: NaiveDate,
        branch: Option<&str>,
    ) -> Result<String, RepoError> {
        let names = self.list_dir(HISTORY_DIR, branch).await?;
        let next = next_history_number(&names, date);
        Ok(format!("{HISTORY_DIR}/{}", history_file_name(date, next)))
    }

    /// Commits `content` as the next history file of `date`. Claims the number with a create-only
    /// commit and moves to the next number if another writer took it first.
    async fn commit_history(
        &self,
        date: NaiveDate,
        content: &[u8],
        message: &str,
        branch: Option<&str>,
    ) -> Result<CommitResult, RepoError> {
        let mut last = None;
        for _ in 0..HISTORY_CLAIM_TRIES {
            let path = self.next_history_path(date, branch).await?;
            let req = CommitRequest {
                path,
                content: content.to_vec(),
                message: message.to_string(),
                branch: branch.map(str::to_string),
                create_only: true,
            };
            match self.commit_file(&req).await {
                Err(RepoError::Conflict(m)) => last = Some(m),
                other => return other,
            }
        }
        Err(RepoError::Conflict(format!(
            "could not claim a training history file name after {HISTORY_CLAIM_TRIES} tries: {}",
            last.unwrap_or_default()
        )))
    }
}

/// `train-YYYYMMDD-NNN.md`.
pub fn history_file_name(date: NaiveDate, number: u32) -> String {
    format!("train-{}-{number:03}.md", date.format("%Y%m%d"))
}

/// The number NNN of `train-YYYYMMDD-NNN.md` when the name is a history file of `date`.
pub fn parse_history_number(name: &str, date: NaiveDate) -> Option<u32> {
    let prefix = format!("train-{}-", date.format("%Y%m%d"));
    let rest = name.rsplit('/').next()?.strip_prefix(&prefix)?;
    let digits = rest.strip_suffix(".md")?;
    if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One more than the highest number used on `date` (1 when none is).
pub fn next_history_number(names: &[String], date: NaiveDate) -> u32 {
    names
        .iter()
        .filter_map(|n| parse_history_number(n, date))
        .max()
        .map_or(1, |m| m + 1)
}

/// Checks a repository-relative path: not empty, relative, `/`-separated, no `.`/`..` or empty
/// segments, nothing inside `.git`, no control characters, at most 1,024 bytes.
pub fn validate_repo_path(path: &str) -> Result<(), RepoError> {
    let bad = |why: &str| {
        Err(RepoError::invalid(format!(
            "path `{}` {why}; give a path relative to the repository root such as `training_history/notes.md`",
            path.escape_debug()
        )))
    };
    if path.trim().is_empty() {
        return bad("is empty");
    }
    if path.len() > 1024 {
        return bad("is longer than 1,024 bytes");
    }
    if path.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    if path.contains('\\') {
        return bad("contains `\\`; use `/` between folders");
    }
    if path.starts_with('/') || (path.len() > 1 && path.as_bytes()[1] == b':') {
        return bad("is absolute");
    }
    for seg in path.split('/') {
        match seg {
            "" => return bad("has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return bad("contains `.` or `..`"),
            s if s.eq_ignore_ascii_case(".git") => return bad("points inside `.git`"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a branch name against git's rules (the common cases).
pub fn validate_branch(branch: &str) -> Result<(), RepoError> {
    let ok = !branch.is_empty()
        && branch.len() <= 200
        && !branch.starts_with(['-', '/', '.'])
        && !branch.ends_with(['/', '.'])
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("@{")
        && !branch
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RepoError::invalid(format!(
            "`{}` is not a valid branch name; use letters, digits, `-`, `_`, `.` and `/` (e.g. `main` or `mlops/history`)",
            branch.escape_debug()
        )))
    }
}

/// Checks a label name.
pub fn validate_label(label: &str) -> Result<(), RepoError> {
    if label.trim().is_empty() || label.len() > 50 || label.chars().any(char::is_control) {
        return Err(RepoError::invalid(format!(
            "label `{}` must be 1–50 printable characters",
            label.escape_debug()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    #[test]
    fn history_numbers_skip_other_days_and_names() {
        let names: Vec<String> = [
            "train-20261125-001.md",
            "train-20261125-007.md",
            "train-20261124-050.md",
            "train-20261125-01.md",
            "README.md",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(next_history_number(&names, d()), 8);
        assert_eq!(next_history_number(&[], d()), 1);
        assert_eq!(history_file_name(d(), 2), "train-20261125-002.md");
        assert_eq!(
            parse_history_number("training_history/train-20261125-1000.md", d()),
            Some(1000)
        );
    }

    #[test]
    fn repo_paths_are_confined() {
        for good in ["a.md", "training_history/train-1.md", "docs/.github/x.yml"] {
            validate_repo_path(good).unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            ".git/config",
            "sub/.GIT/hooks/pre-commit",
            "a//b",
            "a/",
            "C:/x",
            "a\\b",
            "a\nb",
        ] {
            assert!(
                matches!(validate_repo_path(bad), Err(RepoError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn branch_names_are_checked() {
        for good in ["main", "mlops/history", "release-1.2"] {
            validate_branch(good).unwrap();
        }
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a:b", "HEAD@{1}", "a/"] {
            assert!(validate_branch(bad).is_err(), "{bad:?}");
        }
    }
}
