"""The official Python MCP SDK over streamable HTTP: `mlops-mcp serve --http` with a bearer token;
initialize, list the tools, and train a classifier with a progress callback.

Run from the repository root after `cargo build` (the binary defaults to target/debug/mlops-mcp;
set MLOPS_MCP_BIN to use another)."""
import asyncio
import os
import pathlib
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("MLOPS_MCP_BIN", str(ROOT / "target" / "debug" / "mlops-mcp"))
TOKEN = "python-sdk-token-0123456789abcdef"


def announced_base(server: subprocess.Popen) -> str:
    """The base URL the server prints once listening (`serve --http 127.0.0.1:0` picks the port
    itself, so no other process can take it first)."""
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


async def train_over_http(url: str) -> tuple:
    progress = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        unauthenticated = await http.post(url, json={}, headers={"Authorization": ""})
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await session.list_tools()
                train = await session.call_tool(
                    "train_supervised_classifier",
                    arguments={
                        "algorithm": "xgboost",
                        "train_data_uri": "datasets/train.csv",
                        "target_column": "label",
                        "training_job_name": "http-xgb-001",
                        "hyperparameters": {"n_estimators": 40, "max_depth": 3},
                    },
                    progress_callback=on_progress,
                )
    return unauthenticated, init, tools, train, progress


def test_train_over_streamable_http_with_a_bearer_token():
    with tempfile.TemporaryDirectory() as home:
        subprocess.run(
            [BIN, "datasets", "generate", "classification", "--rows", "1500", "--out", f"{home}/datasets/train.csv"],
            check=True,
            env={**os.environ, "LOG_LEVEL": "WARN"},
        )
        env = {"MLOPS_HOME": home, "LOG_LEVEL": "WARN", "PATH": os.environ.get("PATH", ""), "MLOPS_HTTP_TOKENS": TOKEN}
        server = subprocess.Popen(
            [BIN, "serve", "--http", "127.0.0.1:0"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
        try:
            base = announced_base(server)
            wait_healthy(base, server)
            unauthenticated, init, tools, train, progress = asyncio.run(train_over_http(f"{base}/mcp"))
        finally:
            server.terminate()
            code = server.wait(timeout=30)
        assert code == 0, f"exit code {code} after SIGTERM"

    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")

    assert init.server_info.name == "unified-mlops-mcp-server"
    names = {t.name for t in tools.tools}
    assert {"train_supervised_classifier", "start_workflow", "register_model"} <= names

    assert not train.is_error, train.content
    job = train.structured_content
    assert job["training_job_name"] == "http-xgb-001"
    assert job["status"] == "completed"
    assert progress, "no progress notification arrived"
    assert all(b >= a for (a, _, _), (b, _, _) in zip(progress, progress[1:])), progress
