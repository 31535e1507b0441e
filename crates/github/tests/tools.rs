//! Every tool, called through the ToolRouter, against both implementations: GitHub (octocrab
//! talking to the in-process REST fixture) and the local git repository.

use std::sync::Arc;

use chrono::NaiveDate;
use mlops_core::{Capability, ToolContext, ToolError, ToolRouter};
use mlops_github::{
    GithubCapability, GithubFixture, GithubRepository, LocalRepository, Repository,
};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_fixture_token_0123456789abcdef";

struct Backend {
    name: &'static str,
    router: ToolRouter,
    repo: Arc<dyn Repository>,
    fixture: Option<GithubFixture>,
    dir: tempfile::TempDir,
}

impl Backend {
    async fn call(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.router
            .call(tool, args, ToolContext::default())
            .await
            .map(|o| o.structured)
    }

    async fn ok(&self, tool: &str, args: Value) -> Value {
        match self.call(tool, args).await {
            Ok(v) => v,
            Err(e) => panic!("[{}] {tool} failed: {e}", self.name),
        }
    }

    /// The file's content on `main`, read from where the backend keeps it.
    fn file(&self, path: &str) -> Option<String> {
        match &self.fixture {
            Some(f) => f.file("main", path).map(|b| String::from_utf8(b).unwrap()),
            None => {
                let out = std::process::Command::new("git")
                    .arg("-C")
                    .arg(self.dir.path())
                    .args(["show", &format!("main:{path}")])
                    .output()
                    .unwrap();
                out.status
                    .success()
                    .then(|| String::from_utf8(out.stdout).unwrap())
            }
        }
    }
}

fn router(repo: Arc<dyn Repository>) -> ToolRouter {
    let cap: Arc<dyn Capability> = GithubCapability::new(repo);
    ToolRouter::new(&[cap]).unwrap()
}

async fn github() -> Backend {
    let fixture = GithubFixture::start("acme", "models", TOKEN).await;
    let repo: Arc<dyn Repository> =
        Arc::new(GithubRepository::new(TOKEN, "acme", "models", Some(&fixture.base_url)).unwrap());
    Backend {
        name: "github",
        router: router(repo.clone()),
        repo,
        fixture: Some(fixture),
        dir: tempfile::tempdir().unwrap(),
    }
}

async fn local() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let repo: Arc<dyn Repository> = Arc::new(LocalRepository::open(dir.path()).await.unwrap());
    Backend {
        name: "local",
        router: router(repo.clone()),
        repo,
        fixture: None,
        dir,
    }
}

async fn backends() -> Vec<Backend> {
    vec![github().await, local().await]
}

#[tokio::test]
async fn all_tools_are_registered_with_descriptions() {
    let b = local().await;
    let names: Vec<&str> = b.router.list().map(|(_, s)| s.name).collect();
    for t in [
        "create_issue",
        "get_issue",
        "list_issues",
        "comment_on_issue",
        "close_issue",
        "add_labels",
        "remove_label",
        "ensure_labels",
        "commit_file",
        "commit_training_history",
        "parse_training_issue",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
        let spec = b.router.get(t).unwrap();
        assert!(spec.description.len() > 40, "{t}");
        assert_eq!(spec.input_schema["type"], "object", "{t}");
    }
    assert!(b.router.list().all(|(c, _)| c == "github_integration"));
}

#[tokio::test]
async fn issue_lifecycle() {
    for b in backends().await {
        let n = b.name;
        let created = b
            .ok(
                "create_issue",
                json!({"title": "Train churn", "body": "dataset: d.csv", "labels": ["mlops:train"]}),
            )
            .await;
        let num = created["issue"]["number"].as_u64().unwrap();
        assert_eq!(created["issue"]["labels"], json!(["mlops:train"]), "{n}");
        assert_eq!(created["issue"]["state"], "open", "{n}");
        b.ok("create_issue", json!({"title": "Unrelated"})).await;

        let got = b.ok("get_issue", json!({"issue_number": num})).await;
        assert_eq!(got["issue"]["title"], "Train churn", "{n}");
        assert_eq!(got["issue"]["body"], "dataset: d.csv", "{n}");

        let listed = b
            .ok("list_issues", json!({"label": "mlops:train", "limit": 10}))
            .await;
        let nums: Vec<u64> = listed["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["number"].as_u64().unwrap())
            .collect();
        assert_eq!(nums, vec![num], "{n}");
        let all = b.ok("list_issues", json!({"limit": 1})).await;
        assert_eq!(all["issues"].as_array().unwrap().len(), 1, "{n}: limit");
        assert_eq!(all["issues"][0]["title"], "Unrelated", "{n}: newest first");

        let c = b
            .ok(
                "comment_on_issue",
                json!({"issue_number": num, "body": "Run started :rocket:"}),
            )
            .await;
        assert_eq!(c["comment"]["body"], "Run started :rocket:", "{n}");
        let with = b
            .ok(
                "get_issue",
                json!({"issue_number": num, "include_comments": true}),
            )
            .await;
        assert_eq!(with["comments"][0]["body"], "Run started :rocket:", "{n}");
        assert_eq!(with["issue"]["comments"], 1, "{n}");

        let labels = b
            .ok(
                "add_labels",
                json!({"issue_number": num, "labels": ["mlops:running", "mlops:train"]}),
            )
            .await;
        assert_eq!(
            labels["labels"],
            json!(["mlops:train", "mlops:running"]),
            "{n}"
        );
        let left = b
            .ok(
                "remove_label",
                json!({"issue_number": num, "label": "mlops:running"}),
            )
            .await;
        assert_eq!(left["labels"], json!(["mlops:train"]), "{n}");
        // Removing a label the issue does not carry is fine.
        let again = b
            .ok(
                "remove_label",
                json!({"issue_number": num, "label": "mlops:running"}),
            )
            .await;
        assert_eq!(again["labels"], json!(["mlops:train"]), "{n}");

        let closed = b
            .ok(
                "close_issue",
                json!({"issue_number": num, "reason": "completed", "comment": "Done: f1 0.91"}),
            )
            .await;
        assert_eq!(closed["issue"]["state"], "closed", "{n}");
        assert_eq!(
            closed["issue"]["comments"], 2,
            "{n}: closing comment posted"
        );
        let open = b.ok("list_issues", json!({"label": "mlops:train"})).await;
        assert_eq!(open["issues"], json!([]), "{n}");
        let closed_list = b
            .ok(
                "list_issues",
                json!({"label": "mlops:train", "state": "closed"}),
            )
            .await;
        assert_eq!(closed_list["issues"][0]["number"], num, "{n}");

        // Errors are actionable tool errors.
        let e = b
            .call("get_issue", json!({"issue_number": 999}))
            .await
            .unwrap_err();
        assert!(matches!(e, ToolError::Validation(_)), "{n}: {e}");
        assert!(
            e.to_string().contains("999") || e.to_string().contains("not found"),
            "{n}: {e}"
        );
        let e = b
            .call("get_issue", json!({"issue_number": 0}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("starts at 1"), "{n}: {e}");
        let e = b
            .call("create_issue", json!({"title": "  "}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("title"), "{n}: {e}");
        let e = b
            .call("list_issues", json!({"limit": 1000}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("limit"), "{n}: {e}");
        let e = b
            .call("comment_on_issue", json!({"issue_number": num, "bdy": "x"}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("bdy"), "{n}: {e}");
    }
}

#[tokio::test]
async fn github_requests_have_the_expected_shape() {
    let b = github().await;
    let f = b.fixture.as_ref().unwrap();
    b.ok(
        "create_issue",
        json!({"title": "T", "body": "B", "labels": ["mlops:train"]}),
    )
    .await;
    b.ok(
        "add_labels",
        json!({"issue_number": 1, "labels": ["mlops:running"]}),
    )
    .await;
    b.ok(
        "remove_label",
        json!({"issue_number": 1, "label": "mlops:running"}),
    )
    .await;
    b.ok(
        "close_issue",
        json!({"issue_number": 1, "reason": "not_planned"}),
    )
    .await;
    b.ok(
        "list_issues",
        json!({"labels": ["mlops:train", "x"], "state": "all", "limit": 5}),
    )
    .await;
    let reqs = f.requests();
    assert!(
        reqs.iter().all(|r| r.authorized),
        "the token is sent on every request"
    );
    let find = |m: &str, p: &str| {
        reqs.iter()
            .find(|r| r.method == m && r.path == p)
            .unwrap_or_else(|| panic!("no {m} {p} in {reqs:#?}"))
    };
    assert_eq!(
        find("POST", "/repos/acme/models/issues").body,
        Some(json!({"title": "T", "body": "B", "labels": ["mlops:train"]}))
    );
    assert_eq!(
        find("POST", "/repos/acme/models/issues/1/labels").body,
        Some(json!({"labels": ["mlops:running"]}))
    );
    find("DELETE", "/repos/acme/models/issues/1/labels/mlops:running");
    assert_eq!(
        find("PATCH", "/repos/acme/models/issues/1").body,
        Some(json!({"state": "closed", "state_reason": "not_planned"}))
    );
    let list = find("GET", "/repos/acme/models/issues");
    assert_eq!(list.query["labels"], "mlops:train,x");
    assert_eq!(list.query["state"], "all");
    assert_eq!(list.query["per_page"], "5");
    assert_eq!(f.issue(1).unwrap()["state_reason"], "not_planned");
}

#[tokio::test]
async fn ensure_labels_creates_only_what_is_missing() {
    for b in backends().await {
        let n = b.name;
        let first = b
            .ok("ensure_labels", json!({"extra_labels": ["team:ml"]}))
            .await;
        let created: Vec<&str> = first["created"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            created,
            vec![
                "mlops:train",
                "mlops:running",
                "mlops:succeeded",
                "mlops:failed",
                "mlops:awaiting-approval",
                "team:ml"
            ],
            "{n}"
        );
        let second = b.ok("ensure_labels", json!({})).await;
        assert_eq!(second["created"], json!([]), "{n}");
        assert_eq!(second["existing"].as_array().unwrap().len(), 5, "{n}");
        if let Some(f) = &b.fixture {
            assert_eq!(f.label_names().len(), 6);
            let post = f
                .requests()
                .into_iter()
                .find(|r| r.method == "POST" && r.path.ends_with("/labels"))
                .unwrap();
            assert_eq!(post.body.as_ref().unwrap()["name"], "mlops:train");
            assert_eq!(post.body.as_ref().unwrap()["color"], "1d76db");
        }
    }
}

#[tokio::test]
async fn commit_file_creates_updates_and_skips_unchanged() {
    for b in backends().await {
        let n = b.name;
        let r = b
            .ok(
                "commit_file",
                json!({"path": "docs/run.md", "content": "v1\n", "message": "Add run"}),
            )
            .await;
        assert_eq!(r["created"], true, "{n}");
        assert_eq!(r["changed"], true, "{n}");
        assert_eq!(r["branch"], "main", "{n}");
        assert!(r["commit_sha"].as_str().unwrap().len() >= 7, "{n}");
        assert_eq!(b.file("docs/run.md").as_deref(), Some("v1\n"), "{n}");

        let r = b
            .ok(
                "commit_file",
                json!({"path": "docs/run.md", "content": "v2\n", "message": "Update run", "branch": "main"}),
            )
            .await;
        assert_eq!(r["created"], false, "{n}");
        assert_eq!(r["changed"], true, "{n}");
        assert_eq!(b.file("docs/run.md").as_deref(), Some("v2\n"), "{n}");

        let r = b
            .ok(
                "commit_file",
                json!({"path": "docs/run.md", "content": "v2\n", "message": "Again"}),
            )
            .await;
        assert_eq!(r["changed"], false, "{n}: same content, no commit");
        assert_eq!(r["commit_sha"], Value::Null, "{n}");

        for bad in [
            "../escape.md",
            "/etc/passwd",
            ".git/config",
            "a//b",
            "docs/./x",
        ] {
            let e = b
                .call(
                    "commit_file",
                    json!({"path": bad, "content": "x", "message": "m"}),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(e, ToolError::Validation(_)) && e.to_string().contains("path"),
                "{n} {bad}: {e}"
            );
        }
        let e = b
            .call(
                "commit_file",
                json!({"path": "x.md", "content": "x", "message": "m", "branch": "nope"}),
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("nope") || e.to_string().contains("not found"),
            "{n}: {e}"
        );
        let e = b
            .call(
                "commit_file",
                json!({"path": "x.md", "content": "x", "message": " "}),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("message"), "{n}: {e}");
    }
}

#[tokio::test]
async fn github_update_sends_the_existing_blob_sha() {
    let b = github().await;
    let f = b.fixture.as_ref().unwrap();
    b.ok(
        "commit_file",
        json!({"path": "a/b c.md", "content": "one", "message": "m1"}),
    )
    .await;
    b.ok(
        "commit_file",
        json!({"path": "a/b c.md", "content": "two", "message": "m2"}),
    )
    .await;
    let puts: Vec<_> = f
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].path, "/repos/acme/models/contents/a/b c.md");
    let first = puts[0].body.as_ref().unwrap();
    assert_eq!(first["content"], "b25l", "base64 of `one`");
    assert_eq!(first["branch"], "main");
    assert!(first.get("sha").is_none(), "a new file has no sha");
    let second = puts[1].body.as_ref().unwrap();
    assert_eq!(second["message"], "m2");
    assert_eq!(
        second["sha"].as_str().unwrap().len(),
        40,
        "the blob sha read first"
    );
    assert_eq!(f.commit_count(), 2);
    // Someone else changes the file between our read and write: the conflict is reported.
    f.put_file("main", "a/b c.md", b"changed elsewhere");
    let ok = b
        .ok(
            "commit_file",
            json!({"path": "a/b c.md", "content": "three", "message": "m3"}),
        )
        .await;
    assert_eq!(ok["changed"], true, "a fresh read picks up the new sha");
}

#[tokio::test]
async fn history_numbers_count_up_within_a_day() {
    let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    for b in backends().await {
        let n = b.name;
        assert_eq!(
            b.repo.next_history_path(day, None).await.unwrap(),
            "training_history/train-20261125-001.md",
            "{n}"
        );
        let mut paths = Vec::new();
        for i in 1..=3 {
            let r = b
                .ok(
                    "commit_training_history",
                    json!({"content": format!("# Run {i}\n"), "date": "2026-11-25"}),
                )
                .await;
            assert_eq!(r["created"], true, "{n}");
            paths.push(r["path"].as_str().unwrap().to_string());
        }
        assert_eq!(
            paths,
            vec![
                "training_history/train-20261125-001.md",
                "training_history/train-20261125-002.md",
                "training_history/train-20261125-003.md"
            ],
            "{n}"
        );
        assert_eq!(
            b.file("training_history/train-20261125-002.md").as_deref(),
            Some("# Run 2\n"),
            "{n}"
        );
        // Another day starts again at 001; the trait gives the next path.
        let r = b
            .ok(
                "commit_training_history",
                json!({"content": "x", "date": "2026-11-26", "message": "History"}),
            )
            .await;
        assert_eq!(r["path"], "training_history/train-20261126-001.md", "{n}");
        assert_eq!(
            b.repo.next_history_path(day, None).await.unwrap(),
            "training_history/train-20261125-004.md",
            "{n}"
        );
        let e = b
            .call(
                "commit_training_history",
                json!({"content": "x", "date": "25/11/2026"}),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("YYYY-MM-DD"), "{n}: {e}");
    }
}

#[tokio::test]
async fn history_claims_skip_a_number_taken_meanwhile() {
    // A create-only commit on a taken name is a conflict; commit_history moves on.
    for b in backends().await {
        let n = b.name;
        let day = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        b.ok(
            "commit_file",
            json!({"path": "training_history/train-20260102-001.md", "content": "a", "message": "m"}),
        )
        .await;
        let req = mlops_github::CommitRequest {
            path: "training_history/train-20260102-001.md".into(),
            content: b"b".to_vec(),
            message: "m".into(),
            branch: None,
            create_only: true,
        };
        let e = b.repo.commit_file(&req).await.unwrap_err();
        assert!(
            matches!(e, mlops_github::RepoError::Conflict(_)),
            "{n}: {e}"
        );
        let r = b.repo.commit_history(day, b"b", "m", None).await.unwrap();
        assert_eq!(r.path, "training_history/train-20260102-002.md", "{n}");
    }
}

#[tokio::test]
async fn parse_training_issue_reads_issues_and_comments_problems() {
    for b in backends().await {
        let n = b.name;
        let example = include_str!("../../request/examples/train-issue.md");
        let good = b
            .ok(
                "create_issue",
                json!({"title": "Train", "body": example, "labels": ["mlops:train"]}),
            )
            .await["issue"]["number"]
            .as_u64()
            .unwrap();
        let r = b
            .ok("parse_training_issue", json!({"issue_number": good}))
            .await;
        assert_eq!(r["valid"], true, "{n}: {r}");
        assert_eq!(r["request"]["target_column"], "churned", "{n}");
        assert_eq!(r["request"]["threshold"], 0.82, "{n}");

        let bad = b
            .ok(
                "create_issue",
                json!({"title": "Please", "body": "train something on s3://b/x.csv please"}),
            )
            .await["issue"]["number"]
            .as_u64()
            .unwrap();
        let r = b
            .ok(
                "parse_training_issue",
                json!({"issue_number": bad, "comment_problems": true}),
            )
            .await;
        assert_eq!(r["valid"], false, "{n}");
        assert_eq!(r["commented"], true, "{n}");
        assert!(r["problems"].as_array().unwrap().len() >= 2, "{n}: {r}");
        let issue = b
            .ok(
                "get_issue",
                json!({"issue_number": bad, "include_comments": true}),
            )
            .await;
        let posted = issue["comments"][0]["body"].as_str().unwrap();
        assert!(posted.contains("could not be started"), "{n}: {posted}");
        assert!(posted.contains("dataset: s3://b/x.csv"), "{n}: {posted}");

        // Direct text, no issue.
        let r = b
            .ok(
                "parse_training_issue",
                json!({"title": "t", "body": "dataset: d.csv\ntask: clustering\nthreshold: 0.3"}),
            )
            .await;
        assert_eq!(r["request"]["algorithm"], "kmeans", "{n}");
        let e = b
            .call(
                "parse_training_issue",
                json!({"body": "x", "comment_problems": true}),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("issue_number"), "{n}: {e}");
        let e = b.call("parse_training_issue", json!({})).await.unwrap_err();
        assert!(e.to_string().contains("issue_number"), "{n}: {e}");
    }
}

#[tokio::test]
async fn github_errors_are_actionable_and_never_show_the_token() {
    let fixture = GithubFixture::start("acme", "models", "the-right-token-123456").await;
    let wrong = "ghp_wrong_token_abcdef123456";
    let repo: Arc<dyn Repository> =
        Arc::new(GithubRepository::new(wrong, "acme", "models", Some(&fixture.base_url)).unwrap());
    let r = router(repo);
    let e = r
        .call(
            "get_issue",
            json!({"issue_number": 1}),
            ToolContext::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Secrets(_)), "{e}");
    assert!(e.to_string().contains("GITHUB_TOKEN"), "{e}");
    assert!(!e.to_string().contains(wrong), "{e}");

    let b = github().await;
    let f = b.fixture.as_ref().unwrap();
    f.fail_next(403, "Resource not accessible by personal access token");
    let e = b.call("list_issues", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("`repo` scope"), "{e}");
    f.fail_next(502, "Bad gateway");
    let e = b.call("list_issues", json!({})).await.unwrap_err();
    assert!(matches!(e, ToolError::Execution(_)), "{e}");
    f.fail_next(403, "API rate limit exceeded for user");
    let e = b.call("list_issues", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("rate limit"), "{e}");

    // Nothing listening: a clear "could not reach" error.
    let dead: Arc<dyn Repository> = Arc::new(
        GithubRepository::new(TOKEN, "acme", "models", Some("http://127.0.0.1:9")).unwrap(),
    );
    let e = router(dead)
        .call("list_issues", json!({}), ToolContext::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("could not reach GitHub"), "{e}");
}

#[tokio::test]
async fn local_repository_keeps_git_clean_and_issues_out_of_history() {
    let b = local().await;
    b.ok("create_issue", json!({"title": "x"})).await;
    b.ok(
        "commit_file",
        json!({"path": "training_history/a.md", "content": "a", "message": "Add a"}),
    )
    .await;
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .arg("-C")
            .arg(b.dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        git(&["status", "--porcelain"]),
        "",
        "work tree clean, .mlops excluded"
    );
    assert_eq!(git(&["log", "--format=%s"]).trim(), "Add a");
    assert!(!git(&["log", "-1", "--format=%ae"]).trim().is_empty());
    assert_eq!(
        git(&["ls-tree", "-r", "--name-only", "HEAD"]).trim(),
        "training_history/a.md"
    );
    assert!(b.dir.path().join(".mlops/issues/1.json").exists());
    // Another branch is written without touching the checked-out tree.
    git(&["branch", "history"]);
    b.ok(
        "commit_file",
        json!({"path": "b.md", "content": "b", "message": "Add b", "branch": "history"}),
    )
    .await;
    assert!(!b.dir.path().join("b.md").exists());
    assert_eq!(git(&["show", "history:b.md"]), "b");
    assert_eq!(git(&["status", "--porcelain"]), "");
    // `.mlops/` is the tracker's, not for commits.
    let e = b
        .call(
            "commit_file",
            json!({"path": ".mlops/issues/1.json", "content": "{}", "message": "m"}),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains(".mlops"), "{e}");
    // Reopening finds the same issues and numbering continues.
    let again = LocalRepository::open(b.dir.path()).await.unwrap();
    let i = again
        .create_issue(mlops_github::NewIssue {
            title: "y".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(i.number, 2);
}

#[tokio::test]
async fn local_repository_is_created_inside_another_checkout() {
    // MLOPS_HOME may sit inside the project's own git checkout: a nested repository is created
    // rather than committing into the enclosing one.
    let outer = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("git")
        .args(["init", "-q"])
        .arg(outer.path())
        .status()
        .unwrap();
    assert!(st.success());
    let inner = outer.path().join("mlops-data/history-repo");
    let repo = LocalRepository::open(&inner).await.unwrap();
    assert!(inner.join(".git").exists());
    repo.commit_file(&mlops_github::CommitRequest {
        path: "x.md".into(),
        content: b"x".to_vec(),
        message: "m".into(),
        branch: None,
        create_only: false,
    })
    .await
    .unwrap();
    let o = std::process::Command::new("git")
        .arg("-C")
        .arg(outer.path())
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the outer repository got no commit");
}

#[tokio::test]
async fn enterprise_base_urls_keep_their_path() {
    let fixture = GithubFixture::start("acme", "models", TOKEN).await;
    let base = format!("{}/api/v3/", fixture.base_url);
    let repo = GithubRepository::new(TOKEN, "acme", "models", Some(&base)).unwrap();
    let i = repo
        .create_issue(mlops_github::NewIssue {
            title: "On GHE".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(i.number, 1);
    let reqs = fixture.requests();
    assert_eq!(reqs[0].path, "/api/v3/repos/acme/models/issues");
}

#[tokio::test]
async fn concurrent_history_writers_get_distinct_numbers() {
    let day = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
    for b in backends().await {
        let n = b.name;
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let repo = b.repo.clone();
                tokio::spawn(async move {
                    repo.commit_history(day, format!("run {i}").as_bytes(), "m", None)
                        .await
                })
            })
            .collect();
        let mut paths = Vec::new();
        for t in tasks {
            paths.push(t.await.unwrap().unwrap_or_else(|e| panic!("{n}: {e}")).path);
        }
        paths.sort();
        assert_eq!(
            paths,
            (1..=4)
                .map(|i| format!("training_history/train-20260304-{i:03}.md"))
                .collect::<Vec<_>>(),
            "{n}"
        );
    }
}
