"""Data preparation on 1,000,000 rows x 30 mixed columns: mlops-mcp vs pandas + scikit-learn,
side by side in one run, on the same CSV.

The anchor (dataprep_anchor.py) loads the CSV, validates (missing values, duplicates, types, class
balance), imputes, scales, one-hot encodes and splits 80/20 stratified. Ours does the same through
two MCP tool calls on the release binary: `validate_data`, then `preprocess_supervised` with an
inline stratified split (fit on the training part only; both parts written as Parquet).
Differences: the anchor derives the month from `event_date`; ours drops that column.
We report wall time and the server's peak RSS (VmHWM).

Usage: python3 bench/dataprep_vs_pandas.py [ROWS]"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import dataprep_anchor  # noqa: E402
from _bench_common import peak_rss_mb  # noqa: E402


def ours(home):
    env = {**os.environ, "MLOPS_HOME": home, "LOG_LEVEL": "WARN"}
    p = subprocess.Popen([os.path.join(ROOT, "target/release/mlops-mcp"), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    ids = iter(range(1, 1000))

    def rpc(method, params, notify=False):
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            msg["id"] = next(ids)
        p.stdin.write((json.dumps(msg) + "\n").encode())
        p.stdin.flush()
        if not notify:
            reply = json.loads(p.stdout.readline())
            result = reply["result"]
            assert not result.get("isError"), result["content"][0]["text"]
            return result

    rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}})
    rpc("notifications/initialized", {}, notify=True)
    t = time.perf_counter()
    rpc("tools/call", {"name": "validate_data", "arguments": {"dataset_uri": "datasets/big.csv", "target_column": "target"}})
    t_val = time.perf_counter()
    prep = rpc("tools/call", {"name": "preprocess_supervised", "arguments": {
        "dataset_uri": "datasets/big.csv", "target_column": "target", "task_type": "classification",
        "drop_columns": ["event_date"], "split": {"validation_fraction": 0.0, "test_fraction": 0.2, "seed": 0}}})
    t_end = time.perf_counter()
    peak = peak_rss_mb(p.pid)
    p.stdin.close()
    p.wait(timeout=30)
    return {"seconds": round(t_end - t, 2), "validate_s": round(t_val - t, 2), "preprocess_split_s": round(t_end - t_val, 2),
            "peak_rss_mb": round(peak), "out_cols": len(prep["structuredContent"]["feature_names"])}


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    home = tempfile.mkdtemp()
    os.makedirs(f"{home}/datasets")
    csv = f"{home}/datasets/big.csv"
    dataprep_anchor.make(csv, rows)
    anchor = subprocess.run([sys.executable, os.path.join(ROOT, "bench/dataprep_anchor.py"), "run", csv], capture_output=True, text=True, check=True)
    a = json.loads(anchor.stdout.strip().splitlines()[-1])
    o = ours(home)
    print(json.dumps({"anchor": a}))
    print(json.dumps({"mlops": o}))
    print(json.dumps({"speedup": round(a["seconds"] / o["seconds"], 2), "peak_memory_ratio": round(o["peak_rss_mb"] / a["peak_rss_mb"], 2)}))


if __name__ == "__main__":
    main()
