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

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OnceCell};

use crate::error::RepoError;
use crate::repo::{
    CloseReason, Comment, CommitRequest, CommitResult, EnsuredLabels, Issue, IssueFilter,
    IssueState, LabelSpec, NewIssue, Repository, validate_branch, validate_label,
    validate_repo_path,
};

const STATE_DIR: &str = ".mlops";
const COMMITTER_NAME: &str = "mlops-mcp";
const COMMITTER_EMAIL: &str = "mlops-mcp@localhost";

/// Local git implementation of [`Repository`]. Created lazily: nothing runs (no `git` process)
/// until the first operation, so opening it at server start-up costs nothing.
#[derive(Debug)]
pub struct LocalRepository {
    path: PathBuf,
    ready: OnceCell<Repo>,
    lock: Mutex<()>,
}

/// The repository once opened (and initialised if it had to be).
#[derive(Debug)]
struct Repo {
    root: PathBuf,
    git_dir: PathBuf,
    bare: bool,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LocalIssue {
    number: u64,
    title: String,
    body: String,
    state: IssueState,
    #[serde(default)]
    state_reason: Option<CloseReason>,
    labels: Vec<String>,
    #[serde(default)]
    author: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    comments: Vec<Comment>,
}

impl LocalIssue {
    fn to_issue(&self, path: &Path) -> Issue {
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct LocalState {
    next_issue: u64,
    next_comment: u64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> RepoError {
    RepoError::Io(format!("could not {what} `{}`: {e}", path.display()))
}

/// Output of one git command.
struct GitOut {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Repo {
    async fn open(path: &Path) -> Result<Self, RepoError> {
        tokio::fs::create_dir_all(path)
            .await
            .map_err(|e| io_err("create the history repository folder", path, e))?;
        let root = tokio::fs::canonicalize(path)
            .await
            .map_err(|e| io_err("open", path, e))?;
        let probe = git_raw(&root, &["rev-parse", "--is-bare-repository"], None, &[]).await?;
        // Only a repository rooted exactly here counts (not an enclosing one).
        let toplevel = git_raw(&root, &["rev-parse", "--show-toplevel"], None, &[]).await?;
        let rooted_here = probe.ok
            && (probe.stdout.trim() == "true"
                || Path::new(toplevel.stdout.trim()) == root.as_path());
        if !rooted_here {
            let init = git_raw(&root, &["init", "-q", "-b", "main"], None, &[]).await?;
            if !init.ok {
                return Err(RepoError::Backend(format!(
                    "`git init` failed in `{}`: {}",
                    root.display(),
                    init.stderr.trim()
                )));
            }
        }
        let bare = git_raw(&root, &["rev-parse", "--is-bare-repository"], None, &[])
            .await?
            .stdout
            .trim()
            == "true";
        let git_dir = PathBuf::from(
            git_raw(&root, &["rev-parse", "--absolute-git-dir"], None, &[])
                .await?
                .stdout
                .trim(),
        );
        let repo = Self {
            root,
            git_dir,
            bare,
        };
        for key in ["user.name", "user.email"] {
            let got = repo.git(&["config", "--get", key], None).await?;
            if !got.ok || got.stdout.trim().is_empty() {
                let value = if key == "user.name" {
                    COMMITTER_NAME
                } else {
                    COMMITTER_EMAIL
                };
                repo.git_ok(&["config", key, value], None, "set the committer identity")
                    .await?;
            }
        }
        repo.exclude_state_dir().await?;
        tokio::fs::create_dir_all(repo.issues_dir())
            .await
            .map_err(|e| io_err("create", &repo.issues_dir(), e))?;
        Ok(repo)
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    fn issues_dir(&self) -> PathBuf {
        self.state_dir().join("issues")
    }

    fn issue_path(&self, number: u64) -> PathBuf {
        self.issues_dir().join(format!("{number}.json"))
    }

    async fn exclude_state_dir(&self) -> Result<(), RepoError> {
        let info = self.git_dir.join("info");
        tokio::fs::create_dir_all(&info)
            .await
            .map_err(|e| io_err("create", &info, e))?;
        let exclude = info.join("exclude");
        let current = tokio::fs::read_to_string(&exclude)
            .await
            .unwrap_or_default();
        let line = format!("/{STATE_DIR}/");
        if !current.lines().any(|l| l.trim() == line) {
            let mut text = current;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            text.push('\n');
            tokio::fs::write(&exclude, text)
                .await
                .map_err(|e| io_err("write", &exclude, e))?;
        }
        Ok(())
    }

    async fn git(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<GitOut, RepoError> {
        git_raw(&self.root, args, stdin, &[]).await
    }

    async fn git_ok(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        what: &str,
    ) -> Result<String, RepoError> {
        let out = self.git(args, stdin).await?;
        if out.ok {
            Ok(out.stdout)
        } else {
            Err(RepoError::Backend(format!(
                "git could not {what} in `{}`: {}",
                self.root.display(),
                out.stderr.trim()
            )))
        }
    }

    async fn head_branch(&self) -> Result<String, RepoError> {
        let out = self.git(&["symbolic-ref", "--short", "HEAD"], None).await?;
        Ok(if out.ok {
            out.stdout.trim().to_string()
        } else {
            "main".into()
        })
    }

    /// The commit a branch points at (`None` for an unborn branch).
    async fn branch_commit(&self, branch: &str) -> Result<Option<String>, RepoError> {
        let out = self
            .git(
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{branch}^{{commit}}"),
                ],
                None,
            )
            .await?;
        Ok(out.ok.then(|| out.stdout.trim().to_string()))
    }

    async fn resolve_branch(
        &self,
        branch: Option<&str>,
    ) -> Result<(String, Option<String>, bool), RepoError> {
        let head = self.head_branch().await?;
        let branch = match branch {
            Some(b) => {
                validate_branch(b)?;
                b.to_string()
            }
            None => head.clone(),
        };
        let commit = self.branch_commit(&branch).await?;
        let is_head = branch == head;
        if commit.is_none() && !is_head {
            return Err(RepoError::NotFound(format!(
                "branch `{branch}` does not exist in the local history repository `{}`; leave `branch` out to use `{head}`",
                self.root.display()
            )));
        }
        Ok((branch, commit, is_head))
    }

    async fn read_issue(&self, number: u64) -> Result<LocalIssue, RepoError> {
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

    async fn write_issue(&self, issue: &LocalIssue) -> Result<(), RepoError> {
        self.write_json(&self.issue_path(issue.number), issue).await
    }

    async fn read_state(&self) -> Result<LocalState, RepoError> {
        let path = self.state_dir().join("state.json");
        match tokio::fs::read_to_string(&path).await {
            Ok(t) => serde_json::from_str(&t)
                .map_err(|e| RepoError::Io(format!("`{}` is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
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
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    async fn write_state(&self, st: &LocalState) -> Result<(), RepoError> {
        self.write_json(&self.state_dir().join("state.json"), st)
            .await
    }

    async fn all_issues(&self) -> Result<Vec<LocalIssue>, RepoError> {
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

    async fn read_labels(&self) -> Result<Vec<LabelSpec>, RepoError> {
        let path = self.state_dir().join("labels.json");
        match tokio::fs::read_to_string(&path).await {
            Ok(t) => serde_json::from_str(&t)
                .map_err(|e| RepoError::Io(format!("`{}` is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    /// Adds labels that the repository does not know yet (as GitHub does when labelling).
    async fn register_labels(&self, names: &[String]) -> Result<(), RepoError> {
        let mut known = self.read_labels().await?;
        let mut changed = false;
        for n in names {
            if !known.iter().any(|k| k.name.eq_ignore_ascii_case(n)) {
                known.push(LabelSpec {
                    name: n.clone(),
                    color: "ededed".into(),
                    description: String::new(),
                });
                changed = true;
            }
        }
        if changed {
            self.write_json(&self.state_dir().join("labels.json"), &known)
                .await?;
        }
        Ok(())
    }

    fn local_author() -> String {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "local".into())
    }
}

async fn git_raw(
    dir: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Result<GitOut, RepoError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| {
        RepoError::Backend(format!(
            "could not run `git` ({e}); install git or configure GITHUB_TOKEN and GITHUB_REPOSITORY to use GitHub"
        ))
    })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .await
            .map_err(|e| RepoError::Backend(format!("could not write to git: {e}")))?;
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| RepoError::Backend(format!("git did not finish: {e}")))?;
    Ok(GitOut {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
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
        let _g = self.lock.lock().await;
        let mut known = r.read_labels().await?;
        let mut report = EnsuredLabels::default();
        for l in labels {
            validate_label(&l.name)?;
            if known.iter().any(|k| k.name.eq_ignore_ascii_case(&l.name)) {
                report.existing.push(l.name.clone());
            } else {
                known.push(l.clone());
                report.created.push(l.name.clone());
            }
        }
        if !report.created.is_empty() {
            r.write_json(&r.state_dir().join("labels.json"), &known)
                .await?;
        }
        Ok(report)
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
        let (branch, parent, is_head) = r.resolve_branch(req.branch.as_deref()).await?;
        let existing = match &parent {
            None => None,
            Some(p) => {
                let out = r
                    .git(
                        &[
                            "rev-parse",
                            "--verify",
                            "--quiet",
                            &format!("{p}:{}", req.path),
                        ],
                        None,
                    )
                    .await?;
                out.ok.then(|| out.stdout.trim().to_string())
            }
        };
        if let Some(sha) = &existing {
            let kind = r
                .git_ok(&["cat-file", "-t", sha], None, "read the existing file")
                .await?;
            if kind.trim() != "blob" {
                return Err(RepoError::invalid(format!(
                    "`{}` is a folder on branch `{branch}`; give a file path",
                    req.path
                )));
            }
            if req.create_only {
                return Err(RepoError::Conflict(format!(
                    "`{}` already exists on branch `{branch}`",
                    req.path
                )));
            }
        }
        let blob = r
            .git_ok(
                &["hash-object", "-w", "--stdin"],
                Some(&req.content),
                "store the file",
            )
            .await?
            .trim()
            .to_string();
        if existing.as_deref() == Some(blob.as_str()) {
            return Ok(CommitResult {
                path: req.path.clone(),
                branch,
                commit_sha: None,
                created: false,
                changed: false,
                url: None,
            });
        }
        // Build the new tree in a private index, so the real index and work tree are untouched.
        let index = r
            .git_dir
            .join(format!("mlops-index-{}", std::process::id()));
        let index_s = index.display().to_string();
        let env = [("GIT_INDEX_FILE", index_s.as_str())];
        let run = |args: Vec<String>| {
            let root = r.root.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                git_raw(&root, &args, None, &env).await
            }
        };
        let read = match &parent {
            Some(p) => run(vec!["read-tree".into(), p.clone()]).await?,
            None => run(vec!["read-tree".into(), "--empty".into()]).await?,
        };
        let update = if read.ok {
            run(vec![
                "update-index".into(),
                "--add".into(),
                "--cacheinfo".into(),
                format!("100644,{blob},{}", req.path),
            ])
            .await?
        } else {
            read
        };
        let tree = if update.ok {
            run(vec!["write-tree".into()]).await?
        } else {
            update
        };
        let _ = tokio::fs::remove_file(&index).await;
        if !tree.ok {
            return Err(RepoError::invalid(format!(
                "could not place `{}` on branch `{branch}` (does a file stand where a folder is needed?): {}",
                req.path,
                tree.stderr.trim()
            )));
        }
        let tree = tree.stdout.trim().to_string();
        let mut args = vec!["commit-tree", tree.as_str()];
        if let Some(p) = &parent {
            args.push("-p");
            args.push(p);
        }
        args.extend(["-F", "-"]);
        let commit = r
            .git_ok(&args, Some(req.message.as_bytes()), "create the commit")
            .await?
            .trim()
            .to_string();
        let zero = "0".repeat(commit.len());
        let old = parent.as_deref().unwrap_or(&zero);
        let refname = format!("refs/heads/{branch}");
        let upd = r
            .git(
                &[
                    "update-ref",
                    "-m",
                    "mlops-mcp: commit_file",
                    &refname,
                    &commit,
                    old,
                ],
                None,
            )
            .await?;
        if !upd.ok {
            return Err(RepoError::Conflict(format!(
                "branch `{branch}` moved while committing `{}`; retry ({})",
                req.path,
                upd.stderr.trim()
            )));
        }
        if is_head && !r.bare {
            // Keep the checked-out work tree and index in step with the branch.
            let file = r.root.join(&req.path);
            if let Some(dir) = file.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| io_err("create", dir, e))?;
            }
            tokio::fs::write(&file, &req.content)
                .await
                .map_err(|e| io_err("write", &file, e))?;
            r.git_ok(&["add", "-f", "--", &req.path], None, "update the index")
                .await?;
        }
        Ok(CommitResult {
            path: req.path.clone(),
            branch,
            commit_sha: Some(commit),
            created: existing.is_none(),
            changed: true,
            url: Some(r.root.join(&req.path).display().to_string()),
        })
    }

    async fn list_dir(&self, dir: &str, branch: Option<&str>) -> Result<Vec<String>, RepoError> {
        let r = self.ready().await?;
        validate_repo_path(dir)?;
        let (_, commit, _) = r.resolve_branch(branch).await?;
        let Some(commit) = commit else {
            return Ok(Vec::new());
        };
        let out = r
            .git_ok(
                &["ls-tree", "-z", "--name-only", &commit, &format!("{dir}/")],
                None,
                "list the folder",
            )
            .await?;
        let prefix = format!("{dir}/");
        Ok(out
            .split('\0')
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect())
    }

    async fn read_file(
        &self,
        path: &str,
        branch: Option<&str>,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let r = self.ready().await?;
        validate_repo_path(path)?;
        let (_, commit, _) = r.resolve_branch(branch).await?;
        let Some(commit) = commit else {
            return Ok(None);
        };
        let spec = format!("{commit}:{path}");
        let kind = r.git(&["cat-file", "-t", &spec], None).await?;
        if !kind.ok || kind.stdout.trim() != "blob" {
            return Ok(None);
        }
        let out = r.git(&["cat-file", "blob", &spec], None).await?;
        if !out.ok {
            return Err(RepoError::Backend(format!(
                "could not read `{path}`: {}",
                out.stderr.trim()
            )));
        }
        Ok(Some(out.stdout.into_bytes()))
    }
}
