"""The inference endpoint with a client nobody here wrote: `tritonclient[http]`, NVIDIA's client
for the Open Inference Protocol v2, against `mlops-mcp serve --http` with a bearer token. It reads
the model's metadata, and infers with binary tensors (its default) and with JSON tensors; the
numbers equal what the `predict` tool says for the same rows, and every answer names version 1.

Run from the repository root after `cargo build`."""
import asyncio
import csv
import tempfile

import httpx2
import numpy as np
import tritonclient.http as triton
from conftest import generate, http_server
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TOKEN = "tritonclient-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def auth() -> dict:
    """Fresh headers for each tritonclient call: it adds its own to the dict it is given."""
    return dict(AUTH)


async def deploy_and_predict(url: str, records: list) -> dict:
    """Trains a classifier, registers and promotes it, and asks `predict` about `records`."""
    async with httpx2.AsyncClient(headers=AUTH, timeout=httpx2.Timeout(30, read=300)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()

                async def call(tool: str, **arguments) -> dict:
                    r = await session.call_tool(tool, arguments=arguments)
                    assert not r.is_error, r.content
                    return r.structured_content

                await call(
                    "train_supervised_classifier",
                    algorithm="random_forest",
                    train_data_uri="datasets/train.csv",
                    target_column="label",
                    training_job_name="rf",
                    hyperparameters={"n_estimators": 25},
                )
                await call("register_model", model_name="churn", model_uri="models/rf")
                await call("set_model_approval", model_name="churn", version=1, approval_status="Approved")
                await call("transition_model_stage", model_name="churn", version=1, stage="Production")
                return await call("predict", model_name="churn", records=records)


def rows(path: str, n: int) -> list:
    with open(path, newline="") as f:
        out = []
        for i, row in enumerate(csv.DictReader(f)):
            if i == n:
                break
            row.pop("label")
            out.append({k: (float(v) if k.startswith("f") else v) for k, v in row.items()})
        return out


def test_tritonclient_infers_what_predict_says():
    with tempfile.TemporaryDirectory() as home:
        generate("classification", 800, f"{home}/datasets/train.csv")
        records = rows(f"{home}/datasets/train.csv", 12)
        with http_server(home, {"MLOPS_HTTP_TOKENS": TOKEN}) as (base, _):
            predicted = asyncio.run(deploy_and_predict(f"{base}/mcp", records))
            classes = list(predicted["predictions"][0]["probabilities"].keys())
            want_labels = [p["label"] for p in predicted["predictions"]]
            want_probs = np.array([[p["probabilities"][c] for c in classes] for p in predicted["predictions"]])

            client = triton.InferenceServerClient(url=base.removeprefix("http://"))
            assert client.is_server_live(headers=auth())
            assert client.is_model_ready("churn", headers=auth())
            meta = client.get_model_metadata("churn", headers=auth())
            assert meta["versions"] == ["1"]
            outputs = {o["name"]: o for o in meta["outputs"]}
            assert outputs["probabilities"]["shape"] == [-1, len(classes)]

            for binary in (True, False):
                inputs = []
                for spec in meta["inputs"]:
                    column = [r[spec["name"]] for r in records]
                    if spec["datatype"] == "FP64":
                        array = np.array(column, dtype=np.float64)
                    else:
                        array = np.array(column, dtype=np.object_)
                    tensor = triton.InferInput(spec["name"], [len(records)], spec["datatype"])
                    tensor.set_data_from_numpy(array, binary_data=binary)
                    inputs.append(tensor)
                asked = [
                    triton.InferRequestedOutput("label", binary_data=binary),
                    triton.InferRequestedOutput("probabilities", binary_data=binary),
                ]
                result = client.infer("churn", inputs, outputs=asked, headers=auth())
                response = result.get_response()
                assert response["model_version"] == "1"
                labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
                assert labels == want_labels, binary
                np.testing.assert_array_equal(result.as_numpy("probabilities"), want_probs)

            # With no outputs named, every output comes back (tritonclient asks for binary then).
            result = client.infer("churn", inputs, headers=auth())
            np.testing.assert_array_equal(result.as_numpy("probabilities"), want_probs)

            # Version routes and errors a client can act on.
            result = client.infer("churn", inputs, model_version="1", headers=auth())
            assert result.get_response()["model_version"] == "1"
            try:
                client.infer("nobody", inputs, headers=auth())
                raise AssertionError("inferring with an unknown model should fail")
            except triton.InferenceServerException as e:
                assert "nobody" in e.message()
            client.close()
