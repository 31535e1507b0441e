"""Shared helpers of the side-by-side benchmarks: drive the release mlops-mcp over stdio (as an MCP
client would), time tool calls, and print every figure as JSON lines plus one Markdown table.

Ours runs as `target/release/mlops-mcp serve` with MLOPS_HOME=<a fresh temp dir> and LOG_LEVEL=WARN,
exactly as `rf_vs_sklearn.py` drives it
(MLOPS_MCP_BIN overrides the binary's path). Both sides get the same thread count (BENCH_THREADS,
default 2: RAYON_NUM_THREADS for ours, n_jobs / OMP_NUM_THREADS for the Python anchors), and each
timing is taken BENCH_REPEATS times (default 3), alternating the sides, keeping the fastest."""
import json
import os
import platform
import time
from contextlib import asynccontextmanager

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MLOPS_MCP_BIN", os.path.join(ROOT, "target/release/mlops-mcp"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# Timed runs per side; the table shows the fastest (the least disturbed by other load), the
# note lists every run.
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def runs_note(ours_runs, anchor_runs=None):
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    note = f"best of {len(ours_runs)}; ours runs {fmt(ours_runs)}"
    if anchor_runs:
        note += f"; anchor runs {fmt(anchor_runs)}"
    return note


def peak_rss_mb(pid):
    """A process's peak resident memory (VmHWM) in MB, read while it still runs."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def require_binary():
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} is missing: build it with `cargo build --release -p mlops-mcp`")


def write_parquet(home, name, df):
    """Writes `df` as `<home>/datasets/<name>.parquet`; returns the URI the tools take."""
    os.makedirs(f"{home}/datasets", exist_ok=True)
    df.to_parquet(f"{home}/datasets/{name}.parquet")
    return f"datasets/{name}.parquet"


class Ours:
    """One MCP session with the release server."""

    def __init__(self, session):
        self.s = session

    async def call(self, tool, args):
        """Calls `tool`; returns (structured result, wall seconds of the whole call)."""
        t = time.perf_counter()
        r = await self.s.call_tool(tool, args)
        wall = time.perf_counter() - t
        if r.is_error:
            raise RuntimeError(f"{tool} failed: {r.content}")
        return r.structured_content, wall


@asynccontextmanager
async def ours(home):
    require_binary()
    env = {"MLOPS_HOME": home, "LOG_LEVEL": "WARN", "RAYON_NUM_THREADS": str(THREADS),
           "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=BIN, args=["serve"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            yield Ours(s)


class Table:
    """Collects (workload, metric, ours, anchor) rows; prints JSON lines as they come and a table."""

    def __init__(self, title, anchor_name):
        self.title = title
        self.anchor = anchor_name
        self.rows = []
        self.load_start = os.getloadavg()

    def add(self, workload, metric, ours_v, anchor_v, note=""):
        ratio = None
        if isinstance(ours_v, (int, float)) and isinstance(anchor_v, (int, float)) and anchor_v:
            ratio = ours_v / anchor_v
        self.rows.append((workload, metric, ours_v, anchor_v, ratio, note))
        print(json.dumps({"workload": workload, "metric": metric, "ours": _r(ours_v), "anchor": _r(anchor_v),
                          "ours_over_anchor": _r(ratio), "note": note}), flush=True)

    def print(self):
        load_end = os.getloadavg()
        print()
        print(f"## {self.title}")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, threads per side {THREADS}, "
              f"timed runs per side {REPEATS} (fastest shown); "
              f"load average at start {self.load_start[0]:.2f}, at end {load_end[0]:.2f}")
        print()
        print(f"| workload | metric | mlops-mcp | {self.anchor} | ours / anchor | note |")
        print("|---|---|---|---|---|---|")
        for w, m, o, a, r, n in self.rows:
            print(f"| {w} | {m} | {_fmt(o)} | {_fmt(a)} | {_fmt(r, ratio=True)} | {n} |")
        print(flush=True)


def _r(v):
    return round(v, 6) if isinstance(v, float) else v


def _fmt(v, ratio=False):
    if v is None:
        return "-"
    if isinstance(v, float):
        if ratio:
            return f"{v:.3f}x"
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)
