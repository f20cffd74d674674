#!/usr/bin/env bash
# Run the GPU backend tests, then issue 12's CUDA benchmark cases, on a CUDA machine without internet access.
#
# Needs Python >= 3.11 with pip, and a wheel folder (default .whl/ in the repo root) holding
# whatever that Python lacks; packages already importable at a good version are used as they
# are (torch and CuPy are never replaced). Everything installed goes to a --target folder put
# first on PYTHONPATH, so the machine's environment is not modified. On the lent H200 (its image
# has torch, CuPy, pyarrow, pytest...; not array-api-compat) the wheels come from
# tests/gpu/fetch_wheels.sh, run first where pip reaches an index; the device tool carries .whl:
#
#   bash tests/gpu/fetch_wheels.sh                  # here: .whl/ (about 1 MB)
#   run(command="bash tests/gpu/run_gpu_tests.sh", carry=[".whl"], timeout_s=540)
#
# Time-bounded (about 2-5 minutes on an H200 with 16 cores): tests (TEST_TIMEOUT s), then
# benchmarks/peers_cuda.py --cuda (BENCH_TIMEOUT s; BENCH_ARGS) and benchmarks/cuda_plane_steps.py
# (STEPS_TIMEOUT s); BENCH=0 skips both. Logs and the benchmarks' tables and JSON go to $OUT when set
# (the device tool brings $OUT back).
#
#   tests/gpu/run_gpu_tests.sh [extra pytest args]
#   PYTHON=python3.12 WHEELS=/path/to/wheels SITE=/tmp/site tests/gpu/run_gpu_tests.sh -x
set -euo pipefail

cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/ome-arrow-gpu-site}
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PIP=("$PY" -m pip install -q --no-index --find-links "$WHEELS" --no-deps --no-compile
     --no-cache-dir --disable-pip-version-check --upgrade --target "$SITE")
mkdir -p "$SITE"

# 1. Third-party packages: install only those missing or older than needed.
missing=$("$PY" - <<'EOF'
import importlib.metadata as md
import importlib.util
import re

def version(text):
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])

NEEDED = {  # distribution: minimum version (the core's and the tests' requirements)
    "numpy": "1.26", "pyarrow": "16", "pluggy": "1.5", "array-api-compat": "1.8",
    "pytest": "8", "iniconfig": "2", "packaging": "24", "pygments": "2.15",
    "hypothesis": "6.100", "sortedcontainers": "2.1", "xxhash": "3",
}
out = []
for dist, least in NEEDED.items():
    try:
        if version(md.version(dist)) >= version(least):
            continue
    except md.PackageNotFoundError:
        pass
    out.append(dist)
if importlib.util.find_spec("cupy") is None:  # any cupy-cudaXXx build will do
    out += ["cupy-cuda12x", "cuda-pathfinder"]  # CuPy 14 (13 needed fastrlock instead)
print(" ".join(out))
EOF
)
# setuptools >= 77 builds the projects below: the machine's own (no build isolation), else a wheel from $WHEELS
if ! "$PY" -c 'import re, setuptools as s; assert tuple(int(p) for p in re.findall(r"\d+", s.__version__)[:1]) >= (77,)' 2>/dev/null; then
    missing="$missing setuptools"
    BUILD=()
else
    BUILD=(--no-build-isolation)
fi
if [[ -n "${missing// /}" ]]; then
    echo "installing from $WHEELS: $missing"
    if ! "${PIP[@]}" $missing; then
        echo "run_gpu_tests.sh: '$WHEELS' lacks wheels for: $missing (this machine cannot reach an index)." >&2
        echo "  Where pip reaches one, run: bash tests/gpu/fetch_wheels.sh $missing" >&2
        echo "  (it downloads them for CPython 3.12 on manylinux x86-64 into .whl/), then carry .whl to this machine." >&2
        exit 3
    fi
fi

# 2. The core and the GPU backends (built from source, offline).
projects=(.)
for b in backends/cupy backends/torch backends/jax; do [[ -f "$b/pyproject.toml" ]] && projects+=("$b"); done
echo "installing: ${projects[*]}"
"${PIP[@]}" "${BUILD[@]}" "${projects[@]}"
# The optional C kernel (the [fast] extra's read path) where this machine compiles it (a C compiler and Python's
# headers); without it the reads take the pure-Python path and the tests still run.
if "${PIP[@]}" "${BUILD[@]}" backends/kernels >/tmp/ome-arrow-kernels-build.log 2>&1; then
    echo "installed: backends/kernels (the C read kernel)"
else
    echo "backends/kernels did not build here (reads use the Python path): $(tail -n 3 /tmp/ome-arrow-kernels-build.log)"
fi

# 3. What this machine offers, then the tests.
"$PY" - <<'EOF'
import importlib.util, sys
print("python", sys.version.split()[0])
import numpy, pyarrow
print("numpy", numpy.__version__, "pyarrow", pyarrow.__version__)
if importlib.util.find_spec("cupy"):
    import cupy
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        n = f"0 ({exc})"
    print("cupy", cupy.__version__, "devices", n)
if importlib.util.find_spec("torch"):
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
import ome_arrow_core
print("C read kernel (ome_arrow_kernels):", importlib.util.find_spec("ome_arrow_kernels") is not None)
for row in ome_arrow_core.plugins():
    if row.kind == "exporter":
        print(f"exporter {row.plugin}/{row.name}: {row.handles} available={row.available}")
EOF

OUT_DIR=${OUT:-}
log() { if [[ -n "$OUT_DIR" ]]; then tee "$OUT_DIR/$1"; else cat; fi; }

tests=()
for t in tests/backends/test_cupy.py tests/backends/test_cupy_staging.py tests/backends/test_torch.py tests/backends/test_torch_groups.py \
    tests/backends/test_jax.py tests/test_dlpack_zero_copy.py tests/test_export_many.py tests/test_group_staging.py \
    tests/test_peers_cuda.py; do [[ -e "$t" ]] && tests+=("$t"); done
set +e
timeout "${TEST_TIMEOUT:-200}" "$PY" -m pytest "${tests[@]}" -q -rs -p no:cacheprovider "$@" 2>&1 | log gpu_tests.txt
rc=${PIPESTATUS[0]}
[[ $rc == 124 ]] && echo "run_gpu_tests.sh: the tests ran past ${TEST_TIMEOUT:-200} s and were stopped" >&2

# 3. Issue 12's CUDA cases (one plane and a tile stream to the device; docs/benchmarks.md).
if [[ "${BENCH:-1}" != 0 ]]; then
    json=()
    [[ -n "$OUT_DIR" ]] && json=(--json-out "$OUT_DIR/peers_cuda.json")
    # shellcheck disable=SC2086  # BENCH_ARGS: words
    timeout "${BENCH_TIMEOUT:-200}" "$PY" benchmarks/peers_cuda.py --cuda ${BENCH_ARGS:-} "${json[@]}" 2>&1 | log peers_cuda.txt
    brc=${PIPESTATUS[0]}
    [[ $brc == 124 ]] && echo "run_gpu_tests.sh: the benchmark ran past ${BENCH_TIMEOUT:-200} s and was stopped" >&2
    # Where one plane's time goes, step by step (benchmarks/cuda_plane_steps.py; about 20 s).
    steps=()
    [[ -n "$OUT_DIR" ]] && steps=(--json-out "$OUT_DIR/cuda_plane_steps.json")
    timeout "${STEPS_TIMEOUT:-90}" "$PY" benchmarks/cuda_plane_steps.py "${steps[@]}" 2>&1 | log cuda_plane_steps.txt
    src=${PIPESTATUS[0]}
    [[ $src == 124 ]] && echo "run_gpu_tests.sh: the plane steps ran past ${STEPS_TIMEOUT:-90} s and were stopped" >&2
    [[ $brc == 0 ]] && brc=$src
    [[ $rc == 0 ]] && rc=$brc
fi
exit "$rc"
