"""The official Python MCP SDK over streamable HTTP: `mlops-mcp serve --http` with a bearer token;
initialize, list the tools, and train a classifier with a progress callback.

Run from the repository root after `cargo build` (the binary defaults to target/debug/mlops-mcp;
set MLOPS_MCP_BIN to use another)."""
import asyncio
import tempfile

import httpx2
from conftest import generate, http_server
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TOKEN = "python-sdk-token-0123456789abcdef"


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
        generate("classification", 1500, f"{home}/datasets/train.csv")
        with http_server(home, {"MLOPS_HTTP_TOKENS": TOKEN}) as (base, _):
            unauthenticated, init, tools, train, progress = asyncio.run(train_over_http(f"{base}/mcp"))

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
