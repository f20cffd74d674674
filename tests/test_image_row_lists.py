"""An images row read as a dict is the same whether its row group was converted to Python lists (after serving
one in ``_CONVERT_AFTER`` of its rows: a scan) or not (random access): for every column type a plate holds (ints,
floats and strings with and without nulls, bools, dictionary-encoded strings), and converting loads no pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import write_dataset
from ome_arrow_core.typed_chunk import image_groups
from ome_arrow_core.typed_chunk.opening import open_dataset


def _plate(root: Path, n: int) -> Path:
    meta = [
        {
            "well": f"W{i % 4}",
            "site": i,
            "n": i if i % 5 else None,
            "x": i / 2,
            "dose": i / 7 if i % 3 else None,
            "ok": bool(i % 2),
            "tag": "é" * (i % 3),
            "maybe": None if i % 4 else "w",
        }
        for i in range(n)
    ]
    arrs = [np.full((2, 4, 4), i, dtype=np.uint16) for i in range(n)]
    return write_dataset(arrs, root, dim_order="CYX", metadata=meta, images_per_group=16, progress=False)


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _plate(tmp_path_factory.mktemp("rows") / "p", 40)


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(40)))
def test_rows_are_the_same_converted_or_not(order: list[int], plate: Path) -> None:
    path = plate
    want = pq.read_table(path / "images.parquet").to_pylist()
    images = open_dataset(path).images
    got = {pos: images.row(pos) for pos in order}
    assert images._lists  # some row groups served enough rows to be converted
    assert [got[pos] for pos in range(40)] == want


def test_random_access_converts_no_group(tmp_path: Path) -> None:
    path = _plate(tmp_path / "p", 48)
    images = open_dataset(path).images
    for pos in range(0, 48, 16):  # one row of each group: less than one in _CONVERT_AFTER
        images.row(pos)
    assert not images._lists
    assert image_groups._CONVERT_AFTER > 1


def test_converting_loads_no_pandas(plate: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ome_arrow_core.typed_chunk.opening import open_dataset\n"
        f"images = open_dataset(Path({str(plate)!r})).images\n"
        "rows = [images.row(i) for i in range(40)]\n"
        "assert images._lists, 'nothing converted'\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
