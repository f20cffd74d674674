#!/usr/bin/env bash
# Download, where pip reaches an index, the wheels tests/gpu/run_gpu_tests.sh needs on a GPU machine that reaches
# none (the lent H200: CPython 3.12, manylinux x86-64; its image has torch, CuPy, pyarrow, pytest, xxhash... but
# not array-api-compat). Into .whl/ (git-ignored), which the device tool carries: run(..., carry=[".whl"]).
#
#   bash tests/gpu/fetch_wheels.sh                      # array-api-compat and setuptools (about 1 MB)
#   bash tests/gpu/fetch_wheels.sh cupy-cuda12x cuda-pathfinder   # more names (e.g. what run_gpu_tests.sh said)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
names=("$@")
[[ ${#names[@]} == 0 ]] && names=("array-api-compat>=1.8" "setuptools>=77")
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${names[@]}"
ls -l .whl
