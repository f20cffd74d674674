#!/usr/bin/env bash
# Run the GPU backend tests on a CUDA machine without internet access.
#
# Needs Python >= 3.11 with pip, and a wheel folder (default .whl/ in the repo root) holding
# whatever that Python lacks; packages already importable at a good version are used as they
# are (torch and CuPy are never replaced). Everything installed goes to a --target folder put
# first on PYTHONPATH, so the machine's environment is not modified.
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
    "hypothesis": "6.100", "sortedcontainers": "2.1",
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
    out += ["cupy-cuda12x", "fastrlock"]
print(" ".join(out))
EOF
)
if [[ -n "$missing" ]]; then
    echo "installing from $WHEELS: $missing"
    "${PIP[@]}" $missing
fi

# 2. The core and the GPU backends (built from source, offline: setuptools comes from $WHEELS).
projects=(.)
for b in backends/cupy backends/torch backends/jax; do [[ -f "$b/pyproject.toml" ]] && projects+=("$b"); done
echo "installing: ${projects[*]}"
"${PIP[@]}" "${projects[@]}"

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
for row in ome_arrow_core.plugins():
    if row.kind == "exporter":
        print(f"exporter {row.plugin}/{row.name}: {row.handles} available={row.available}")
EOF

tests=()
for t in tests/backends/test_cupy.py tests/backends/test_torch.py tests/backends/test_jax.py tests/test_dlpack_zero_copy.py; do [[ -e "$t" ]] && tests+=("$t"); done
exec "$PY" -m pytest "${tests[@]}" -q -rs "$@"
