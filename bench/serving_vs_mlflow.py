"""Serving, side by side in one run (see bench/README.md):

1. Online: a random forest (100 trees, depth 12, 20 features, trained on the same 100k rows) served
   by `mlops-mcp serve --http` (Open Inference Protocol v2, `POST /v2/models/m/infer`) and by
   MLflow's `mlflow models serve --env-manager local --workers 2` (scikit-learn's forest, pyfunc,
   `POST /invocations` with `dataframe_split`). `wrk` sends one-row and 100-row requests over
   CONNECTIONS connections for DURATION each: requests/s, p50 and p99 latency, wrong answers.
2. Batch: 1M rows × 20 scored by `batch_predict` (chunks of 100k, Parquet in and out) vs
   scikit-learn's `predict_proba` over the same Parquet in pandas chunks of 100k written back as
   Parquet: rows/s and peak resident memory of the process doing the work.

MLflow runs from its own virtual environment (MLFLOW_VENV, default target/bench-mlflow-venv; made
with `pip install mlflow skops scikit-learn pandas pyarrow` when missing). Needs `wrk` (apt-get install
wrk) and the release binary (cargo build --release -p mlops-mcp).

    python3 bench/serving_vs_mlflow.py              # both parts
    python3 bench/serving_vs_mlflow.py online       # or: batch
"""
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

from _bench_common import BIN, ROOT, THREADS, Table, ours, require_binary

CONNECTIONS = int(os.environ.get("CONNECTIONS", "8"))
DURATION = os.environ.get("DURATION", "15s")
MLFLOW_VENV = os.environ.get("MLFLOW_VENV", os.path.join(ROOT, "target", "bench-mlflow-venv"))
TOKEN = "bench-serving-token-0123456789abcdef"
FEATURES = [f"f{i}" for i in range(20)]


def mlflow_python():
    python = os.path.join(MLFLOW_VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {MLFLOW_VENV} with MLflow (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", MLFLOW_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "mlflow>=3", "skops", "scikit-learn", "pandas", "pyarrow"],
                       check=True)
    return python


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, process, what, timeout=180):
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited ({process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"{what} did not answer at {url} within {timeout} s")


def data(rows, seed):
    x, y = make_classification(n_samples=rows, n_features=20, n_informative=12, random_state=seed)
    df = pd.DataFrame(x, columns=FEATURES)
    df["label"] = y
    return df


WRK_LUA = r"""
wrk.method = "POST"
wrk.body = io.open(os.getenv("BODY_FILE")):read("*a")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local threads = {}
function setup(thread) table.insert(threads, thread) end
bad = 0
function response(status, headers, body) if status ~= 200 then bad = bad + 1 end end
function done(summary, latency, requests)
    local wrong = 0
    for _, t in ipairs(threads) do wrong = wrong + t:get("bad") end
    io.write(string.format("RESULT {\"requests\": %d, \"seconds\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"non_200\": %d, \"socket_errors\": %d}\n",
        summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        wrong, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk(url, body, auth=""):
    work = tempfile.mkdtemp()
    try:
        with open(f"{work}/body.json", "w") as f:
            json.dump(body, f)
        with open(f"{work}/post.lua", "w") as f:
            f.write(WRK_LUA)
        out = subprocess.run(
            ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", DURATION, "-s", f"{work}/post.lua", url],
            env={**os.environ, "BODY_FILE": f"{work}/body.json", "AUTH": auth},
            capture_output=True, text=True, check=True,
        ).stdout
        result = json.loads(re.search(r"RESULT (\{.*\})", out).group(1))
        result["rps"] = result["requests"] / result["seconds"]
        return result
    finally:
        shutil.rmtree(work)


def oip_body(rows):
    return {"inputs": [{"name": "input", "shape": [len(rows), 20], "datatype": "FP64",
                        "data": rows[FEATURES].to_numpy().ravel().tolist()}]}


def mlflow_body(rows):
    return {"dataframe_split": {"columns": FEATURES, "data": rows[FEATURES].to_numpy().tolist()}}


async def deploy_ours(home, train_uri):
    async with ours(home) as o:
        await o.call("train_supervised_classifier", {
            "algorithm": "random_forest", "train_data_uri": train_uri, "target_column": "label",
            "training_job_name": "rf", "hyperparameters": {"n_estimators": 100, "max_depth": 12},
        })
        await o.call("register_model", {"model_name": "m", "model_uri": "models/rf"})
        await o.call("set_model_approval", {"model_name": "m", "version": 1, "approval_status": "Approved"})
        await o.call("transition_model_stage", {"model_name": "m", "version": 1, "stage": "Production"})


def online(table, home, train, test):
    python = mlflow_python()
    model_dir = f"{home}/mlflow-model"
    train.to_parquet(f"{home}/mlflow-train.parquet")
    subprocess.run([python, "-c", f"""
import mlflow.sklearn, pandas as pd
from sklearn.ensemble import RandomForestClassifier
df = pd.read_parquet({home + '/mlflow-train.parquet'!r})
m = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs={THREADS}, random_state=0)
m.fit(df[{FEATURES!r}], df['label'])
mlflow.sklearn.save_model(m, {model_dir!r}, serialization_format='skops',
                          skops_trusted_types=['sklearn.tree._tree.Tree'])
"""], check=True)
    asyncio.run(deploy_ours(home, "datasets/train.parquet"))
    port_ours, port_mlflow = free_port(), free_port()
    env = {"MLOPS_HOME": home, "LOG_LEVEL": "WARN", "MLOPS_HTTP_TOKENS": TOKEN, "MLOPS_HTTP_RATE_LIMIT": "0",
           "MLOPS_HTTP_MAX_CONCURRENT": "100000", "RAYON_NUM_THREADS": str(THREADS),
           "PATH": os.environ.get("PATH", "")}
    server = subprocess.Popen([BIN, "serve", "--http", f"127.0.0.1:{port_ours}"], env=env,
                              stdout=subprocess.DEVNULL)
    mlflow = subprocess.Popen(
        [python, "-m", "mlflow", "models", "serve", "-m", model_dir, "--env-manager", "local",
         "--workers", "2", "-h", "127.0.0.1", "-p", str(port_mlflow)],
        # The scoring server it starts is `python` on PATH: the virtual environment's.
        env={**os.environ, "PATH": f"{MLFLOW_VENV}/bin:{os.environ.get('PATH', '')}",
             "OMP_NUM_THREADS": "1", "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "120"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port_ours}/healthz", server, "mlops-mcp")
        wait_for(f"http://127.0.0.1:{port_mlflow}/ping", mlflow, "mlflow models serve")
        for n in (1, 100):
            rows = test.head(n)
            a = wrk(f"http://127.0.0.1:{port_mlflow}/invocations", mlflow_body(rows))
            o = wrk(f"http://127.0.0.1:{port_ours}/v2/models/m/infer", oip_body(rows), f"Bearer {TOKEN}")
            workload = f"{n}-row requests, {CONNECTIONS} connections, {DURATION}"
            table.add(workload, "requests/s", o["rps"], a["rps"],
                      f"non-200 ours {o['non_200']}, anchor {a['non_200']}")
            table.add(workload, "p50 ms", o["p50_ms"], a["p50_ms"])
            table.add(workload, "p99 ms", o["p99_ms"], a["p99_ms"])
    finally:
        for p in (server, mlflow):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


SKLEARN_BATCH = """
import resource, sys, time
import joblib, pyarrow as pa, pyarrow.parquet as pq
model = joblib.load(sys.argv[1])
features = [f"f{i}" for i in range(20)]
started = time.perf_counter()
rows = 0
for n, batch in enumerate(pq.ParquetFile(sys.argv[2]).iter_batches(batch_size=100_000, columns=features)):
    x = batch.to_pandas()
    p = model.predict_proba(x)
    out = pa.table({"label": model.classes_[p.argmax(axis=1)], "proba_0": p[:, 0], "proba_1": p[:, 1]})
    pq.write_table(out, f"{sys.argv[3]}/part-{n:05}.parquet")
    rows += len(x)
seconds = time.perf_counter() - started
print(rows, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


async def batch_ours(home, uri):
    async with ours(home) as o:
        r, wall = await o.call("batch_predict", {"model_name": "m", "data_uri": uri, "job_name": "bench",
                                                "chunk_rows": 100_000})
        return r, wall


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def batch(table, home, train, rows):
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    big = data(rows, 11)
    big[FEATURES].to_parquet(f"{home}/datasets/big.parquet", row_group_size=100_000)
    model = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=THREADS, random_state=0)
    model.fit(train[FEATURES], train["label"])
    joblib.dump(model, f"{home}/rf.joblib")
    os.makedirs(f"{home}/sk-out", exist_ok=True)
    out = subprocess.run([sys.executable, "-c", SKLEARN_BATCH, f"{home}/rf.joblib", f"{home}/datasets/big.parquet",
                          f"{home}/sk-out"], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(THREADS)}).stdout.split()
    sk_rows, sk_seconds, sk_peak_kb = int(out[0]), float(out[1]), int(out[2])
    if not os.path.exists(f"{home}/models/rf"):
        asyncio.run(deploy_ours(home, "datasets/train.parquet"))
    # The server's peak memory is read from /proc while the job runs in it.
    result = {}

    async def run():
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
        env = {"MLOPS_HOME": home, "LOG_LEVEL": "WARN", "RAYON_NUM_THREADS": str(THREADS),
               "PATH": os.environ.get("PATH", "")}
        async with stdio_client(StdioServerParameters(command=BIN, args=["serve"], env=env)) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                pid = int(subprocess.run(["pgrep", "-n", "-f", f"{BIN} serve"], capture_output=True, text=True).stdout)
                t = time.perf_counter()
                done = await s.call_tool("batch_predict", {"model_name": "m", "data_uri": "datasets/big.parquet",
                                                           "job_name": "bench", "chunk_rows": 100_000,
                                                           "overwrite": True})
                result["seconds"] = time.perf_counter() - t
                result["peak_kb"] = peak_rss_kb(pid)
                result["rows"] = done.structured_content["result"]["rows_out"]
    asyncio.run(run())
    assert result["rows"] == sk_rows == rows, (result, sk_rows)
    workload = f"batch {rows:,} rows x 20, chunks of 100k, Parquet in and out"
    table.add(workload, "rows/s", result["rows"] / result["seconds"], sk_rows / sk_seconds)
    table.add(workload, "peak RSS MB", result["peak_kb"] / 1024, sk_peak_kb / 1024,
              "the whole server process vs the scikit-learn script")


def main():
    require_binary()
    parts = sys.argv[1:] or ["online", "batch"]
    table = Table("Serving: mlops-mcp vs MLflow models serve / scikit-learn", "anchor")
    with tempfile.TemporaryDirectory() as home:
        os.makedirs(f"{home}/datasets")
        train = data(100_000, 7)
        train.to_parquet(f"{home}/datasets/train.parquet")
        test = data(1_000, 8)
        if "online" in parts:
            online(table, home, train, test)
        if "batch" in parts:
            batch(table, home, train, int(os.environ.get("BATCH_ROWS", "1000000")))
    table.print()


if __name__ == "__main__":
    main()
