"""The official Python MCP SDK as the client, as in the seed's client example: one stdio session
that preprocesses a data set and trains a random forest on the result.

Run from the repository root after `cargo build` (the binary defaults to target/debug/mlops-mcp;
set MLOPS_MCP_BIN to use another)."""
import asyncio
import os
import pathlib
import subprocess
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("MLOPS_MCP_BIN", str(ROOT / "target" / "debug" / "mlops-mcp"))


async def preprocess_then_train(home: str) -> tuple:
    params = StdioServerParameters(command=BIN, args=["serve"], env={"MLOPS_HOME": home, "LOG_LEVEL": "WARN", "AWS_REGION": "us-east-1"})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            prep = await session.call_tool(
                "preprocess_supervised",
                arguments={
                    # The seed's argument names are accepted as aliases.
                    "dataset_s3_uri": "datasets/train.csv",
                    "target_column": "label",
                    "task_type": "classification",
                    "split": {"validation_fraction": 0.15, "test_fraction": 0.15, "seed": 1},
                },
            )
            train = await session.call_tool(
                "train_supervised_classifier",
                arguments={
                    "algorithm": "random_forest",
                    "train_data_s3_uri": prep.structured_content["train_data_uri"],
                    "validation_data_uri": prep.structured_content["validation_data_uri"],
                    "training_job_name": "rf-training-001",
                    "hyperparameters": {"n_estimators": 30},
                },
            )
            bad = await session.call_tool("train_supervised_classifier", arguments={"algorithm": "random_forest", "train_data_uri": "../../etc/passwd"})
            return init, tools, prep, train, bad


def test_preprocess_then_train_in_one_session():
    with tempfile.TemporaryDirectory() as home:
        os.makedirs(f"{home}/datasets")
        subprocess.run([BIN, "datasets", "generate", "classification", "--rows", "2000", "--out", f"{home}/datasets/train.csv"], check=True, env={**os.environ, "LOG_LEVEL": "WARN"})
        init, tools, prep, train, bad = asyncio.run(preprocess_then_train(home))

    assert init.server_info.name == "unified-mlops-mcp-server"
    names = {t.name for t in tools.tools}
    assert {"preprocess_supervised", "train_supervised_classifier", "evaluate_classifier", "register_model"} <= names

    assert not prep.is_error, prep.content
    assert prep.structured_content["target"]["classes"] == ["0", "1"]
    assert prep.structured_content["test_data_uri"].endswith("/test.parquet")
    train_rows = next(o["rows"] for o in prep.structured_content["outputs"] if o["uri"] == prep.structured_content["train_data_uri"])
    assert train_rows == 1400

    assert not train.is_error, train.content
    job = train.structured_content
    assert job["training_job_name"] == "rf-training-001"
    assert job["status"] == "completed"
    assert job["metrics"]["validation_accuracy"] > 0.85
    assert job["model_uri"].endswith("models/rf-training-001")

    assert bad.is_error
    assert "not allowed" in bad.content[0].text
