"""Data drift on 1,000,000 current rows x 20 columns against 200,000 reference rows: mlops-mcp's
`detect_drift` vs Evidently's DataDriftPreset, side by side in one run, on the same Parquet files.

Fifteen numeric and five categorical columns; the current rows drift in three: `num_00` (mean
shifted by 0.75 standard deviations), `num_01` (spread doubled) and `cat_00` (a value never seen,
in 10% of rows). Both sides read both tables and compare them from scratch (ours profiles the
reference table in the same call, as `reference_data_uri` does). Reported: wall time (best of
BENCH_REPEATS, the sides alternating), peak RSS (ours: the server's VmHWM; Evidently: its process's
maxrss) and whether both flag the same columns. Evidently runs from its own virtual environment
(EVIDENTLY_VENV, default target/bench-evidently-venv, created on first use with `evidently` and
`pandas<3`).

Usage: python3 bench/drift_vs_evidently.py [CURRENT_ROWS] [REFERENCE_ROWS]"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from _bench_common import BIN, REPEATS, THREADS, Table, peak_rss_mb, require_binary, runs_note  # noqa: E402

VENV = os.environ.get("EVIDENTLY_VENV", os.path.join(ROOT, "target/bench-evidently-venv"))


def evidently_python():
    python = os.path.join(VENV, "bin/python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "evidently", "pandas<3", "pyarrow"], check=True)
    return python


def table(rows, seed, drifted):
    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(15):
        mean, std = i * 3.0, 1.0 + i / 10
        values = rng.normal(mean, std, rows)
        if drifted and i == 0:
            values += 0.75 * std
        if drifted and i == 1:
            values = mean + (values - mean) * 2.0
        columns[f"num_{i:02d}"] = values
    for i in range(5):
        levels = [f"level_{j}" for j in range(4 + i)]
        values = rng.choice(levels, rows)
        if drifted and i == 0:
            values = np.where(rng.random(rows) < 0.10, "never_seen", values)
        columns[f"cat_{i:02d}"] = values
    return pd.DataFrame(columns)


class Server:
    """The release server over stdio, JSON-RPC by hand so its pid is ours to read."""

    def __init__(self, home):
        env = {**os.environ, "MLOPS_HOME": home, "LOG_LEVEL": "WARN", "RAYON_NUM_THREADS": str(THREADS)}
        self.p = subprocess.Popen([BIN, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.ids = iter(range(1, 10_000))
        self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}})
        self.rpc("notifications/initialized", {}, notify=True)

    def rpc(self, method, params, notify=False):
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            msg["id"] = next(self.ids)
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()
        if notify:
            return None
        result = json.loads(self.p.stdout.readline())["result"]
        assert not result.get("isError"), result["content"][0]["text"]
        return result.get("structuredContent", result)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def main():
    current_rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    reference_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    require_binary()
    python = evidently_python()
    home = tempfile.mkdtemp()
    os.makedirs(f"{home}/datasets")
    ref_path, cur_path = f"{home}/datasets/reference.parquet", f"{home}/datasets/current.parquet"
    table(reference_rows, 1, False).to_parquet(ref_path)
    table(current_rows, 2, True).to_parquet(cur_path)

    server = Server(home)
    ours_runs, anchor_runs, anchor = [], [], None
    for _ in range(REPEATS):
        t = time.perf_counter()
        result = server.rpc("tools/call", {"name": "detect_drift", "arguments": {
            "reference_data_uri": "datasets/reference.parquet", "data_uri": "datasets/current.parquet"}})
        ours_runs.append(time.perf_counter() - t)
        out = subprocess.run([python, os.path.join(ROOT, "bench/drift_anchor.py"), ref_path, cur_path],
                             capture_output=True, text=True, check=True)
        anchor = json.loads(out.stdout.strip().splitlines()[-1])
        anchor_runs.append(anchor["seconds"])
    ours_peak = peak_rss_mb(server.p.pid)
    server.close()
    ours_drifted = sorted(result["comparison"]["drifted_features"])
    table_out = Table(f"detect_drift, {current_rows:,} current rows x 20 vs {reference_rows:,} reference rows", "Evidently")
    table_out.add("drift, 20 columns", "seconds", min(ours_runs), min(anchor_runs), runs_note(ours_runs, anchor_runs))
    table_out.add("drift, 20 columns", "peak RSS (MB)", round(ours_peak), round(anchor["peak_rss_mb"]))
    table_out.add("drift, 20 columns", "flagged columns", ", ".join(ours_drifted), ", ".join(anchor["drifted"]),
                  "same set" if ours_drifted == anchor["drifted"] else "DIFFERENT")
    table_out.print()


if __name__ == "__main__":
    main()
