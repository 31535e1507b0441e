"""Cold start and tools/list latency of stdio MCP servers, side by side in one run.

Spawn -> `initialize` answered (cold start), then the median `tools/list` round trip over 200
calls, and the server's RSS afterwards. Raw JSON-RPC over pipes, so the client adds almost nothing.

Usage: python3 bench/mcp_latency.py [RUNS]
Compares target/release/mlops-mcp (all tools, config read, database opened) with the Python MCP
SDK serving one trivial tool (bench/py_anchor_server.py)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def once(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def rpc(obj, wait=True):
        p.stdin.write((json.dumps(obj) + "\n").encode())
        p.stdin.flush()
        if wait:
            return json.loads(p.stdout.readline())

    rpc({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
    cold = time.perf_counter() - t0
    rpc({"jsonrpc": "2.0", "method": "notifications/initialized"}, wait=False)
    lat = []
    for i in range(200):
        t = time.perf_counter()
        r = rpc({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/list"})
        lat.append(time.perf_counter() - t)
    rss = rss_kb(p.pid)
    size = len(json.dumps(r["result"]["tools"]))
    p.stdin.close()
    p.wait(timeout=10)
    return cold, statistics.median(lat), rss, len(r["result"]["tools"]), size


def measure(name, cmd, env, runs):
    res = [once(cmd, env) for _ in range(runs)]
    return {
        "server": name,
        "cold_start_ms": round(statistics.median(r[0] for r in res) * 1e3, 2),
        "tools_list_p50_ms": round(statistics.median(r[1] for r in res) * 1e3, 3),
        "rss_mb": round(statistics.median(r[2] for r in res) / 1024, 1),
        "tools": res[0][3],
        "tools_list_bytes": res[0][4],
    }


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    home = tempfile.mkdtemp()
    env = {**os.environ, "MLOPS_HOME": home, "LOG_LEVEL": "WARN"}
    ours = measure("mlops-mcp", [os.path.join(ROOT, "target/release/mlops-mcp"), "serve"], env, runs)
    anchor = measure("python-mcp-sdk", [sys.executable, os.path.join(ROOT, "bench/py_anchor_server.py")], env, runs)
    for r in (ours, anchor):
        print(json.dumps(r))
    print(json.dumps({
        "cold_start_speedup": round(anchor["cold_start_ms"] / ours["cold_start_ms"], 1),
        "tools_list_speedup": round(anchor["tools_list_p50_ms"] / ours["tools_list_p50_ms"], 1),
        "rss_ratio": round(ours["rss_mb"] / anchor["rss_mb"], 2),
    }))


if __name__ == "__main__":
    main()
