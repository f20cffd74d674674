"""What each operation on a plate with row-group digests hashes, parses and reads: flat in the number of images;
a scan counts images from the manifest without parsing a footer (damage and lies: test_table_groups.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from group_plates import (
    copy_plate,
    count_group_reads,
    edit_manifest,
    image,
    manifest_of,
    read_cyx,
    recorded_groups,
    write_group_plate,
)
from parquet_spies import PARQUET_FILES, PARQUET_MODULES, spy_on
from table_records import edit_groups

from ome_arrow_core import OMEArrowDataset
from ome_arrow_core.typed_chunk import group_sums
from ome_arrow_core.typed_chunk.opening import clear_cache


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_group_plate(tmp_path_factory.mktemp("groups") / "plate")


@pytest.fixture
def plate(base: Path, tmp_path: Path) -> Path:
    return copy_plate(base, tmp_path)


@pytest.fixture
def group_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, int]]:
    """(file name, row group) of every ParquetFile.read_row_group call (the real method still runs)."""
    return count_group_reads(monkeypatch)


def _costs(root: Path, monkeypatch: pytest.MonkeyPatch, reads: Counter[tuple[str, int]]) -> dict[str, Any]:
    """Segments hashed and row groups read by each operation on a fresh open of ``root``."""
    hashed: list[tuple[int, int]] = []
    real = group_sums._digest

    def counting(fd: int, start: int, stop: int) -> str:
        hashed.append((start, stop))
        return real(fd, start, stop)

    monkeypatch.setattr(group_sums, "_digest", counting)
    monkeypatch.setattr(group_sums, "_passed", set())  # forget what the write and earlier tests checked
    clear_cache()
    out: dict[str, Any] = {}

    def step(what: str, run: Any) -> None:
        hashed.clear()
        reads.clear()
        run()
        out[what] = (len(hashed), sorted(reads.values()), len(reads))

    holder: dict[str, OMEArrowDataset] = {}
    n_images = int(manifest_of(root)["image_count"])
    step("scan", lambda: holder.update(ds=OMEArrowDataset.scan(root)))
    ds = holder["ds"]
    step("len", lambda: len(ds))
    step("first", lambda: read_cyx(ds, 0))
    step("get", lambda: read_cyx(ds, n_images - 3))
    step("read4", lambda: ds.read([n_images - 1, n_images - 2, 1, 2], layout="CYX"))
    step("shard", lambda: read_cyx(ds.select(range(1, len(ds), 8)), 3))
    return out


def test_what_each_operation_hashes_and_reads_is_flat_in_the_number_of_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_reads: Counter[tuple[str, int]]
) -> None:
    small = _costs(write_group_plate(tmp_path / "s", n=40, per_group=10), monkeypatch, group_reads)
    large = _costs(write_group_plate(tmp_path / "l", n=400, per_group=10), monkeypatch, group_reads)
    assert small == large
    assert small["scan"] == (0, [], 0)  # no footer hashed (the manifest counts), no row group read
    assert small["first"][0] == 4  # the two footers, then one images and one index row group hashed
    assert small["len"] == (0, [], 0)


def test_a_scan_counts_images_from_the_manifest_without_parsing_a_footer(
    plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        recorded_groups(plate, "images.parquet")["rows"] == 23 and recorded_groups(plate, "index.parquet")["rows"] == 46
    )
    parsed: list[str] = []

    def init(real_init: Any) -> Any:
        def __init__(pf: Any, source: Any, *a: Any, **k: Any) -> None:
            parsed.append(Path(str(source)).name)
            real_init(pf, source, *a, **k)

        return __init__

    def md(real_md: Any) -> Any:
        def read_metadata(source: Any, *a: Any, **k: Any) -> pq.FileMetaData:
            parsed.append(Path(str(source)).name)
            return real_md(source, *a, **k)

        return read_metadata

    spy_on(monkeypatch, PARQUET_FILES, "__init__", init)
    spy_on(monkeypatch, PARQUET_MODULES, "read_metadata", md)
    monkeypatch.setattr(group_sums, "_passed", set())
    clear_cache()
    ds = OMEArrowDataset.scan(plate)
    assert len(ds) == 23 and parsed == []  # footers hashed, none parsed
    np.testing.assert_array_equal(read_cyx(ds, 21), image(21))
    assert "images.parquet" in parsed  # the first image parses the footers it needs


@pytest.mark.parametrize("rows", [10, 99])
def test_recorded_rows_that_disagree_with_the_manifest_leave_the_count_to_the_footers(plate: Path, rows: int) -> None:
    edit_manifest(plate, lambda ours: edit_groups(ours, lambda e: e["images.parquet"].update({"rows": rows})))
    assert len(OMEArrowDataset.scan(plate)) == 23  # image_count says 23: the footers count
