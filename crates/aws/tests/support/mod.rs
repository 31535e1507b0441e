//! One local moto server (the AWS stand-in) per test binary, started on first use on a free port.
//! A small shell watchdog stops it when the test process exits (a static is never dropped).
//! Without `moto_server` on PATH the tests fail: CI installs it, and a skipped AWS test proves
//! nothing.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mlops_aws::AwsConfig;

const WATCHDOG: &str = r#"moto_server -H 127.0.0.1 -p "$1" >/dev/null 2>&1 &
m=$!
while kill -0 "$2" 2>/dev/null && kill -0 "$m" 2>/dev/null; do sleep 0.5; done
kill "$m" 2>/dev/null"#;

/// The endpoint of this binary's moto server, e.g. `http://127.0.0.1:40123`.
pub fn moto() -> &'static str {
    static MOTO: OnceLock<String> = OnceLock::new();
    MOTO.get_or_init(|| {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").is_file()))
            .unwrap_or(false);
        assert!(
            on_path,
            "moto_server is not on PATH: these tests need the local AWS stand-in; install it with `pip install -r tests/python/requirements.txt` (moto[server])"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        #[expect(
            clippy::zombie_processes,
            reason = "the watchdog outlives this process on purpose, to stop moto after it"
        )]
        let _watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "sh", &port.to_string()])
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sh for moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// A client configuration pointed at moto, with dummy credentials.
pub fn config() -> AwsConfig {
    AwsConfig::with_static_credentials("us-east-1", "testing", "testing")
        .unwrap()
        .with_endpoint(moto())
        .unwrap()
}

/// A name no other test uses (moto's state outlives each test).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
