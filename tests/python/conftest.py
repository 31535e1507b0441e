"""Shared helpers for the Python client tests: the binary, and `mlops-mcp serve --http` started on
a port it picks itself (`127.0.0.1:0`; the URL it prints on stdout says which)."""
import contextlib
import os
import pathlib
import re
import subprocess
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("MLOPS_MCP_BIN", str(ROOT / "target" / "debug" / "mlops-mcp"))


def generate(kind: str, rows: int, out: str, seed: int = 42) -> None:
    """Writes a deterministic sample table."""
    subprocess.run(
        [BIN, "datasets", "generate", kind, "--rows", str(rows), "--seed", str(seed), "--out", out],
        check=True,
        env={**os.environ, "LOG_LEVEL": "WARN"},
    )


def announced_base(server: subprocess.Popen) -> str:
    """The base URL the server prints once listening, so no other process can take the port."""
    line = server.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, f"serve --http announced no address: {line!r} (exit {server.poll()})"
    return f"http://127.0.0.1:{match.group(1)}"


def wait_healthy(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert server.poll() is None, f"the server exited: {server.returncode}"
        assert time.monotonic() < deadline, "/healthz did not answer in 60 s"
        time.sleep(0.1)


@contextlib.contextmanager
def http_server(home: str, env: dict):
    """`serve --http 127.0.0.1:0` on `home`; yields (base URL, process); stops it on SIGTERM and
    checks it exits cleanly."""
    full_env = {"MLOPS_HOME": home, "LOG_LEVEL": "WARN", "PATH": os.environ.get("PATH", ""), **env}
    server = subprocess.Popen(
        [BIN, "serve", "--http", "127.0.0.1:0"],
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = announced_base(server)
        wait_healthy(base, server)
        yield base, server
    finally:
        server.terminate()
        code = server.wait(timeout=30)
    assert code == 0, f"exit code {code} after SIGTERM"
