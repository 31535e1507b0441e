#!/usr/bin/env bash
# The project's test command: formatting, lints, Rust tests (unit, integration, end-to-end over
# stdio), and the Python MCP SDK client tests against the built binary.
# Needs: a Rust toolchain with rustfmt and clippy; Python 3 with tests/python/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
echo "== Python MCP SDK client tests"
cargo build --locked -p mlops-mcp
python3 -m pytest -q tests/python
