//! How `serve --http` serves: the listen address, bearer tokens, origins and hosts, limits and
//! the shutdown grace, read from the environment and checked before anything listens.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use tokio_util::sync::CancellationToken;

use crate::limits::LimitSettings;

/// Default largest request body on `/mcp`.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Shortest bearer token accepted.
const MIN_TOKEN_LEN: usize = 16;

/// How `serve --http` serves.
#[derive(Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Bearer tokens accepted on `/mcp`; empty: no authentication.
    pub tokens: Vec<String>,
    /// Serve without tokens on a non-loopback address.
    pub allow_unauthenticated: bool,
    /// Exact origins (`scheme://host[:port]`) allowed on `/mcp`; empty: loopback origins only.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted on `/mcp`; `None`: the default for the address.
    pub allowed_hosts: Option<Vec<String>>,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub limits: LimitSettings,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("addr", &self.addr)
            .field("tokens", &format!("{} configured", self.tokens.len()))
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("limits", &self.limits)
            .finish()
    }
}

/// `ADDR` of `--http`: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| {
        format!("`{text}` is not an address to listen on; write IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    })
}

fn list_var(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    )
}

/// `MLOPS_HTTP_RATE_LIMIT` (0: off), `MLOPS_HTTP_RATE_BURST`, `MLOPS_HTTP_MAX_CONCURRENT`.
fn limit_settings() -> anyhow::Result<LimitSettings> {
    let number = |name: &str| -> anyhow::Result<Option<u32>> {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{name} must be a whole number, got `{v}`")),
            Err(_) => Ok(None),
        }
    };
    let mut settings = LimitSettings::default();
    if let Some(rate) = number("MLOPS_HTTP_RATE_LIMIT")? {
        settings.rate_per_second = std::num::NonZeroU32::new(rate);
        // A burst of two seconds' worth, unless MLOPS_HTTP_RATE_BURST says otherwise.
        if let Some(burst) = std::num::NonZeroU32::new(rate.saturating_mul(2)) {
            settings.burst = burst;
        }
    }
    if let Some(burst) = number("MLOPS_HTTP_RATE_BURST")? {
        settings.burst =
            std::num::NonZeroU32::new(burst).context("MLOPS_HTTP_RATE_BURST must be 1 or more")?;
    }
    if let Some(n) = number("MLOPS_HTTP_MAX_CONCURRENT")? {
        anyhow::ensure!(n >= 1, "MLOPS_HTTP_MAX_CONCURRENT must be 1 or more");
        settings.max_concurrent = n as usize;
    }
    Ok(settings)
}

impl HttpOptions {
    /// The options for `addr`, with the settings from the environment; checks them.
    pub fn from_env(addr: SocketAddr, allow_unauthenticated: bool) -> anyhow::Result<Self> {
        let tokens = match list_var("MLOPS_HTTP_TOKENS") {
            Some(t) if t.is_empty() => bail!(
                "MLOPS_HTTP_TOKENS is set but holds no token; give comma-separated tokens or unset it"
            ),
            Some(t) => t,
            None => Vec::new(),
        };
        for t in &tokens {
            mlops_core::logging::register_secret(t);
        }
        let max_body_bytes = match std::env::var("MLOPS_HTTP_MAX_BODY_BYTES") {
            Ok(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n: &usize| *n >= 1024)
                .context("MLOPS_HTTP_MAX_BODY_BYTES must be a number of bytes, 1024 or more")?,
            Err(_) => DEFAULT_MAX_BODY_BYTES,
        };
        let shutdown_grace = match std::env::var("MLOPS_HTTP_SHUTDOWN_GRACE_SECONDS") {
            Ok(v) => Duration::from_secs_f64(
                v.trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| (0.0..=3600.0).contains(s))
                    .context(
                        "MLOPS_HTTP_SHUTDOWN_GRACE_SECONDS must be a number of seconds from 0 to 3600",
                    )?,
            ),
            Err(_) => Duration::from_secs(30),
        };
        let limits = limit_settings()?;
        let options = Self {
            addr,
            limits,
            tokens,
            allow_unauthenticated,
            allowed_origins: list_var("MLOPS_HTTP_ALLOWED_ORIGINS")
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts: list_var("MLOPS_HTTP_ALLOWED_HOSTS"),
            max_body_bytes,
            shutdown_grace,
        };
        options.check()?;
        Ok(options)
    }

    /// Refuses unsafe combinations: no authentication on an address others can reach.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(short) = self.tokens.iter().find(|t| t.len() < MIN_TOKEN_LEN) {
            bail!(
                "a token in MLOPS_HTTP_TOKENS is {} characters long; use tokens of {MIN_TOKEN_LEN} characters or more (e.g. `openssl rand -hex 32`)",
                short.len()
            );
        }
        if self.tokens.is_empty() && !self.addr.ip().is_loopback() && !self.allow_unauthenticated {
            bail!(
                "refusing to serve MCP without authentication on {}, an address other machines can reach: set MLOPS_HTTP_TOKENS to comma-separated bearer tokens, bind a loopback address (127.0.0.1:{}), or pass --allow-unauthenticated if a proxy in front authenticates",
                self.addr,
                self.addr.port()
            );
        }
        Ok(())
    }

    pub(super) fn rmcp_config(&self, ct: CancellationToken) -> StreamableHttpServerConfig {
        let config = StreamableHttpServerConfig::default()
            .with_cancellation_token(ct)
            .with_max_request_body_bytes(self.max_body_bytes);
        match &self.allowed_hosts {
            Some(hosts) => config.with_allowed_hosts(hosts.clone()),
            None if self.addr.ip().is_loopback() => config,
            // Behind a load balancer the Host is the public name; tokens guard the endpoint.
            None => config.disable_allowed_hosts(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr("localhost:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(parse_listen_addr("[::1]:80").is_ok());
        assert!(parse_listen_addr("0.0.0.0:1").is_ok());
        assert!(
            parse_listen_addr("example.com:80")
                .unwrap_err()
                .contains("IP:PORT")
        );
    }

    fn options(addr: &str, tokens: &[&str], allow: bool) -> HttpOptions {
        HttpOptions {
            addr: addr.parse().unwrap(),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            allow_unauthenticated: allow,
            allowed_origins: vec![],
            allowed_hosts: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: Duration::from_secs(1),
            limits: LimitSettings::default(),
        }
    }

    #[test]
    fn no_authentication_only_on_loopback() {
        assert!(options("127.0.0.1:1", &[], false).check().is_ok());
        assert!(options("[::1]:1", &[], false).check().is_ok());
        let e = options("0.0.0.0:1", &[], false).check().unwrap_err();
        assert!(e.to_string().contains("MLOPS_HTTP_TOKENS"), "{e}");
        assert!(options("0.0.0.0:1", &[], true).check().is_ok());
        assert!(
            options("0.0.0.0:1", &["0123456789abcdef"], false)
                .check()
                .is_ok()
        );
        assert!(options("0.0.0.0:1", &["short"], false).check().is_err());
    }
}
