#!/usr/bin/env bash
# Build a wheel and an sdist of ome-arrow-core and of every backend into dist/, then `twine check` them.
#   bash scripts/build.sh            -> dist/*.whl dist/*.tar.gz
# Install from that wheelhouse with:  pip install --find-links dist "ome-arrow-core[tiff]"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-build/bin/python ] || "$PY" -m venv .venv-build
.venv-build/bin/python -m pip install -q --disable-pip-version-check "build>=1.2" "twine>=5" "setuptools>=77" wheel 2>/dev/null
rm -rf dist && mkdir -p dist
# Built from a copy of the tree (git's files, committed or not, minus ignored ones): the build writes nothing
# (*.egg-info) into the source tree, so it can run beside the test suite (.ci/run).
src=$(mktemp -d "${TMPDIR:-/tmp}/ome-arrow-build.XXXXXX")
trap 'rm -rf "$src"' EXIT
git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C "$src"
for dir in . backends/*/; do
  .venv-build/bin/python -m build -q --no-isolation --outdir "$PWD/dist" "$src/$dir" >/dev/null
done
.venv-build/bin/python -m twine check --strict dist/*
# One version everywhere: every distribution carries the core's version.
core=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
for f in dist/*.whl; do
  case "$(basename "$f")" in *-"$core"-*) ;; *) echo "error: $f is not version $core" >&2; exit 1 ;; esac
done
ls dist
