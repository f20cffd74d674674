"""How much memory a conversion's reads hold at once: a writer given a scanned image should read it a slab at a time,
not whole (tests/backends/test_*_write*.py). Measured in a fresh process as the peak of Arrow's default memory pool,
where every read of a scanned image places its pixels (the writers' own buffers are not counted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ome_arrow_core import OMEArrow

_SCRIPT = """
import json, sys
import pyarrow as pa
from ome_arrow_core import OMEArrow
src, fmt, out, options, setup = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
exec(setup)
img = OMEArrow.scan(src)
before = pa.default_memory_pool().max_memory()
img.export(fmt, out, **options)
print(json.dumps({"before": before, "peak": pa.default_memory_pool().max_memory()}))
"""


def scanned_source(tmp: Path, shape: tuple[int, ...] = (2, 2, 16, 256, 256)) -> tuple[Path, np.ndarray]:
    """A TCZYX uint16 image of ``shape`` written as Parquet with one-plane chunks, and its pixels."""
    arr = np.random.default_rng(5).integers(0, 4096, size=shape, dtype=np.uint16)
    path = tmp / "source.ome.parquet"
    OMEArrow(arr).export("parquet", path, chunk_shape=(1, shape[3], shape[4]))
    return path, arr


def peak_read_bytes(src: Path, fmt: str, out: Path, setup: str = "", **options: object) -> int:
    """The peak bytes of Arrow's pool while ``OMEArrow.scan(src).export(fmt, out, **options)`` runs in a fresh
    process (the pool's peak before the export is at most that), after the statements ``setup`` (a writer's
    read size made small, so a small image tells)."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(src), fmt, str(out), json.dumps(options), setup],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout.strip().splitlines()[-1])["peak"])
