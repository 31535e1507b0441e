#!/usr/bin/env bash
# Load test of `mlops-mcp serve --http` with wrk (apt-get install wrk):
#   1. MCP `tools/list` with a bearer token (the /mcp guards included), spread over SESSIONS MCP
#      sessions (default 8; requests of one session are handled one after another);
#   2. signed GitHub `ping` deliveries to POST /webhooks/github, each with its own delivery id
#      (signature check, JSON parse, de-duplication; no workflow is started).
# Prints wrk's latency distribution (p50/p75/p90/p99), requests/s and errors for each, and the
# server's resident memory at idle and at its peak under load (from /proc, Linux).
# The per-token rate and concurrency limits are lifted for the run (one token drives all the load).
#
#   bench/http_load.sh                      # 30 s each, 32 connections, 2 threads
#   DURATION=10s CONNECTIONS=64 SESSIONS=1 bench/http_load.sh
#   MLOPS_MCP_BIN=target/debug/mlops-mcp bench/http_load.sh
#
# Build first: cargo build --release -p mlops-mcp (the default binary is target/release/mlops-mcp).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MLOPS_MCP_BIN:-$ROOT/target/release/mlops-mcp}
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
SESSIONS=${SESSIONS:-8}

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk (or brew install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no binary at $BIN: cargo build --release -p mlops-mcp, or set MLOPS_MCP_BIN" >&2; exit 1; }

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export TOKEN="bench-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
SECRET="bench-secret-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

MLOPS_HOME="$work/home" LOG_LEVEL=WARN MLOPS_HTTP_TOKENS="$TOKEN" GITHUB_WEBHOOK_SECRET="$SECRET" \
    MLOPS_HTTP_RATE_LIMIT=0 MLOPS_HTTP_MAX_CONCURRENT=100000 \
    "$BIN" serve --http "127.0.0.1:$port" 2>"$work/server.log" &
server=$!
cleanup() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; echo "the server exited" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null || { echo "the server is not ready" >&2; exit 1; }

# MCP sessions (one per simulated client): initialize, then the initialized notification.
mcp=(-sS -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json"
     -H "Accept: application/json, text/event-stream")
session_ids=()
for _ in $(seq 1 "$SESSIONS"); do
    id=$(curl "${mcp[@]}" -D - -o /dev/null "$base/mcp" \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' \
        | tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" {print $2}')
    [ -n "$id" ] || { echo "initialize returned no Mcp-Session-Id" >&2; exit 1; }
    curl "${mcp[@]}" -H "Mcp-Session-Id: $id" -H "Mcp-Protocol-Version: 2025-06-18" -o /dev/null \
        "$base/mcp" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    session_ids+=("$id")
done
export SESSIONS_LIST=$(IFS=,; echo "${session_ids[*]}")
tools=$(curl "${mcp[@]}" -H "Mcp-Session-Id: ${session_ids[0]}" -H "Mcp-Protocol-Version: 2025-06-18" \
    "$base/mcp" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' | grep -o '"name":"[a-z_]*"' | wc -l)
echo "$SESSIONS MCP sessions; tools/list answers with $tools names"

# Counts answers that are not what a correct server sends (wrk counts only non-2xx itself).
common_lua='
local threads = {}
function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end
bad = 0
function done(summary, latency, requests)
    local total = 0
    for _, t in ipairs(threads) do total = total + t:get("bad") end
    io.write(string.format("wrong answers: %d of %d; p50 %.2f ms, p99 %.2f ms\n",
        total, summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
'

cat >"$work/tools_list.lua" <<EOF
$common_lua
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":3,"method":"tools/list"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Mcp-Protocol-Version"] = "2025-06-18"
local sessions = {}
for id in string.gmatch(os.getenv("SESSIONS_LIST"), "[^,]+") do table.insert(sessions, id) end
local n = 0
function request()
    n = n + 1
    wrk.headers["Mcp-Session-Id"] = sessions[(n + id) % #sessions + 1]
    return wrk.format()
end
function response(status, headers, body)
    if status ~= 200 or not body:find('"train_supervised_classifier"', 1, true) then bad = bad + 1 end
end
EOF

body='{"zen":"Keep it logically awesome.","hook_id":1,"hook":{"type":"Repository"},"repository":{"full_name":"acme/models"}}'
export SIGNATURE="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
cat >"$work/webhook.lua" <<EOF
$common_lua
local n = 0
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "ping"
wrk.headers["X-Hub-Signature-256"] = os.getenv("SIGNATURE")
function request()
    n = n + 1
    wrk.headers["X-GitHub-Delivery"] = string.format("wrk-%d-%d", id, n)
    return wrk.format()
end
function response(status, headers, body)
    if status ~= 200 or not body:find('pong', 1, true) then bad = bad + 1 end
end
EOF

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
echo "resident memory at idle: $(( $(rss_kib) / 1024 )) MiB"
# The peak resident memory while wrk runs, sampled every 200 ms.
( peak=0; while kill -0 "$server" 2>/dev/null; do
    now=$(rss_kib 2>/dev/null || echo 0); [ "${now:-0}" -gt "$peak" ] && peak=$now && echo "$peak" >"$work/peak"
    sleep 0.2; done ) &
sampler=$!

echo
echo "== MCP tools/list: $CONNECTIONS connections, $THREADS threads, $SESSIONS sessions, $DURATION =="
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/tools_list.lua" "$base/mcp"
echo
echo "== POST /webhooks/github (signed ping): $CONNECTIONS connections, $THREADS threads, $DURATION =="
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/webhook.lua" "$base/webhooks/github"
kill "$sampler" 2>/dev/null || true
echo
echo "peak resident memory under load: $(( $(cat "$work/peak") / 1024 )) MiB"
if grep -q '"level":"ERROR"' "$work/server.log"; then
    echo "server errors:" >&2
    grep '"level":"ERROR"' "$work/server.log" | head -5 >&2
fi
