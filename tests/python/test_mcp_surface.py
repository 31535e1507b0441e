"""The MCP surface through the official Python MCP SDK client: a 100k-row table paged with
`offset`/`next_offset` under the result bound, an evaluation report read as a resource, prompts
listed and filled in, a training run with progress notifications, the polling fallback for long
runs (`wait: false` + `get_training_metrics`), a reinforcement-learning run's progress and its
policy played, and bad cursors, URIs and limits refused.

Run from the repository root after `cargo build` (set MLOPS_MCP_BIN to use another binary)."""
import asyncio
import json
import os
import pathlib
import subprocess
import tempfile

import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp import MCPError

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("MLOPS_MCP_BIN", str(ROOT / "target" / "debug" / "mlops-mcp"))
# The server's bound on a tool result's text (crates/server/src/bound.rs).
MAX_RESULT_BYTES = 20_000


def result_text_bytes(result) -> int:
    return sum(len(c.text.encode()) for c in result.content if c.type == "text")


def generate(home: str, kind: str, rows: int, rel: str) -> None:
    os.makedirs(os.path.dirname(f"{home}/{rel}"), exist_ok=True)
    subprocess.run(
        [BIN, "datasets", "generate", kind, "--rows", str(rows), "--out", f"{home}/{rel}"],
        check=True,
        env={**os.environ, "LOG_LEVEL": "WARN"},
    )


async def session_run(home: str, body):
    params = StdioServerParameters(
        command=BIN, args=["serve"], env={"MLOPS_HOME": home, "LOG_LEVEL": "WARN", "AWS_REGION": "us-east-1"}
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)


@pytest.fixture(scope="module")
def home():
    with tempfile.TemporaryDirectory() as h:
        generate(h, "classification", 100_000, "datasets/big.csv")
        generate(h, "classification", 3_000, "datasets/small.csv")
        yield h


def test_100k_rows_page_through_under_the_bound(home):
    async def body(session):
        first = await session.call_tool("load_dataset", {"dataset_uri": "datasets/big.csv", "limit": 1000})
        pages = [first]
        # Page through a stretch of the table with the cursor the server hands back.
        while len(pages) < 6 and pages[-1].structured_content.get("next_offset") is not None:
            nxt = pages[-1].structured_content["next_offset"]
            pages.append(await session.call_tool("load_dataset", {"dataset_uri": "datasets/big.csv", "offset": nxt, "limit": 1000}))
        last = await session.call_tool("load_dataset", {"dataset_uri": "datasets/big.csv", "offset": 99_998, "limit": 10})
        narrow = await session.call_tool(
            "load_dataset", {"dataset_uri": "datasets/big.csv", "offset": 500, "limit": 3, "columns": ["label"], "profile": True}
        )
        return pages, last, narrow

    pages, last, narrow = asyncio.run(session_run(home, body))
    first = pages[0].structured_content
    assert first["row_count"] == 100_000
    assert len(first["columns"]) == first["column_count"], "the first page carries the profile"
    seen = 0
    for page in pages:
        assert not page.is_error, page.content
        assert result_text_bytes(page) <= MAX_RESULT_BYTES, result_text_bytes(page)
        s = page.structured_content
        assert s["offset"] == seen, "pages follow one another without gaps or overlaps"
        assert 0 < len(s["rows"]) <= 1000
        seen += len(s["rows"])
        assert s["next_offset"] == seen
    assert len(pages) == 6 and seen < 100_000
    assert pages[1].structured_content["columns"] == [], "later pages skip the profile"

    tail = last.structured_content
    assert len(tail["rows"]) == 2 and "next_offset" not in tail, "the last page says so"

    n = narrow.structured_content
    assert [list(r) for r in n["rows"]] == [["label"]] * 3
    assert [c["name"] for c in n["columns"]] == ["label"]


def test_bad_cursors_limits_and_uris_are_refused(home):
    async def body(session):
        too_many = await session.call_tool("load_dataset", {"dataset_uri": "datasets/small.csv", "limit": 10**9})
        past_end = await session.call_tool("load_dataset", {"dataset_uri": "datasets/small.csv", "offset": 10**9})
        bad_column = await session.call_tool("load_dataset", {"dataset_uri": "datasets/small.csv", "columns": ["lable"]})
        zero = await session.call_tool("search_models", {"limit": 0})
        huge = await session.call_tool("list_workflows", {"limit": 10**9})
        errors = []
        for call in (
            session.list_resources(params=types.PaginatedRequestParams(cursor="not-a-cursor")),
            session.read_resource("mlops://models/nope"),
            session.read_resource("mlops://evaluations/../../etc/passwd"),
            session.read_resource("https://example.com/x"),
        ):
            with pytest.raises(MCPError) as e:
                await call
            errors.append(str(e.value))
        return too_many, past_end, bad_column, zero, huge, errors

    too_many, past_end, bad_column, zero, huge, errors = asyncio.run(session_run(home, body))
    assert too_many.is_error and "limit must be at most 1000" in too_many.content[0].text
    assert past_end.is_error and "past the end of the table (3000 rows)" in past_end.content[0].text
    assert bad_column.is_error and "label" in bad_column.content[0].text
    assert zero.is_error and "limit must be between 1 and" in zero.content[0].text
    assert huge.is_error and "limit must be 1 to 100" in huge.content[0].text
    assert "invalid cursor" in errors[0], errors[0]
    for e in errors[1:]:
        assert "no resource" in e, e


def test_report_as_resource_prompts_progress_and_polling(home):
    progress = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async def body(session):
        prompts = await session.list_prompts()
        filled = await session.get_prompt("train_model", {"dataset_uri": "datasets/small.csv", "target_column": "label"})
        trained = await session.call_tool(
            "train_supervised_classifier",
            {
                "algorithm": "random_forest",
                "train_data_uri": "datasets/small.csv",
                "target_column": "label",
                "training_job_name": "rf-progress",
                "hyperparameters": {"n_estimators": 40},
            },
            progress_callback=on_progress,
        )
        report = await session.call_tool(
            "generate_evaluation_report", {"model_uri": "models/rf-progress", "test_data_uri": "datasets/small.csv"}
        )
        listed = []
        cursor = None
        while True:
            page = await session.list_resources(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
            listed += [str(r.uri) for r in page.resources]
            cursor = page.next_cursor
            if not cursor:
                break
        uri = next(u for u in listed if u.endswith("/report.md"))
        read = await session.read_resource(uri)
        card = await session.read_resource("mlops://models/rf-progress")
        # The fallback for clients without MCP tasks: start in the background, then poll.
        started = await session.call_tool(
            "train_supervised_classifier",
            {
                "algorithm": "xgboost",
                "train_data_uri": "datasets/small.csv",
                "target_column": "label",
                "training_job_name": "xgb-background",
                "hyperparameters": {"n_estimators": 60},
                "wait": False,
            },
        )
        polled = []
        for _ in range(600):
            m = await session.call_tool("get_training_metrics", {"training_job_name": "xgb-background"})
            polled.append(m.structured_content["status"])
            if polled[-1] not in ("pending", "running"):
                break
            await asyncio.sleep(0.1)
        return prompts, filled, trained, report, listed, read, card, started, polled, m

    prompts, filled, trained, report, listed, read, card, started, polled, final = asyncio.run(session_run(home, body))
    assert {p.name for p in prompts.prompts} == {"train_model", "evaluate_and_compare", "run_issue_workflow"}
    text = filled.messages[0].content.text
    assert "load_dataset datasets/small.csv" in text and "target_column label" in text

    assert not trained.is_error, trained.content
    assert progress, "progress notifications arrived during training"
    assert progress[-1][0] == progress[-1][1] == 40, progress[-1]
    assert [p[0] for p in progress] == sorted(p[0] for p in progress), "progress only moves forward"

    assert not report.is_error, report.content
    assert "mlops://models/rf-progress" in listed
    assert "mlops://datasets/small.csv" in listed
    body_md = read.contents[0].text
    assert body_md.startswith("#") and "accuracy" in body_md.lower()
    assert json.loads(card.contents[0].text)["algorithm"] == "random_forest"

    assert not started.is_error and started.structured_content["status"] in ("pending", "running", "completed")
    assert polled[-1] == "completed", polled
    assert final.structured_content["metrics"]["train_accuracy"] > 0.8


def test_reinforcement_streams_progress_and_the_policy_plays(home):
    """A PPO run reports steps, episodes and the mean return as progress notifications; the saved
    policy is played by evaluate_reinforcement, which returns the reward curve as an image."""
    progress = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async def body(session):
        trained = await session.call_tool(
            "train_reinforcement",
            {
                "algorithm": "ppo",
                "training_job_name": "py-ppo",
                "hyperparameters": {"total_timesteps": 20000, "target_return": None},
            },
            progress_callback=on_progress,
        )
        played = await session.call_tool("evaluate_reinforcement", {"model_uri": "models/py-ppo", "n_episodes": 10})
        return trained, played

    trained, played = asyncio.run(session_run(home, body))
    assert not trained.is_error, trained.content
    # PPO finishes its last rollout (8 environments x 32 steps), as Stable-Baselines3 does.
    assert 20000 <= trained.structured_content["metrics"]["timesteps"] < 20000 + 256
    assert len(progress) >= 10, progress
    assert all(total == 20000 for _, total, _ in progress)
    assert [p[0] for p in progress] == sorted(p[0] for p in progress), "progress only moves forward"
    assert any("episodes: mean return" in (m or "") for _, _, m in progress), progress[-1]

    assert not played.is_error, played.content
    result = played.structured_content
    assert result["environment"] == "CartPole-v1" and len(result["returns"]) == 10
    assert result["min_return"] <= result["mean_return"] <= result["max_return"]
    assert any(c.type == "image" and c.mime_type == "image/png" for c in played.content)
