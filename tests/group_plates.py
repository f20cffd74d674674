"""The plate of the row-group digest tests (test_table_groups.py, test_table_group_costs.py): its pixels, its
writer, its manifest's records, and a spy on the row groups pyarrow decodes."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from parquet_spies import PARQUET_FILES, spy_on
from table_records import groups_of

from ome_arrow_core import OMEArrowDataset, write_dataset

MANIFEST = "_ome_arrow_dataset.json"
#: Images per images-table row group of the plate.
PER_GROUP = 5


def image(i: int) -> np.ndarray:
    """Image ``i`` of the plate (CYX)."""
    return ((np.arange(2 * 8 * 8, dtype=np.int64) * 3 + 11 * i) % 4096).astype(np.uint16).reshape(2, 8, 8)


def write_group_plate(root: Path, n: int = 23, seed: int = 0, per_group: int = PER_GROUP) -> Path:
    """A plate of ``n`` images (``image(seed)``...) at ``root``, ``per_group`` images a row group."""
    written = write_dataset(
        (image(i + seed) for i in range(n)),
        root,
        dim_order="CYX",
        metadata=[{"well": f"W{i % 4}", "label": i} for i in range(n)],
        images_per_group=per_group,
        progress=False,
    )
    return Path(written)


def copy_plate(base: Path, tmp_path: Path) -> Path:
    """A copy of the plate at ``base``, in ``tmp_path`` (each test damages its own)."""
    out = tmp_path / "plate"
    shutil.copytree(base, out)
    return out


def manifest_of(root: Path) -> dict[str, Any]:
    """The manifest of the dataset at ``root``."""
    loaded: dict[str, Any] = json.loads((root / MANIFEST).read_text())
    return loaded


def recorded_groups(root: Path, name: str) -> dict[str, Any]:
    """What the manifest records of table ``name``'s row groups (digest, bounds, rows)."""
    return groups_of(manifest_of(root)["ome_arrow_core"])[name]


def edit_manifest(root: Path, edit: Any) -> None:
    """Rewrite the manifest at ``root`` with ``edit`` applied to its ``ome_arrow_core`` part."""
    manifest = manifest_of(root)
    edit(manifest["ome_arrow_core"])
    (root / MANIFEST).write_text(json.dumps(manifest))


def read_cyx(ds: OMEArrowDataset, i: int) -> np.ndarray:
    """Image ``i`` of ``ds`` (CYX)."""
    return ds[i].to_numpy(layout="CYX")


def count_group_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, int]]:
    """(file name, row group) of every ParquetFile.read_row_group call from now on (the real method still runs)."""
    seen: Counter[tuple[str, int]] = Counter()

    def spy(real: Any) -> Any:
        def read_row_group(pf: Any, i: int, *a: Any, **k: Any) -> pa.Table:
            seen[(Path(pf.__dict__.get("_source", "?")).name, i)] += 1
            return real(pf, i, *a, **k)

        return read_row_group

    def init(real_init: Any) -> Any:
        def __init__(pf: Any, source: Any, *a: Any, **k: Any) -> None:
            real_init(pf, source, *a, **k)
            pf.__dict__["_source"] = str(source)

        return __init__

    spy_on(monkeypatch, PARQUET_FILES, "__init__", init)
    spy_on(monkeypatch, PARQUET_FILES, "read_row_group", spy)
    return seen
