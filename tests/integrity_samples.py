"""The datasets of the integrity tests (test_integrity.py, test_integrity_members.py): written by our writer, a
table edited as damage would, and the check that every read path refuses it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_digests import without_table_digests

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import DamagedFileError

MANIFEST = "_ome_arrow_dataset.json"
SHAPE = (2, 40, 48)  # CYX: 3 x 3 tiles of 16 x 16 per channel, 18 chunks per image


def sample_images(n: int = 3, seed: int = 0) -> list[np.ndarray]:
    """``n`` seeded random CYX images of ``SHAPE``."""
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 60000, SHAPE, dtype=np.uint16) for _ in range(n)]


def write_sample(root: Path, n: int = 3, seed: int = 0, **kw: Any) -> tuple[Path, list[np.ndarray]]:
    """A dataset of ``sample_images(n, seed)`` at ``root`` in 16 x 16 chunks (``kw``: write_dataset's); its path and
    pixels."""
    arrs = sample_images(n, seed)
    return write_dataset(arrs, root, chunk_shape=(16, 16), dim_order="CYX", **kw), arrs


def edit_table(file: Path, change: Callable[[dict[str, list[Any]]], None]) -> None:
    """Rewrite Parquet ``file`` after ``change`` edits its columns (a dict of Python lists) in place."""
    table = pq.read_table(file)
    cols = {n: table.column(n).to_pylist() for n in table.column_names}
    change(cols)
    pq.write_table(pa.table(cols, schema=table.schema), file)
    without_table_digests(file.parent)  # a lie the table checksums would refuse first


def refused(root: Path, *names: str) -> str:
    """Assert that reading ``root`` raises DamagedFileError naming it (and ``names``), by each read path."""
    messages = []
    for read in (
        lambda: [OMEArrowDataset.scan(root)[i].to_numpy() for i in range(3)],
        lambda: OMEArrowDataset.scan(root).read(),
    ):
        with pytest.raises(DamagedFileError) as err:
            read()
        message = str(err.value)
        assert str(root) in message
        for name in names:
            assert name in message
        messages.append(message)
    return messages[0]


def index_rows_of(cols: dict[str, list[Any]], image_id: str) -> list[int]:
    """The rows of index columns ``cols`` that belong to ``image_id``."""
    return [i for i, v in enumerate(cols["image_id"]) if v == image_id]


def appended_sample(tmp_path: Path) -> tuple[Path, list[np.ndarray], str]:
    """A dataset of 2 images with 2 appended: its path, its 4 images and its manifest's text before the append."""
    root, arrs = write_sample(tmp_path / "d", n=2)
    before = (root / MANIFEST).read_text()
    more = sample_images(2, seed=5)
    write_dataset(more, root, mode="append", chunk_shape=(16, 16), dim_order="CYX")
    assert (root / "images-00001.parquet").exists() and not list(root.glob(".append-*"))
    return root, [*arrs, *more], before
