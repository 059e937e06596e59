#!/usr/bin/env bash
# Quick start, line 1: install what is missing, then run the bundled sample studies end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hilum demo "$@"
