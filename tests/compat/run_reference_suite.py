"""Run the reference package's own test suite (ome-arrow 0.1.0 sdist) against a module of ours.

The sdist is downloaded once with pip (cached), its tests are copied with their imports of
``ome_arrow`` rewritten to the target module, and pytest runs them from a scratch directory
whose ``tests/data`` is the sdist's data (the tests open files by relative path).

    python tests/compat/run_reference_suite.py                  # target: ome_arrow_core.compat
    python tests/compat/run_reference_suite.py --target ome_arrow_core   # the "before" figure
    python tests/compat/run_reference_suite.py --target ome_arrow        # the reference itself

Tests that assert the reference's defects are deselected (``EXCLUDED``); docs/migration.md
lists each with its reason. ``--no-exclude`` runs them too. Extra arguments go to pytest.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REFERENCE = "ome-arrow==0.1.0"
SDIST = "ome_arrow-0.1.0.tar.gz"
ROOT = "ome_arrow-0.1.0"

#: Reference tests we do not run against the compatibility module, with the reason (also in
#: docs/migration.md, which a test checks). Node ids are relative to the sdist's root.
_PRIVATE = "monkeypatches or reads a private internal of the reference"
EXCLUDED: dict[str, str] = {
    "tests/test_ingest.py::test_file_ingest_forwards_byte_chunk_options": "monkeypatches the reference's module-level bioio BioImage; compat reads TIFF/OME-Zarr with "
    "ome-arrow-core's readers, not bioio",
    "tests/test_ingest.py::test_file_ingest_keeps_list_chunks_by_default": "monkeypatches the reference's module-level bioio BioImage (as above)",
    "tests/test_tensor.py::test_tensor_view_chunk_policy_modes": _PRIVATE + " (TensorView._data)",
    "tests/test_tensor.py::test_arrow_mode_zero_copy_parquet": _PRIVATE + " (OMEArrow._struct_array)",
    "tests/test_tensor.py::test_arrow_mode_zero_copy_parquet_jax": _PRIVATE + " (OMEArrow._struct_array)",
    "tests/test_tensor.py::test_scan_tensor_view_to_numpy_avoids_python_record_materialization": _PRIVATE
    + " (TensorView._data_py_dict)",
    "tests/test_tensor.py::test_scan_chunked_parquet_tensor_view_avoids_python_record_materialization": _PRIVATE
    + " (TensorView._data_py_dict)",
    "tests/test_tensor.py::test_dlpack_arrow_mode_single_plane": "asserts the reference's warning that it converts a StructScalar through as_py() and its flat 1-D "
    "mode='arrow' export; compat exports the view in its shape and converts nothing through Python",
    "tests/test_tensor.py::test_dlpack_roundtrip_torch": "asserts that a mode='numpy' DLPack export aliases the view's memory (equal data pointers); "
    "ome-arrow-core's mode='numpy' hands torch a writable copy, so in-place edits in a transform "
    "cannot change the image for later views (pixel values and dtype are the same)",
    "tests/test_scaling.py::test_ome_tiff_scale_from_metadata": "asserts bioio's reading of a plain TIFF's resolution tags as a calibration (352.78 per unit); "
    "ome-arrow-core does not report print resolution as a physical pixel size",
    "tests/test_dataset.py::test_write_dataset_replaces_existing_file_path": "asserts the reference deletes whatever file is at the output path; ome-arrow-core replaces only "
    "an OME-Arrow dataset and refuses anything else (UnsafeOverwriteError)",
    "tests/test_dataset.py::test_write_dataset_removes_stale_index_when_index_disabled": "asserts index.parquet can be left out (build_physical_index=False); ome-arrow-core always writes "
    "the index, which its readers and verify use, and refuses the option",
}


def cache_dir() -> Path:
    """Where the sdist is kept: $OME_ARROW_REFERENCE_CACHE or ~/.cache/ome-arrow-core/reference."""
    env = os.environ.get("OME_ARROW_REFERENCE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ome-arrow-core" / "reference"


def reference_root() -> Path:
    """The unpacked sdist (downloaded with pip and unpacked on first use)."""
    cache = cache_dir()
    root = cache / ROOT
    if (root / "tests").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / SDIST).is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", REFERENCE, "-d", str(cache)],
            check=True,
        )
    staging = Path(tempfile.mkdtemp(dir=cache))
    with tarfile.open(cache / SDIST) as tar:
        tar.extractall(staging, filter="data")
    os.replace(staging / ROOT, root)
    shutil.rmtree(staging, ignore_errors=True)
    return root


_IMPORT = re.compile(r"^(\s*(?:from|import)\s+)ome_arrow(?=[.\s]|$)", re.MULTILINE)


def rewrite(source: str, target: str) -> str:
    """``source`` with every ``import ome_arrow...`` / ``from ome_arrow... import`` aimed at ``target``."""
    return _IMPORT.sub(lambda m: m.group(1) + target, source)


def prepare(work: Path, target: str) -> Path:
    """A scratch copy of the reference tests in ``work`` importing ``target``; returns its tests dir."""
    root = reference_root()
    tests = work / "tests"
    tests.mkdir(parents=True)
    for src in (root / "tests").glob("*.py"):
        (tests / src.name).write_text(rewrite(src.read_text(encoding="utf-8"), target), encoding="utf-8")
    (tests / "data").symlink_to(root / "tests" / "data", target_is_directory=True)
    return tests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="ome_arrow_core.compat", help="module that replaces ome_arrow")
    parser.add_argument("--no-exclude", action="store_true", help="also run the excluded tests")
    args, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="ome-arrow-reference-") as tmp:
        work = Path(tmp)
        prepare(work, args.target)
        (work / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # keeps our pyproject's options out
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--continue-on-collection-errors",
            "tests",
        ]
        if not args.no_exclude:
            for node in EXCLUDED:
                cmd += ["--deselect", node]
        return subprocess.run(cmd + extra, cwd=work, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
