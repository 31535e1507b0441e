#!/bin/sh
# mlops-run-issue: the one-shot entry point of the image (installed as /usr/local/bin/mlops-run-issue).
#
# `mlops-mcp run-issue FILE` reads the issue from a file; a container task started by ECS RunTask
# or an EventBridge schedule has no file to hand it, so this wrapper writes the issue given in the
# environment to a temporary file and execs `mlops-mcp run-issue [ARGS...] FILE`:
#
#   MLOPS_ISSUE_MARKDOWN  the issue as Markdown (title on the first line, parameters in a YAML
#                         block or `key: value` lines), as in examples/train-issue.md; or
#   MLOPS_ISSUE_BASE64    the same, base64-encoded (`base64 -w0 examples/train-issue.md`), for places
#                         that take one line only (a CloudFormation parameter); or
#   MLOPS_ISSUE_FILE      a path to an issue file already in the container.
#
# Arguments are passed on to `run-issue`, e.g. `--auto-approve`. The first variable set wins.
set -eu

if [ -n "${MLOPS_ISSUE_FILE:-}" ] && [ -z "${MLOPS_ISSUE_MARKDOWN:-}" ] && [ -z "${MLOPS_ISSUE_BASE64:-}" ]; then
    exec mlops-mcp run-issue "$@" "$MLOPS_ISSUE_FILE"
fi

file="$(mktemp "${TMPDIR:-/tmp}/issue.XXXXXX")"
if [ -n "${MLOPS_ISSUE_MARKDOWN:-}" ]; then
    printf '%s\n' "$MLOPS_ISSUE_MARKDOWN" >"$file"
elif [ -n "${MLOPS_ISSUE_BASE64:-}" ]; then
    if ! printf '%s' "$MLOPS_ISSUE_BASE64" | base64 -d >"$file"; then
        echo "mlops-run-issue: MLOPS_ISSUE_BASE64 is not valid base64" >&2
        exit 2
    fi
else
    echo "mlops-run-issue: set MLOPS_ISSUE_MARKDOWN, MLOPS_ISSUE_BASE64 or MLOPS_ISSUE_FILE to the training issue" >&2
    exit 2
fi
exec mlops-mcp run-issue "$@" "$file"
