//! `mlops-mcp serve --http` as a child process on a port it picks itself (`127.0.0.1:0`; the URL
//! it prints on stdout says which), so no other process can take the port first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlops_testkit::{ChildService, port_after};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};

use super::BIN;

/// A `serve --http` process, killed when dropped.
pub struct HttpServer {
    /// Shared by instances started with [`HttpServer::beside`].
    pub home: Arc<tempfile::TempDir>,
    pub child: ChildService,
    pub base: String,
    pub http: reqwest::Client,
}

/// The `serve --http ADDR` command on `home`, with a clean environment plus `env`.
pub fn serve_command(home: &Path, addr: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--http", addr])
        .env_clear()
        .env("MLOPS_HOME", home)
        .env("LOG_LEVEL", "WARN")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied());
    cmd
}

impl HttpServer {
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_in(Arc::new(tempfile::tempdir().unwrap()), env).await
    }

    /// Another instance on the same home folder (artifact store).
    pub async fn beside(&self, env: &[(&str, &str)]) -> Self {
        Self::start_in(self.home.clone(), env).await
    }

    pub async fn start_in(home: Arc<tempfile::TempDir>, env: &[(&str, &str)]) -> Self {
        let cmd = serve_command(home.path(), "127.0.0.1:0", env);
        let child = ChildService::spawn(
            cmd,
            |line| port_after(line, "Serving MCP over HTTP at http://127.0.0.1:"),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("serve --http did not start: {e}"));
        let s = Self {
            home,
            base: child.base_url(),
            child,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = s.http.get(s.url("/healthz")).send().await
                && r.status() == 200
            {
                assert_eq!(r.text().await.unwrap(), "ok");
                break;
            }
            assert!(Instant::now() < deadline, "/healthz did not answer in 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// An MCP session with rmcp's streamable HTTP client.
    pub async fn client(&self, token: Option<&str>) -> RunningService<RoleClient, ()> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url("/mcp"));
        if let Some(t) = token {
            config = config.auth_header(t);
        }
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("MCP initialize over HTTP")
    }

    /// Writes a generated classification table under the home folder.
    pub fn generate(&self, rows: usize, rel: &str) {
        super::generate("classification", rows, &self.path(rel));
    }
}
