"""Random forest: mlops-mcp vs scikit-learn on the same data, side by side in one run.

Data: scikit-learn's make_classification, 100k rows x 20 features (10 informative), split 80/20
with random_state 0. Both train 100 trees of depth 12 with sqrt(features) per split on the same 80k
rows and are scored on the same 20k. Ours is driven through the MCP tool `train_supervised_classifier`
(release binary, stdio); we report the fit time the job measured and the whole tool call's time.

Usage: python3 bench/rf_vs_sklearn.py [ROWS]   (needs bench/requirements.txt and a release build)"""
import asyncio
import json
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/mlops-mcp")


async def ours(home):
    params = StdioServerParameters(command=BIN, args=["serve"], env={"MLOPS_HOME": home, "LOG_LEVEL": "WARN"})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            t = time.perf_counter()
            job = await s.call_tool("train_supervised_classifier", {
                "algorithm": "random_forest", "train_data_uri": "datasets/bench_train.parquet", "target_column": "y",
                "training_job_name": f"bench-rf-{int(time.time())}", "seed": 0,
                "hyperparameters": {"n_estimators": 100, "max_depth": 12, "max_features": "sqrt"},
            })
            call_s = time.perf_counter() - t
            assert not job.is_error, job.content
            ev = await s.call_tool("evaluate_classifier", {"model_uri": job.structured_content["model_uri"], "test_data_uri": "datasets/bench_test.parquet"})
            assert not ev.is_error, ev.content
            return job.structured_content, call_s, ev.structured_content["accuracy"]


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    t = time.perf_counter()
    m = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=2, random_state=0).fit(Xtr, ytr)
    sk_s = time.perf_counter() - t
    sk_acc = accuracy_score(yte, m.predict(Xte))

    home = tempfile.mkdtemp()
    os.makedirs(f"{home}/datasets")
    cols = [f"x{i}" for i in range(X.shape[1])]
    for name, (a, b) in {"train": (Xtr, ytr), "test": (Xte, yte)}.items():
        df = pd.DataFrame(a, columns=cols)
        df["y"] = b
        df.to_parquet(f"{home}/datasets/bench_{name}.parquet")
    job, call_s, acc = asyncio.run(ours(home))
    fit_s = job["metrics"]["fit_seconds"]
    print(json.dumps({"workload": f"rf_{rows}x20_100trees_depth12", "sklearn_s": round(sk_s, 2), "sklearn_accuracy": round(sk_acc, 4),
                      "mlops_fit_s": round(fit_s, 2), "mlops_tool_call_s": round(call_s, 2), "mlops_accuracy": round(acc, 4),
                      "speedup_fit": round(sk_s / fit_s, 1), "speedup_tool_call": round(sk_s / call_s, 1),
                      "accuracy_diff_pts": round((acc - sk_acc) * 100, 2)}))


if __name__ == "__main__":
    main()
