"""Images row groups read for random access: past the row groups a table serves through one-group footers
(:data:`~ome_arrow_core.typed_chunk.group_footers.ALONE`) they are read through the whole footer, without
pre-buffering (no IO thread started), per-image strings (``image_id``, ``name``) plain, repeated ones
dictionary-encoded; each row is the table's row whichever way its group was read, and a damaged group is refused
either way."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk import group_footers, image_groups
from ome_arrow_core.typed_chunk.opening import open_dataset


def _plate(root: Path, n: int, per_group: int, names: list[str] | None = None) -> Path:
    meta = [{"well": f"W{i % 3}", "site": i, "dose": i / 7 if i % 3 else None} for i in range(n)]
    arrs = [np.full((2, 4, 4), i, dtype=np.uint16) for i in range(n)]
    if names is None:
        return write_dataset(arrs, root, dim_order="CYX", metadata=meta, images_per_group=per_group, progress=False)
    named = [OMEArrow(a, "CYX", name=nm) for a, nm in zip(arrs, names)]
    return write_dataset(named, root, metadata=meta, images_per_group=per_group, progress=False)


@pytest.mark.parametrize("alone", [0, 64])  # every group through the whole footer / through one-group footers
def test_group_rows_are_the_table_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: int) -> None:
    monkeypatch.setattr(group_footers, "ALONE", alone)
    path = _plate(tmp_path / "p", 30, 4, names=[f"img {i % 7}" for i in range(30)])  # names repeat
    want = pq.read_table(path / "images.parquet").to_pylist()
    images = open_dataset(path).images
    got = [images.row(pos) for pos in reversed(range(30))][::-1]
    assert got == want
    group = images.group(0, 1)
    assert not pa.types.is_dictionary(group.schema.field("image_id").type)
    assert not pa.types.is_dictionary(group.schema.field("name").type)  # read plain, though it repeats here
    assert pa.types.is_dictionary(group.schema.field("well").type)


def test_row_groups_over_plain_rows_keep_names_dictionary_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table of row groups larger than PLAIN_ROWS (a foreign table may be one huge group of images named alike)
    reads names dictionary-encoded; the rows are the table's still."""
    monkeypatch.setattr(image_groups, "PLAIN_ROWS", 3)
    path = _plate(tmp_path / "p", 10, 4, names=["same"] * 10)
    images = open_dataset(path).images
    assert pa.types.is_dictionary(images.group(0, 0).schema.field("name").type)
    assert not pa.types.is_dictionary(images.group(0, 0).schema.field("image_id").type)
    assert [images.row(pos) for pos in range(10)] == pq.read_table(path / "images.parquet").to_pylist()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 40),
    per_group=st.integers(1, 9),
    picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
    alone=st.sampled_from([0, 2, 16]),
)
def test_random_reads_give_the_old_rows_and_metadata(
    tmp_path_factory: pytest.TempPathFactory, n: int, per_group: int, picks: list[int], alone: int
) -> None:
    """Any plate, any order of reads, any mix of one-group and whole footers: each row is the table's, each image's
    metadata the one made from it, and its pixels its own."""
    old = group_footers.ALONE
    group_footers.ALONE = alone
    try:
        path = _plate(tmp_path_factory.mktemp("rand") / "p", n, per_group)
        want = pq.read_table(path / "images.parquet").to_pylist()
        ds = OMEArrowDataset.scan(path)
        images = open_dataset(path).images
        for pick in picks:
            pos = pick % n
            assert images.row(pos) == want[pos]
            img = ds[pos]
            assert img.meta.id == want[pos]["image_id"] and img.meta.name == want[pos]["name"]
            assert np.array_equal(img.to_numpy(), np.full((1, 2, 1, 4, 4), pos, np.uint16))
    finally:
        group_footers.ALONE = old


def _flip_in_group(path: Path, g: int, column: str) -> None:
    """Flip a byte in the data of ``column`` in row group ``g`` of the images table."""
    file = path / "images.parquet"
    md = pq.read_metadata(file)
    col = md.row_group(g).column(md.schema.names.index(column))
    at = col.data_page_offset + col.total_compressed_size - 3
    data = bytearray(file.read_bytes())
    data[at] ^= 0x5A
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("alone", [0, 64])
@pytest.mark.parametrize("column", ["image_id", "name", "size_y", "well"])
def test_a_flipped_byte_in_an_images_group_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: int, column: str
) -> None:
    monkeypatch.setattr(group_footers, "ALONE", alone)
    path = _plate(tmp_path / "p", 12, 4)
    _flip_in_group(path, 1, column)
    ds = OMEArrowDataset.scan(path)
    assert np.array_equal(ds[0].to_numpy(), np.full((1, 2, 1, 4, 4), 0, np.uint16))  # its group is intact
    with pytest.raises(DamagedFileError):
        ds[5].to_numpy()
    with pytest.raises(DamagedFileError):
        ds.read([9, 6])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts the process's threads in /proc")
def test_random_access_past_the_one_group_footers_starts_no_thread(tmp_path: Path) -> None:
    """Reads of more images row groups than are served through one-group footers go through the whole footer:
    without pre-buffering there too."""
    path = _plate(tmp_path / "p", 3 * (group_footers.ALONE + 4), 3)
    code = textwrap.dedent(f"""
        import json, os
        from pathlib import Path
        from ome_arrow_core import OMEArrowDataset
        from ome_arrow_core.typed_chunk.opening import open_dataset
        ds = OMEArrowDataset.scan({str(path)!r})
        before = len(os.listdir("/proc/self/task"))
        images = open_dataset(Path({str(path)!r})).images
        for pos in range(0, len(ds), 3):
            images.row(pos)
        print(json.dumps([before, len(os.listdir("/proc/self/task")), len(images._files)]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after, files = json.loads(proc.stdout.strip().splitlines()[-1])
    assert files == 1  # the whole footer served some groups
    assert after == before
