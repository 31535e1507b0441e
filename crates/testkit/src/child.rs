//! A child process that announces the port it bound, with its output kept for error messages.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of a child's output is kept (the end of it) for error messages.
const KEPT_OUTPUT: usize = 64 * 1024;

/// A running child service, killed when dropped.
pub struct ChildService {
    child: Child,
    /// The port the child announced.
    pub port: u16,
    output: Arc<Mutex<String>>,
}

impl ChildService {
    /// Spawns `cmd` with stdout and stderr piped and waits until a line of either announces the
    /// port it listens on (`announce` returns it). Fails with the child's output when it exits
    /// first or `within` passes. The output is drained for the child's whole life, so a chatty
    /// child never blocks on a full pipe.
    pub fn spawn(
        mut cmd: Command,
        announce: impl Fn(&str) -> Option<u16> + Send + Sync + 'static,
        within: Duration,
    ) -> Result<Self, String> {
        let program = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let announce = Arc::new(announce);
        let (tx, rx) = mpsc::channel();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout is piped")),
            Box::new(child.stderr.take().expect("stderr is piped")),
        ];
        for pipe in pipes {
            let (output, announce, tx) = (output.clone(), announce.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    {
                        let mut kept = output.lock().unwrap_or_else(|p| p.into_inner());
                        kept.push_str(&line);
                        kept.push('\n');
                        if kept.len() > KEPT_OUTPUT {
                            let cut = kept.len() - KEPT_OUTPUT / 2;
                            let cut = (cut..kept.len())
                                .find(|&i| kept.is_char_boundary(i))
                                .unwrap_or(kept.len());
                            kept.drain(..cut);
                        }
                    }
                    // Announced after it is kept, so the output holds the announcement.
                    if let Some(port) = announce(&line) {
                        let _ = tx.send(port);
                    }
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + within;
        let mut service = Self {
            child,
            port: 0,
            output,
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(port) => {
                    service.port = port;
                    return Ok(service);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = service.child.wait().ok();
                    return Err(format!(
                        "{program} exited ({status:?}) before announcing its port:\n{}",
                        service.output()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                // Its last lines may still be in the pipes; give the readers a moment.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "{program} exited ({status}) before announcing its port:\n{}",
                    service.output()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{program} announced no port within {within:?}:\n{}",
                    service.output()
                ));
            }
        }
    }

    /// What the child has printed so far (the last 32–64 KiB).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the child to exit by itself, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        // A failing test shows what the service said; a passing one stays quiet.
        if std::thread::panicking() {
            eprintln!(
                "--- output of child process {} ---\n{}",
                self.child.id(),
                self.output()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in `line` right after `prefix`, e.g. `port_after(line, "http://127.0.0.1:")`.
pub fn port_after(line: &str, prefix: &str) -> Option<u16> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&p| p != 0)
}

/// A loopback port bound but not listening: connections to it are refused, and no other process
/// can take it, until this is dropped. Stands for a service that is down.
pub struct RefusedPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl RefusedPort {
    pub fn new() -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        socket.bind(&addr.into()).expect("binding a loopback port");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .expect("a bound port");
        Self {
            _socket: socket,
            port,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_port_refuses() {
        let p = RefusedPort::new();
        let e = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn the_port_is_read_from_the_announcement() {
        let line = " * Running on http://127.0.0.1:38557";
        assert_eq!(port_after(line, "http://127.0.0.1:"), Some(38557));
        assert_eq!(
            port_after("Running on http://127.0.0.1:0", "127.0.0.1:"),
            None
        );
        assert_eq!(port_after("no port here", "127.0.0.1:"), None);
    }

    #[test]
    fn a_child_that_exits_early_is_reported_with_its_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo address already in use >&2; exit 3"]);
        let e = ChildService::spawn(cmd, |l| port_after(l, ":"), Duration::from_secs(5))
            .err()
            .expect("the child exits");
        assert!(e.contains("address already in use"), "{e}");
    }

    #[test]
    fn a_child_that_announces_is_ready() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo listening on http://127.0.0.1:4321; sleep 30"]);
        let s = ChildService::spawn(
            cmd,
            |l| port_after(l, "http://127.0.0.1:"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(s.port, 4321);
        assert!(s.output().contains("listening"));
    }
}
