"""Compaction of several parts makes the merged images table's image records: ``ds[i]`` of a compacted plate reads
its record, not an images row group; damage is refused, ``verify`` passes, and an interrupted compaction reads right.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from damage import flip_byte

from ome_arrow_core import OMEArrowDataset, cleanup_dataset, compact_dataset, verify, write_dataset
from ome_arrow_core.errors import ChecksumError
from ome_arrow_core.typed_chunk.image_records import RECORDS_KEY, WIDTH
from ome_arrow_core.typed_chunk.image_rows import meta_from_row
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.spec import MANIFEST

SIZES = (20, 10, 7)  # the base write, then two appends
N = sum(SIZES)
WELLS = [f"{'AB'[i % 2]}0{i % 3 + 1}" for i in range(N)]
OPTS: dict[str, Any] = {"dim_order": "CYX", "images_per_group": 8, "progress": False}


def _image(i: int) -> np.ndarray:
    return ((np.arange(30) * 3 + 11 * i) % 4096).astype(np.uint16).reshape(1, 6, 5)


def _plate(root: Path) -> Path:
    start = 0
    for k, n in enumerate(SIZES):
        write_dataset(
            [_image(i) for i in range(start, start + n)],
            root,
            mode="append" if k else "create",
            metadata={"well": WELLS[start : start + n]},
            **OPTS,
        )
        start += n
    clear_cache()
    return root


def _ours(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / MANIFEST).read_text())["ome_arrow_core"])


def _reads_right(root: Path) -> None:
    ds = OMEArrowDataset.scan(root)
    assert len(ds) == N
    for i in range(N):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
    b02 = OMEArrowDataset.scan(root, filter={"well": "B02"})
    assert [b02.locate(i).row for i in range(len(b02))] == [i for i, w in enumerate(WELLS) if w == "B02"]


def test_a_compacted_plate_of_several_parts_has_records_and_ds_i_reads_them(tmp_path: Path) -> None:
    root = _plate(tmp_path / "plate")
    assert set(_ours(root)[RECORDS_KEY]) == {"images.parquet", "images-00001.parquet", "images-00002.parquet"}
    compact_dataset(root)
    clear_cache()
    ours = _ours(root)
    entry = ours[RECORDS_KEY]["images.parquet"]
    assert set(ours[RECORDS_KEY]) == {"images.parquet"} and entry["count"] == N
    assert entry["images"] == ours["tables"]["images.parquet"]  # made from the merged table as it is
    assert sorted(p.name for p in root.glob("*.records")) == ["images.records"]
    assert (root / "images.records").stat().st_size == entry["size"]
    rows = pq.read_table(root / "images.parquet").to_pylist()
    ds = OMEArrowDataset.scan(root)
    for i in np.random.default_rng(1).permutation(N).tolist():
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
        assert ds[i].meta == meta_from_row(rows[i])
        assert ds[i].meta.id == f"image-{i:05d}"
    images = open_dataset(root).images
    assert images.records is not None and images.records.readers[0] is not None
    assert images.records.readers[0]._pages  # the record pages were read...
    assert not images._decoded and not images._groups  # ...and no images row group
    np.testing.assert_array_equal(ds.read([N - 1, 0, 25]), np.stack([_image(N - 1), _image(0), _image(25)]))
    assert verify(root).ok
    report = cleanup_dataset(root)
    assert report.removed == [] and report.kept == []
    _reads_right(root)


@pytest.mark.parametrize("at", ["record", "heap"])
def test_a_flipped_byte_in_the_rebuilt_records_is_refused(tmp_path: Path, at: str) -> None:
    root = _plate(tmp_path / "plate")
    compact_dataset(root)
    entry = _ours(root)[RECORDS_KEY]["images.parquet"]
    flip_byte(root / "images.records", 5 * WIDTH + 3 if at == "record" else entry["record_pages"] * 4096 + 1)
    clear_cache()
    with pytest.raises(ChecksumError):
        OMEArrowDataset.scan(root)[5].to_numpy()
    assert not verify(root).ok


def test_a_compaction_interrupted_at_each_rename_reads_right_and_a_rerun_makes_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.replace
    steps = [0]

    def counted(*a: Any, **kw: Any) -> Any:
        steps[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(os, "replace", counted)
    compact_dataset(_plate(tmp_path / "count"))
    total = steps[0]
    assert total >= 6  # the manifest accepting both, chunks, index, images, value index, records, manifest
    for k in range(1, total + 1):
        root = _plate(tmp_path / f"k{k}")
        seen = [0]

        def interrupted(*a: Any, k: int = k, seen: list[int] = seen, **kw: Any) -> Any:
            seen[0] += 1
            if seen[0] == k:
                raise KeyboardInterrupt
            return real(*a, **kw)

        monkeypatch.setattr(os, "replace", interrupted)
        try:
            compact_dataset(root)
        except KeyboardInterrupt:
            pass
        finally:
            monkeypatch.setattr(os, "replace", real)
        clear_cache()
        _reads_right(root)
        compact_dataset(root)  # run again to finish
        clear_cache()
        ours = _ours(root)
        assert set(ours[RECORDS_KEY]) == {"images.parquet"}, k
        assert ours[RECORDS_KEY]["images.parquet"]["images"] == ours["tables"]["images.parquet"], k  # of this table
        assert sorted(p.name for p in root.glob("*.records")) == ["images.records"], k
        assert verify(root).ok, k
        _reads_right(root)
        records = open_dataset(root).images.records
        assert records is not None and records.readers[0] is not None and records.readers[0]._pages, k  # used


#: compact_dataset of the plate at argv[1], SIGKILLed as it renames its final manifest into place (every table and
#: the records already swapped in, the manifest accepting both versions of the tables still in place).
CHILD = """
import os, signal, sys
from ome_arrow_core import compact_dataset

real, seen = os.replace, []
def replace(src, dst, *a, **k):
    if os.path.basename(os.fspath(dst)) == "_ome_arrow_dataset.json":
        seen.append(dst)
        if len(seen) == 2:  # the first is the manifest accepting both versions of the tables
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
compact_dataset(sys.argv[1])
"""


def test_a_compaction_killed_before_its_manifest_reads_right_and_a_rerun_makes_fresh_records(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = _plate(tmp_path / "plate")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    clear_cache()
    ours = _ours(root)
    assert "appends" in ours and len(ours["tables"]["images.parquet"]) == 2  # killed between the swaps
    _reads_right(root)
    compact_dataset(root)  # run again to finish: images.parquet already holds every image
    clear_cache()
    ours = _ours(root)
    assert "appends" not in ours and set(ours[RECORDS_KEY]) == {"images.parquet"}
    assert ours[RECORDS_KEY]["images.parquet"]["images"] == ours["tables"]["images.parquet"]  # of this table
    assert verify(root).ok
    _reads_right(root)
    records = open_dataset(root).images.records
    assert records is not None and records.readers[0] is not None and records.readers[0]._pages  # used
    assert sorted(p.name for p in root.glob("*.records")) == ["images.records"]
    report = cleanup_dataset(root)  # the killed compaction's directory only
    assert [Path(n).name.split(".ome-arrow-tmp.")[0] for n in report.removed] == [".compact"] and report.kept == []
    assert cleanup_dataset(root).removed == []
