"""Lazy views a GPU exporter reads into its pinned host memory, or not (tests/backends/test_cupy.py and
test_torch.py): a scanned image whose CYX plane is 1.25 MiB, and which of its views land in pinned memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, Registry

#: (view arguments, read into pinned memory, copied from there as it is)
PINNED_VIEWS = pytest.mark.parametrize(
    ("kwargs", "pinned", "as_is"),
    [
        ({"t": 0, "z": 1, "layout": "CYX"}, True, True),  # a C-contiguous view of the read: copied from there
        ({"t": 1, "layout": "ZYXC"}, True, False),  # a transposed view of it: through a staging copy
        ({"t": 0, "z": 0, "layout": "CYX", "roi": (0, 0, 40, 30)}, False, False),  # under 1 MiB: Arrow's memory
    ],
    ids=["plane", "transposed", "small"],
)


def scanned(tmp_path: Path, registry: Registry) -> tuple[OMEArrow, np.ndarray]:
    """A 2x2x3x512x640 uint16 TCZYX image written with 256x256 chunks and scanned with ``registry``, and its
    pixels."""
    host = np.random.default_rng(11).integers(0, 60000, size=(2, 2, 3, 512, 640), dtype=np.uint16)
    OMEArrow(host).export("parquet", tmp_path / "i.ome.parquet", chunk_shape=(1, 256, 256))
    return OMEArrow.scan(tmp_path / "i.ome.parquet", registry=registry), host
