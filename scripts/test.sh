#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole test suite; with no arguments, then the reference
# package's own suite against ome_arrow_core.compat (scripts/reference_suite.sh, a separate step).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
if [ $# -eq 0 ]; then bash scripts/reference_suite.sh; fi
