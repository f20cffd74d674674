#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole test suite; with no arguments, then the reference
# package's own suite against ome_arrow_core.compat (scripts/reference_suite.sh, a separate step).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A fixed, private --basetemp (emptied by pytest at start): no scan of a shared /tmp/pytest-of-$USER, whose
# cleanup by another process mid-scan left pytest's own scandir iterator unclosed (a ResourceWarning -> error).
.venv/bin/python -m pytest -q --basetemp=.pytest-tmp "$@"
if [ $# -eq 0 ]; then bash scripts/reference_suite.sh; fi
