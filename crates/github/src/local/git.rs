//! The local repository's git side: opening (and initialising) it, running `git`, and the files
//! of the training history, committed through plumbing so that any branch can be written without
//! touching the work tree.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::{STATE_DIR, io_err};
use crate::error::RepoError;
use crate::repo::{CommitRequest, CommitResult, validate_branch};

/// The committer given to a repository that has none, so that commits work on a machine with no
/// global git configuration.
const COMMITTER_NAME: &str = "mlops-mcp";
const COMMITTER_EMAIL: &str = "mlops-mcp@localhost";

/// The repository once opened (and initialised if it had to be).
#[derive(Debug)]
pub(super) struct Repo {
    pub(super) root: PathBuf,
    git_dir: PathBuf,
    bare: bool,
}

/// Output of one git command.
struct GitOut {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Repo {
    /// Opens the repository at `path`: creates the folder, runs `git init` unless a repository is
    /// rooted exactly there, gives it a committer if it has none, and makes the issue tracker's
    /// folder.
    pub(super) async fn open(path: &Path) -> Result<Self, RepoError> {
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

    /// Keeps the issue tracker's folder out of `git status`, without a `.gitignore` to commit.
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

    /// Runs git in the repository; a failure is in the answer, not an error.
    async fn git(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<GitOut, RepoError> {
        git_raw(&self.root, args, stdin, &[]).await
    }

    /// Runs git; a failure is an error saying what could not be done.
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

    /// The checked-out branch (`main` when HEAD is detached).
    async fn head_branch(&self) -> Result<String, RepoError> {
        let out = self.git(&["symbolic-ref", "--short", "HEAD"], None).await?;
        Ok(if out.ok {
            out.stdout.trim().to_string()
        } else {
            "main".into()
        })
    }

    /// The object `spec` names (`None` when it names nothing).
    async fn rev_parse(&self, spec: &str) -> Result<Option<String>, RepoError> {
        let out = self
            .git(&["rev-parse", "--verify", "--quiet", spec], None)
            .await?;
        Ok(out.ok.then(|| out.stdout.trim().to_string()))
    }

    /// The commit a branch points at (`None` for an unborn branch).
    async fn branch_commit(&self, branch: &str) -> Result<Option<String>, RepoError> {
        self.rev_parse(&format!("refs/heads/{branch}^{{commit}}"))
            .await
    }

    /// The branch to use (`branch`, or the checked-out one), its commit, and whether it is checked
    /// out. A named branch must exist; the checked-out one may be unborn.
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

    /// Commits `req.content` at `req.path` on its branch; the caller has checked the request and
    /// holds the lock.
    pub(super) async fn commit_file(&self, req: &CommitRequest) -> Result<CommitResult, RepoError> {
        let (branch, parent, is_head) = self.resolve_branch(req.branch.as_deref()).await?;
        let existing = match &parent {
            None => None,
            Some(p) => self.rev_parse(&format!("{p}:{}", req.path)).await?,
        };
        if let Some(sha) = &existing {
            let kind = self
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
        let blob = self
            .git_ok(
                &["hash-object", "-w", "--stdin"],
                Some(&req.content),
                "store the file",
            )
            .await?
            .trim()
            .to_string();
        if existing.as_deref() == Some(blob.as_str()) {
            return Ok(CommitResult::unchanged(&req.path, branch));
        }
        // Build the new tree in a private index, so the real index and work tree are untouched.
        let index = self
            .git_dir
            .join(format!("mlops-index-{}", std::process::id()));
        let index_s = index.display().to_string();
        let env = [("GIT_INDEX_FILE", index_s.as_str())];
        let run = |args: Vec<String>| {
            let root = self.root.clone();
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
        let commit = self
            .git_ok(&args, Some(req.message.as_bytes()), "create the commit")
            .await?
            .trim()
            .to_string();
        let zero = "0".repeat(commit.len());
        let old = parent.as_deref().unwrap_or(&zero);
        let refname = format!("refs/heads/{branch}");
        let upd = self
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
        if is_head && !self.bare {
            // Keep the checked-out work tree and index in step with the branch.
            let file = self.root.join(&req.path);
            if let Some(dir) = file.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| io_err("create", dir, e))?;
            }
            tokio::fs::write(&file, &req.content)
                .await
                .map_err(|e| io_err("write", &file, e))?;
            self.git_ok(&["add", "-f", "--", &req.path], None, "update the index")
                .await?;
        }
        Ok(CommitResult {
            path: req.path.clone(),
            branch,
            commit_sha: Some(commit),
            created: existing.is_none(),
            changed: true,
            url: Some(self.root.join(&req.path).display().to_string()),
        })
    }

    /// The names in folder `dir` on `branch` (none on an unborn branch).
    pub(super) async fn list_dir(
        &self,
        dir: &str,
        branch: Option<&str>,
    ) -> Result<Vec<String>, RepoError> {
        let (_, commit, _) = self.resolve_branch(branch).await?;
        let Some(commit) = commit else {
            return Ok(Vec::new());
        };
        let out = self
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

    /// The file at `path` on `branch`; `None` when there is none, or a folder stands there.
    pub(super) async fn read_file(
        &self,
        path: &str,
        branch: Option<&str>,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let (_, commit, _) = self.resolve_branch(branch).await?;
        let Some(commit) = commit else {
            return Ok(None);
        };
        let spec = format!("{commit}:{path}");
        let kind = self.git(&["cat-file", "-t", &spec], None).await?;
        if !kind.ok || kind.stdout.trim() != "blob" {
            return Ok(None);
        }
        let out = self.git(&["cat-file", "blob", &spec], None).await?;
        if !out.ok {
            return Err(RepoError::Backend(format!(
                "could not read `{path}`: {}",
                out.stderr.trim()
            )));
        }
        Ok(Some(out.stdout.into_bytes()))
    }
}

/// Runs git in `dir`, never prompting for credentials and in the C locale (its messages are
/// passed on to the caller).
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
