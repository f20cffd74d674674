#!/usr/bin/env bash
# Run ome-arrow 0.1.0's own test suite (its sdist, downloaded once with pip and cached) against
# ome_arrow_core.compat. A separate step from pytest: it takes about a minute.
#   bash scripts/reference_suite.sh                          # against the compatibility module
#   bash scripts/reference_suite.sh --target ome_arrow_core  # the package without it (the "before" figure)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" tests/compat/run_reference_suite.py -q -p no:warnings "$@"
