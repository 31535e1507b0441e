//! The local repository's stand-in issue tracker: issues (with their comments), labels and the
//! counters that number them, kept as JSON files under `.mlops/` in the repository folder. They
//! are the tracker's state, not history, so they are never committed; every write replaces a whole
//! file atomically (write, then rename), so a crash leaves the old or the new file, never half.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::git::Repo;
use super::{STATE_DIR, io_err};
use crate::error::RepoError;
use crate::repo::{CloseReason, Comment, EnsuredLabels, Issue, IssueState, LabelSpec};

/// An issue as stored: the issue and its comments in one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LocalIssue {
    pub(super) number: u64,
    pub(super) title: String,
    pub(super) body: String,
    pub(super) state: IssueState,
    #[serde(default)]
    pub(super) state_reason: Option<CloseReason>,
    pub(super) labels: Vec<String>,
    #[serde(default)]
    pub(super) author: Option<String>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    #[serde(default)]
    pub(super) comments: Vec<Comment>,
}

impl LocalIssue {
    pub(super) fn to_issue(&self, path: &Path) -> Issue {
        Issue {
            number: self.number,
            title: self.title.clone(),
            body: self.body.clone(),
            state: self.state,
            state_reason: self.state_reason,
            labels: self.labels.clone(),
            author: self.author.clone(),
            url: Some(path.display().to_string()),
            comments: self.comments.len() as u64,
            created_at: Some(self.created_at.clone()),
            updated_at: Some(self.updated_at.clone()),
        }
    }
}

/// The next numbers to hand out. Kept apart from the issues so that a number is never reused,
/// even when the issue file holding it is deleted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct LocalState {
    pub(super) next_issue: u64,
    pub(super) next_comment: u64,
}

impl Repo {
    fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub(super) fn issues_dir(&self) -> PathBuf {
        self.state_dir().join("issues")
    }

    pub(super) fn issue_path(&self, number: u64) -> PathBuf {
        self.issues_dir().join(format!("{number}.json"))
    }

    fn state_path(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    fn labels_path(&self) -> PathBuf {
        self.state_dir().join("labels.json")
    }

    pub(super) async fn read_issue(&self, number: u64) -> Result<LocalIssue, RepoError> {
        let path = self.issue_path(number);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepoError::NotFound(format!(
                    "issue #{number} does not exist in the local repository `{}`",
                    self.root.display()
                )));
            }
            Err(e) => return Err(io_err("read", &path, e)),
        };
        serde_json::from_str(&text).map_err(|e| {
            RepoError::Io(format!(
                "issue file `{}` is damaged: {e}; fix or delete it",
                path.display()
            ))
        })
    }

    /// The JSON file at `path`; `None` when there is none yet.
    async fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, RepoError> {
        match tokio::fs::read_to_string(path).await {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| RepoError::Io(format!("`{}` is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path, e)),
        }
    }

    async fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), RepoError> {
        let text = serde_json::to_vec_pretty(value)
            .map_err(|e| RepoError::Io(format!("could not encode `{}`: {e}", path.display())))?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&tmp, &text)
            .await
            .map_err(|e| io_err("write", &tmp, e))?;
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| io_err("replace", path, e))
    }

    pub(super) async fn write_issue(&self, issue: &LocalIssue) -> Result<(), RepoError> {
        self.write_json(&self.issue_path(issue.number), issue).await
    }

    pub(super) async fn read_state(&self) -> Result<LocalState, RepoError> {
        if let Some(st) = self.read_json(&self.state_path()).await? {
            return Ok(st);
        }
        // Recover the counters from the issue files, if any.
        let mut st = LocalState {
            next_issue: 1,
            next_comment: 1,
        };
        for i in self.all_issues().await? {
            st.next_issue = st.next_issue.max(i.number + 1);
            for c in &i.comments {
                st.next_comment = st.next_comment.max(c.id + 1);
            }
        }
        Ok(st)
    }

    pub(super) async fn write_state(&self, st: &LocalState) -> Result<(), RepoError> {
        self.write_json(&self.state_path(), st).await
    }

    pub(super) async fn all_issues(&self) -> Result<Vec<LocalIssue>, RepoError> {
        let dir = self.issues_dir();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir, e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = rd.next_entry().await.map_err(|e| io_err("list", &dir, e))? {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push(self.read_issue(n).await?);
            }
        }
        Ok(out)
    }

    /// Adds the labels the repository does not know yet (by name, ignoring case), saying which
    /// were new and which were known.
    pub(super) async fn store_labels(
        &self,
        labels: impl IntoIterator<Item = LabelSpec>,
    ) -> Result<EnsuredLabels, RepoError> {
        let mut known: Vec<LabelSpec> = self
            .read_json(&self.labels_path())
            .await?
            .unwrap_or_default();
        let mut report = EnsuredLabels::default();
        for l in labels {
            if known.iter().any(|k| k.name.eq_ignore_ascii_case(&l.name)) {
                report.existing.push(l.name);
            } else {
                report.created.push(l.name.clone());
                known.push(l);
            }
        }
        if !report.created.is_empty() {
            self.write_json(&self.labels_path(), &known).await?;
        }
        Ok(report)
    }

    /// Adds labels that the repository does not know yet (as GitHub does when labelling).
    pub(super) async fn register_labels(&self, names: &[String]) -> Result<(), RepoError> {
        self.store_labels(names.iter().map(|n| LabelSpec {
            name: n.clone(),
            color: "ededed".into(),
            description: String::new(),
        }))
        .await?;
        Ok(())
    }

    /// Who wrote an issue or comment: the local user.
    pub(super) fn local_author() -> String {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "local".into())
    }
}
