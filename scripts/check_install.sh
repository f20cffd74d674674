#!/usr/bin/env bash
# Prove the wheelhouse installs like a released package, in fresh virtual environments:
#   core alone -> exactly numpy, pyarrow, pluggy, array-api-compat, xxhash, and Parquet works;
#   [tiff]     -> converts a TIFF with no torch installed;
#   [torch]    -> with the pinned CPU wheel, to_torch() works;
#   [all]      -> resolves; installed minus CuPy (no GPU here), every backend works and CUDA is listed unavailable.
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
for extra in tiff vortex zarr bioio torch jax cupy dask ray napari; do
  grep -q "unavailable: pip install \"ome-arrow-core\[$extra\]\"" <<<"$listing" \
    || { echo "error: 'plugins' does not list the missing $extra backend with its install command" >&2; exit 1; }
done
explained=$("$env/bin/ome-arrow-core" plugins --explain "$sample")
grep -q -F 'tiff/tiff (not loaded): would handle it, but ome-arrow-tiff is not installed: pip install "ome-arrow-core[tiff]"' \
  <<<"$explained" || { echo "error: 'plugins --explain' does not name the missing TIFF backend's install command" >&2; exit 1; }

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

# [all] resolves from the wheelhouse (CuPy included: metadata only), and installs minus CuPy on a machine
# without a GPU: every other backend is available, CuPy and the CUDA exporters are listed as unavailable.
all_but_cupy=$("$PY" -c 'import tomllib; extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; inner = extras["all"][0].split("[")[1].rstrip("]").split(","); print(",".join(e for e in inner if e != "cupy"))')
env=$(fresh all "ome-arrow-core[$all_but_cupy]" "torch==2.13.0")
# The dry run downloads CuPy's wheel (~100 MB) for its metadata: a network hiccup is retried, and the last
# attempt's error is shown.
resolved=0
for attempt in 1 2 3; do
  if "$env/bin/python" -m pip install -q --dry-run --disable-pip-version-check --find-links dist \
    "ome-arrow-core[all]" "torch==2.13.0" >"$root/all-dry-run.log" 2>&1; then
    resolved=1 && break
  fi
  echo "note: resolving ome-arrow-core[all] failed (attempt $attempt of 3)" >&2
  sleep $((attempt * 5))
done
[ "$resolved" = 1 ] || { tail -n 20 "$root/all-dry-run.log" >&2; echo "error: ome-arrow-core[all] does not resolve from dist/" >&2; exit 1; }
listing=$("$env/bin/ome-arrow-core" plugins)
for extra in ${all_but_cupy//,/ }; do
  [ "$extra" = cli ] && continue
  ! grep -q "unavailable: pip install \"ome-arrow-core\[$extra\]\"" <<<"$listing" \
    || { echo "error: [$all_but_cupy] installed, but 'plugins' says $extra is missing" >&2; exit 1; }
done
grep -q "unavailable: pip install \"ome-arrow-core\[cupy\]\"" <<<"$listing" \
  || { echo "error: 'plugins' does not list CuPy as missing" >&2; exit 1; }
gpus=$("$env/bin/python" -c 'from ome_arrow_core.cuda_probe import cuda_devices; print(cuda_devices()[0])')
if [ "$gpus" = 0 ]; then
  grep -E "torch-cuda .*unavailable: no CUDA device" <<<"$listing" >/dev/null \
    || { echo "error: without a GPU, 'plugins' lists torch-cuda as available" >&2; exit 1; }
fi
"$env/bin/ome-arrow-core" convert -q "$sample" -o "$root/all-out.vortex"
"$env/bin/python" - "$root/all-out.vortex" <<'PY'
import sys
import numpy as np
from ome_arrow_core import OMEArrow
from ome_arrow_dask import to_dask
import ome_arrow_ray  # noqa: F401 (importable; Ray itself starts only when a pipeline runs)
img = OMEArrow.scan(sys.argv[1])
view = img.tensor_view(t=0, z=1, c=0, layout="YX")
ref = view.to_numpy()
import npe2
npe2.PluginManager.instance().discover()
[(layer, _, _)] = npe2.read([sys.argv[1]], stack=False, plugin_name="ome-arrow-napari")  # axes Z, C, Y, X
assert layer.axes == "ZCYX" and np.array_equal(np.asarray(layer[1, 0]), ref)
assert np.array_equal(view.to_torch().numpy(), ref) and np.array_equal(np.asarray(view.to_jax()), ref)
from ome_arrow_core.typed_chunk.box_native import kernels
assert kernels() is not None, "[all] (its [fast]) installed without the C kernel ome-arrow-kernels"
assert float(to_dask(img, t=0, c=0, layout="ZYX").sum().compute()) == float(img.tensor_view(t=0, c=0, layout="ZYX").to_numpy().sum())
print("[all] minus CuPy: ok")
PY
