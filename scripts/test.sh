#!/usr/bin/env bash
# Quick start, line 2: install what is missing (test tools, PostgreSQL binaries), lint, type-check, test.
# Integration tests start their own Redis, Triton and PostgreSQL on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check services tests bench scripts
.venv/bin/mypy
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [[ $code -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $code
