#!/usr/bin/env bash
# Set up a minimal .venv (idempotent) and run the demo: convert a real OME-TIFF, scan it, stream tensors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh minimal
.venv/bin/python examples/demo.py "$@"
