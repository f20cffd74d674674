#!/usr/bin/env bash
# Prove the wheelhouse installs like a released package, in fresh virtual environments:
#   core alone -> exactly numpy, pyarrow, pluggy, array-api-compat, xxhash, and Parquet works;
#   [tiff]     -> converts a TIFF with no torch installed;
#   [torch]    -> with the pinned CPU wheel, to_torch() works.
# Builds dist/ first (scripts/build.sh) unless SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ "${SKIP_BUILD:-0}" = 1 ] || bash scripts/build.sh >/dev/null
root=$(mktemp -d "${TMPDIR:-/tmp}/ome-arrow-install.XXXXXX")
trap 'rm -rf "$root"' EXIT
fresh() {  # fresh NAME SPEC...: a new venv with SPEC installed from dist/ (our packages) and PyPI (the rest)
  local env="$root/$1"; shift
  "$PY" -m venv "$env"
  "$env/bin/python" -m pip install -q --no-compile --disable-pip-version-check --find-links dist "$@" 2>/dev/null
  echo "$env"
}
sample=tests/data/ome-artificial/multi-channel-z-series.ome.tiff

env=$(fresh core ome-arrow-core)
got=$("$env/bin/python" -m pip list --format freeze 2>/dev/null | cut -d= -f1 | tr 'A-Z_' 'a-z-' \
      | grep -v -x -E 'pip|setuptools|wheel' | sort | tr '\n' ' ')  # what venv itself ships is not ours
want="array-api-compat numpy ome-arrow-core pluggy pyarrow xxhash "
[ "$got" = "$want" ] || { echo "error: core alone installed: $got; expected: $want" >&2; exit 1; }
"$env/bin/python" - <<'PY'
import sys, tempfile, numpy as np
from ome_arrow_core import OMEArrow
out = tempfile.mkdtemp() + "/x.ome.parquet"
a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
OMEArrow(a, dim_order="CZYX").export("parquet", out)
back = OMEArrow.scan(out).tensor_view(layout="CZYX").to_numpy()
assert np.array_equal(back, a), "round trip differs"
assert not {"torch", "jax", "tifffile", "vortex"} & set(sys.modules), "core imported a backend library"
from ome_arrow_core import BackendUnavailableError
try:
    OMEArrow.scan("tests/data/ome-artificial/multi-channel-z-series.ome.tiff")
except BackendUnavailableError as exc:
    assert 'pip install "ome-arrow-core[tiff]"' in str(exc), exc
else:
    raise AssertionError("a .ome.tiff opened without the TIFF backend")
print("core alone: ok")
PY
listing=$("$env/bin/ome-arrow-core" plugins)
for extra in tiff vortex zarr torch jax cupy dask ray; do
  grep -q "unavailable: pip install \"ome-arrow-core\[$extra\]\"" <<<"$listing" \
    || { echo "error: 'plugins' does not list the missing $extra backend with its install command" >&2; exit 1; }
done

env=$(fresh tiff "ome-arrow-core[tiff]")
! "$env/bin/python" -c "import torch" 2>/dev/null || { echo "error: [tiff] installed torch" >&2; exit 1; }
"$env/bin/ome-arrow-core" convert -q "$sample" -o "$root/tiff-out.ome.parquet"
"$env/bin/ome-arrow-core" info "$root/tiff-out.ome.parquet" >/dev/null
echo "[tiff] alone: ok (converted $sample without torch)"

env=$(fresh torch "ome-arrow-core[torch]" "torch==2.13.0")
"$env/bin/python" - <<'PY'
import numpy as np
from ome_arrow_core import OMEArrow
t = OMEArrow(np.ones((4, 5), np.uint16), dim_order="YX").tensor_view(layout="YX").to_torch()
assert tuple(t.shape) == (4, 5) and int(t.sum()) == 20
print("[torch]: ok")
PY
