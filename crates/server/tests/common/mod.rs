#![allow(dead_code)] // Each test binary uses a different part of these helpers.

//! Helpers for tests that run the real `mlops-mcp` binary and talk MCP to it over stdio (and,
//! in [`http`], over streamable HTTP).

pub mod churn;
pub mod http;
pub mod jobs;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mlops-mcp");

/// A server process with its own artifact root and database.
pub struct Server {
    pub home: tempfile::TempDir,
    pub client: RunningService<RoleClient, ()>,
}

/// What a tool call returned.
pub struct Reply {
    pub is_error: bool,
    pub text: String,
    pub structured: Value,
    /// MIME types of the image contents, in order.
    pub images: Vec<String>,
}

impl Server {
    pub async fn start() -> Self {
        let home = tempfile::tempdir().unwrap();
        let client = Self::connect(home.path()).await;
        Self { home, client }
    }

    /// Starts another server process on an existing home folder.
    pub async fn connect(home: &Path) -> RunningService<RoleClient, ()> {
        Self::connect_with(home, &[]).await
    }

    /// As [`Server::connect`], with extra environment variables.
    pub async fn connect_with(home: &Path, env: &[(&str, &str)]) -> RunningService<RoleClient, ()> {
        Self::spawn(home, env).await.0
    }

    /// As [`Server::connect_with`], also returning the server's process id (to kill it).
    pub async fn spawn(home: &Path, env: &[(&str, &str)]) -> (RunningService<RoleClient, ()>, u32) {
        let transport = server_process(home, env);
        let pid = transport.id().expect("the server process has an id");
        (().serve(transport).await.unwrap(), pid)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    pub async fn call(&self, tool: &str, args: Value) -> Reply {
        call(&self.client, tool, args).await
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        assert!(!r.is_error, "{tool} {args}: {}", r.text);
        r.structured
    }

    /// Calls a tool that must fail with a message containing `expected`, writing no file.
    pub async fn err(&self, tool: &str, args: Value, expected: &str) {
        let before = self.files();
        let r = self.call(tool, args.clone()).await;
        assert!(r.is_error, "{tool} {args} should fail, got {}", r.text);
        assert!(
            r.text.contains(expected),
            "{tool} {args}: `{}` lacks `{expected}`",
            r.text
        );
        assert_eq!(self.files(), before, "{tool} {args} left files behind");
    }

    /// Every file under the home folder except the database, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.home.path(), self.home.path(), &mut out);
        out.retain(|f| !f.starts_with("mlops.db"));
        out.sort();
        out
    }

    /// Writes a sample data set under the home folder.
    pub fn generate(&self, kind: &str, rows: usize, rel: &str) {
        generate(kind, rows, &self.path(rel));
    }

    /// Splits a data set into train, validation and test sets, reproducibly from `seed`; returns
    /// the tool's report (each part's `uri` and row count).
    pub async fn split(&self, uri: &str, seed: u64) -> Value {
        self.ok(
            "split_dataset",
            serde_json::json!({"dataset_uri": uri, "seed": seed}),
        )
        .await
    }
}

/// A `mlops-mcp serve` process on `home`, with only `env` (and PATH) in its environment and
/// warnings only in its log, as the stdio transport for whichever client a test needs.
pub fn server_process(home: &Path, env: &[(&str, &str)]) -> TokioChildProcess {
    let home = home.to_path_buf();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (transport, _) =
        TokioChildProcess::builder(tokio::process::Command::new(BIN).configure(|cmd| {
            cmd.arg("serve")
                .env_clear()
                .env("MLOPS_HOME", &home)
                .env("LOG_LEVEL", "WARN")
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env);
        }))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    transport
}

/// Writes `rows` rows of a generated `kind` (classification, regression, clustering) table.
pub fn generate(kind: &str, rows: usize, out: &Path) {
    generate_seeded(kind, rows, 42, out);
}

/// As [`generate`], from another seed (e.g. held-out rows from the same distribution).
pub fn generate_seeded(kind: &str, rows: usize, seed: u64, out: &Path) {
    let status = std::process::Command::new(BIN)
        .args(["datasets", "generate", kind, "--rows", &rows.to_string()])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(out)
        .env("LOG_LEVEL", "WARN")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "generating {out:?}");
}

pub async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> Reply {
    let Value::Object(arguments) = args else {
        panic!("arguments must be an object")
    };
    let r: CallToolResult = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await
        .unwrap();
    let text = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    let images = r
        .content
        .iter()
        .filter_map(|c| c.as_image().map(|i| i.mime_type.clone()))
        .collect();
    Reply {
        is_error: r.is_error == Some(true),
        text,
        structured: r.structured_content.unwrap_or(Value::Null),
        images,
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

pub use mlops_testkit::Moto;

/// Starts moto on a port it picks itself; without `moto_server` the caller skips loudly, except
/// in CI.
pub fn start_moto() -> Option<Moto> {
    Moto::start_or_skip()
}
