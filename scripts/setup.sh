#!/usr/bin/env bash
# Create (or update) .venv with ome-arrow-core and its backends. Idempotent.
#   bash scripts/setup.sh          everything: every backend, test and docs tools, the reference package
#   bash scripts/setup.sh minimal  what the demo needs: core + TIFF + torch backends
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# A second run with nothing changed (scripts/test.sh after the demo, or after CI's own setup) is a no-op: the
# stamp records what the last complete run installed from (this script and every pyproject.toml).
key=$(cat scripts/setup.sh pyproject.toml backends/*/pyproject.toml tests/plugins/example_plugin/pyproject.toml | sha256sum | cut -c1-16)
stamp=.venv/.setup-stamp
if [ -x .venv/bin/python ] && { grep -qx "full $key" "$stamp" 2>/dev/null || { [ "${1:-}" = "minimal" ] && grep -qx "minimal $key" "$stamp"; }; }; then
  echo "setup: .venv is up to date"
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
# torch==2.13.0 is the CPU wheel on this machine; an unpinned torch would pull a multi-GB CUDA build.
if [ "${1:-}" = "minimal" ]; then
  pip_install "torch==2.13.0" -e . -e backends/tiff -e backends/torch
  echo "minimal $key" >"$stamp"
  exit 0
fi
# pyvista and vtk: view(how="pyvista") (the [pyvista] extra), its tests and the reference suite's volume views.
pip_install "torch==2.13.0" "pyvista==0.49.2" "vtk==9.7.2" -e ".[test,docs,bench,matplotlib,fast]" -e backends/tiff \
  -e backends/kernels -e backends/torch -e backends/jax -e backends/vortex -e backends/zarr \
  -e tests/plugins/example_plugin
# The editable installs below without dependencies build with the venv's setuptools (installed once here)
# instead of each in a fresh isolated build environment that downloads setuptools again.
pip_install "setuptools>=77" wheel
# The CuPy backend installs without CuPy (no GPU here): it must then list itself as unavailable.
# Engines for many images: Dask and Ray Data (local mode in the tests).
# The napari reader plugin, tested through npe2's reader API (napari itself and Qt are not installed).
pip_install --no-deps --no-build-isolation -e backends/cupy -e backends/dask -e backends/ray -e backends/napari
pip_install "npe2==0.10.0"
pip_install "dask[array,distributed]>=2024.1" "xarray>=2024.1" "ray[data]==2.60.0"
# Independent OME-Zarr implementations the zarr backend's interop tests read and write with (bioio-ome-zarr;
# ome-zarr 0.17.0: 0.18 pins pydantic<2.13 through ome-zarr-models).
# moto's S3 server for the remote-storage tests, pinned with the s3fs/aiobotocore/botocore set that
# bioio-ome-zarr's s3fs accepts (unpinned, pip backtracks through years of fsspec releases).
pip_install "bioio-ome-zarr==3.8.1" "ome-zarr==0.17.0" "s3fs==2026.9.0" "fsspec==2026.9.0" \
  "aiobotocore==3.10.0" "botocore==1.43.117" "boto3==1.43.117" "moto[server]==5.2.5"
# view(how="pyvista") needs an OpenGL that renders off screen without a display or GPU. VTK's wheels load OpenGL at
# run time (X11, then Mesa's EGL, then OSMesa) and crash the process when none works or libX11 is absent. Where an
# off-screen screenshot fails, Debian's libx11-6 and software renderer libosmesa6 are installed (the distribution's
# current build: old ones leave the mirrors); libX11 with OSMesa present skips the check.
offscreen_gl() {
  local libs
  libs=$(PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null || true)
  if grep -q 'libX11\.so\.6 ' <<<"$libs" && grep -q 'libOSMesa\.so\.8 ' <<<"$libs"; then return 0; fi
  { .venv/bin/python -c 'import pyvista as pv; p = pv.Plotter(off_screen=True, window_size=(64, 64))
p.add_mesh(pv.Sphere()); assert p.screenshot(return_img=True).any()' >/dev/null; } 2>/dev/null  # a crash is silent
}
if ! offscreen_gl && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    libosmesa6 libx11-6 >/dev/null || true
  offscreen_gl || echo "setup: VTK cannot render off screen; as root: apt-get install libosmesa6 libx11-6" >&2
fi
# The reference implementation, to check that it reads what we write (and for benchmarks/compare_reference.py).
pip_install "ome-arrow==0.1.0"
# Independent OME-TIFF readers: tests/backends/test_tiff_checksums.py checks they open what we write.
pip_install "ome-types==0.7.0" "bioio==3.6.0" "bioio-ome-tiff==1.4.0"
# The bioio bridge (every format a bioio reader plugin opens) and the bioio reader plugins its tests use.
pip_install --no-deps --no-build-isolation -e backends/bioio
pip_install "bioio-imageio==1.3.0" "bioio-tifffile==1.3.1"
echo "full $key" >"$stamp"
