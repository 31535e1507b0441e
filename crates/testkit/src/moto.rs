//! moto, the local AWS stand-in, on a port it picks and announces itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::child::{ChildService, port_after};

const INSTALL: &str =
    "install it with `pip install -r tests/python/requirements.txt` (moto[server])";

/// A `moto_server` process, stopped when dropped.
pub struct Moto {
    service: ChildService,
    /// The port moto listens on (127.0.0.1).
    pub port: u16,
}

impl Moto {
    /// Starts moto; panics when it cannot (AWS tests that skip prove nothing).
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("{e}; {INSTALL}"))
    }

    /// Starts moto, or returns None (saying so loudly) when it cannot and this is not CI.
    pub fn start_or_skip() -> Option<Self> {
        match Self::try_start() {
            Ok(m) => Some(m),
            Err(e) if crate::in_ci() => panic!("moto is required in CI: {e}; {INSTALL}"),
            Err(e) => {
                eprintln!("\n!!! SKIPPING a moto test: {e}; {INSTALL}\n");
                None
            }
        }
    }

    fn try_start() -> Result<Self, String> {
        let mut cmd = Command::new("moto_server");
        // Port 0: moto (werkzeug) binds a free port and prints ` * Running on http://HOST:PORT`.
        cmd.args(["-H", "127.0.0.1", "-p", "0"]);
        let service = ChildService::spawn(
            cmd,
            |line| port_after(line, "Running on http://127.0.0.1:"),
            Duration::from_secs(60),
        )?;
        Ok(Self {
            port: service.port,
            service,
        })
    }

    /// One moto for the whole test process, started on first use. A static is never dropped, so
    /// a small watchdog stops moto once this process has exited.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(|| {
            let moto = Self::start();
            #[expect(
                clippy::zombie_processes,
                reason = "the watchdog outlives this process on purpose, to stop moto after it"
            )]
            let _watchdog = Command::new("sh")
                .args([
                    "-c",
                    r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; kill "$2" 2>/dev/null"#,
                    "sh",
                ])
                .arg(std::process::id().to_string())
                .arg(moto.service.id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting sh for the moto watchdog");
            moto
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.service.base_url()
    }

    /// A plain HTTP request to moto (set-up without an SDK); returns the status line.
    pub fn status(&self, method: &str, path: &str, body: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap_or_else(|e| {
            panic!(
                "moto on port {} refused {method} {path}: {e}\n{}",
                self.port,
                self.service.output()
            )
        });
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        // moto may reset the connection once it has answered; the status line is all we need.
        let mut out = Vec::new();
        let read = s.read_to_end(&mut out);
        let head = String::from_utf8_lossy(&out);
        let status = head.lines().next().unwrap_or_default().to_string();
        assert!(
            !status.is_empty(),
            "moto gave no answer to {method} {path}: {read:?}"
        );
        status
    }
}
