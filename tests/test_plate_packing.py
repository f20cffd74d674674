"""Small images share chunks row groups: the packing's limits (images, bytes, images row groups), mixed small
and big images, appends, compaction, the reference reader, damage and kills."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import writes_support as ws
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset
from ome_arrow_core.errors import OMEArrowError
from ome_arrow_core.typed_chunk import packing
from ome_arrow_core.typed_chunk.aligned_index import ALIGNED, INDEX_GROUPS_KEY


def _small(i: int, shape: tuple[int, int] = (8, 8), dtype: str = "uint16") -> np.ndarray:
    """Image ``i``: a YX plane, different for every i."""
    size = int(np.prod(shape))
    return ((np.arange(size) + 7 * i) % 4096).astype(dtype).reshape(shape)


def _big(i: int) -> np.ndarray:
    """A CYX image of several chunks (with ``chunk_shape=(16, 16)``): 2 x 24 x 40, 12 chunks."""
    return ((np.arange(2 * 24 * 40) * 3 + i) % 65535).astype(np.uint16).reshape(2, 24, 40)


def _write(images: list[np.ndarray], out: Path, mode: str = "create", **opts: Any) -> Path:
    """Write YX or CYX ``images`` (CYX padded from YX), big ones in 16x16 chunks."""
    cyx = [a if a.ndim == 3 else a[None] for a in images]
    return Path(write_dataset(cyx, out, mode=mode, dim_order="CYX", progress=False, **opts))


def _groups(file: Path) -> list[int]:
    md = pq.read_metadata(file)
    return [md.row_group(g).num_rows for g in range(md.num_row_groups)]


def _check_reads(out: Path, images: list[np.ndarray]) -> None:
    ds = OMEArrowDataset.scan(out)
    assert len(ds) == len(images)
    for i, a in enumerate(images):
        got = ds[i].to_numpy(layout="CYX")
        np.testing.assert_array_equal(got, a if a.ndim == 3 else a[None])
    for shape in {a.shape for a in images if a.ndim == 2}:  # a batch read of the small images of each shape
        picks = [i for i, a in enumerate(images) if a.shape == shape][::-1]
        got = ds.read(picks, layout="TZCYX")
        np.testing.assert_array_equal(got[:, 0, 0, 0], np.stack([images[i] for i in picks]))


def _check_layout(out: Path, per_group: int) -> None:
    """Index rows name the row group and row that hold their chunk, and no chunk row group holds images of two
    images row groups (of one images table)."""
    for index in sorted(out.glob("index*.parquet")):
        rows = pq.read_table(index).to_pylist()
        order: dict[str, int] = {}
        for r in rows:
            order.setdefault(r["image_id"], len(order))
        by_group: dict[tuple[str, int], set[int]] = {}
        for r in rows:
            chunks = pq.ParquetFile(out / r["fragment_path"]).read_row_group(r["row_group_id"], columns=["chunk_id"])
            assert chunks.column("chunk_id")[r["row_index_in_group"]].as_py() == r["chunk_id"]
            by_group.setdefault((r["fragment_path"], r["row_group_id"]), set()).add(order[r["image_id"]] // per_group)
        assert all(len(v) == 1 for v in by_group.values()), by_group


def test_small_images_share_row_groups_up_to_the_image_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packing, "GROUP_IMAGES", 3)
    images = [_small(i) for i in range(7)]
    out = _write(images, tmp_path / "p.ome.parquet")
    assert _groups(out / "chunks.parquet") == [3, 3, 1]
    _check_layout(out, 1024)
    _check_reads(out, images)


@pytest.mark.parametrize(("limit", "want"), [(256, [2, 2, 1]), (255, [1, 1, 1, 1, 1]), (384, [3, 2])])
def test_small_images_share_row_groups_up_to_the_byte_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, want: list[int]
) -> None:
    """128-byte images: a group takes an image while its bytes stay at most GROUP_BYTES."""
    monkeypatch.setattr(packing, "GROUP_BYTES", limit)
    images = [_small(i) for i in range(5)]
    out = _write(images, tmp_path / "p.ome.parquet")
    assert _groups(out / "chunks.parquet") == want
    _check_reads(out, images)


@pytest.mark.parametrize(("limit", "want"), [(128, [3]), (127, [1, 1, 1])])
def test_only_images_up_to_small_image_bytes_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, want: list[int]
) -> None:
    monkeypatch.setattr(packing, "SMALL_IMAGE_BYTES", limit)
    images = [_small(i) for i in range(3)]
    out = _write(images, tmp_path / "p.ome.parquet")
    assert _groups(out / "chunks.parquet") == want
    _check_reads(out, images)


def test_a_shared_row_group_ends_with_its_images_row_group(tmp_path: Path) -> None:
    images = [_small(i) for i in range(12)]
    out = _write(images, tmp_path / "p.ome.parquet", images_per_group=5)
    assert _groups(out / "chunks.parquet") == [5, 5, 2]
    assert _groups(out / "images.parquet") == [5, 5, 2]
    assert (pq.read_metadata(out / "index.parquet").metadata or {}).get(INDEX_GROUPS_KEY) == ALIGNED
    _check_layout(out, 5)
    _check_reads(out, images)


def test_mixed_small_and_big_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big image (12 chunks) keeps a row group per chunk; the small images after it start a new group; an image
    of several small chunks is not packed (a crop of it reads only its chunks)."""
    monkeypatch.setattr(packing, "BAND_BYTES", 2000)  # the big image goes a band of planes at a time
    images = [_small(0), _small(1), _big(2), _small(3), _small(4), _small(5), _big(6), _small(7)]
    out = _write(images, tmp_path / "p.ome.parquet", chunk_shape=(16, 16))
    assert _groups(out / "chunks.parquet") == [2, *[1] * 12, 3, *[1] * 12, 1]
    _check_layout(out, 1024)
    _check_reads(out, images)
    ds = OMEArrowDataset.scan(out)
    crop = ds[2].tensor_view(c=1, roi=(3, 5, 20, 11), layout="CYX").to_numpy()
    np.testing.assert_array_equal(crop, images[2][1:2, 5:16, 3:23])


def test_big_images_alone_keep_page_ranges(tmp_path: Path) -> None:
    """A dataset without small images is written as before: one chunk per row group, read by page ranges."""
    images = [_big(0), _big(1)]
    out = _write(images, tmp_path / "p.ome.parquet", chunk_shape=(16, 16))
    assert _groups(out / "chunks.parquet") == [1] * 24
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    assert "chunks.parquet" in manifest["ome_arrow_core"]["page_ranges"]
    _check_reads(out, images)


def test_an_append_starts_its_own_groups_after_a_partial_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packing, "GROUP_IMAGES", 4)
    images = [_small(i) for i in range(11)]
    out = _write(images[:5], tmp_path / "p.ome.parquet", images_per_group=3)
    assert _groups(out / "chunks.parquet") == [3, 2]  # groups end with the images row groups of 3
    _write(images[5:], out, mode="append", images_per_group=3)
    assert _groups(out / "chunks.parquet") == [3, 2]  # the partial group is left as it was
    assert _groups(out / "chunks-00001.parquet") == [3, 3]  # the append's images start its own groups
    _check_layout(out, 3)
    _check_reads(out, images)
    assert compact_dataset(out) == ["chunks.parquet", "chunks-00001.parquet"]
    # merged images row groups follow the parts' groups ([3, 2] + [3, 3]; 2 + 3 > 3 so none join): still aligned
    assert (pq.read_metadata(out / "index.parquet").metadata or {}).get(INDEX_GROUPS_KEY) == ALIGNED
    merged = pq.read_metadata(out / "images.parquet")
    assert [merged.row_group(g).num_rows for g in range(merged.num_row_groups)] == [3, 2, 3, 3]
    _check_reads(out, images)


def test_the_reference_reads_a_packed_plate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ome_arrow.dataset import OMEArrowDataset as RefDataset

    monkeypatch.setattr(packing, "GROUP_IMAGES", 4)
    images = [_small(i, (5, 7)) for i in range(9)]
    out = _write(images, tmp_path / "p.ome.parquet")
    assert _groups(out / "chunks.parquet") == [4, 4, 1]
    ref = RefDataset(out)
    for i, a in enumerate(images):
        np.testing.assert_array_equal(np.asarray(ref.read_image(f"image-{i:05d}")).reshape(a.shape), a)


_SHAPES = st.sampled_from([(1, 1), (3, 5), (8, 8), (16, 20), (24, 40)])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.tuples(st.booleans(), _SHAPES), min_size=1, max_size=14),
    group_images=st.integers(1, 5),
    group_bytes=st.integers(1, 4000),
    per_group=st.integers(1, 6),
    appended=st.integers(0, 4),
)
def test_packed_plates_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    kinds: list[tuple[bool, tuple[int, int]]],
    group_images: int,
    group_bytes: int,
    per_group: int,
    appended: int,
) -> None:
    images = [_big(i) if big else _small(i, shape) for i, (big, shape) in enumerate(kinds)]
    out = tmp_path_factory.mktemp("prop") / "p.ome.parquet"
    old = (packing.GROUP_IMAGES, packing.GROUP_BYTES)
    packing.GROUP_IMAGES, packing.GROUP_BYTES = group_images, group_bytes
    try:
        cut = max(0, len(images) - appended) or len(images)
        _write(images[:cut], out, chunk_shape=(16, 16), images_per_group=per_group)
        if cut < len(images):
            _write(images[cut:], out, mode="append", chunk_shape=(16, 16), images_per_group=per_group)
    finally:
        packing.GROUP_IMAGES, packing.GROUP_BYTES = old
    _check_limits(out, group_images, group_bytes)
    _check_layout(out, per_group)
    _check_reads(out, images)


def _check_limits(out: Path, group_images: int, group_bytes: int) -> None:
    """Every row group of several rows holds whole one-chunk images, at most ``group_images`` of them and
    ``group_bytes`` pixel bytes."""
    for file in out.glob("chunks*.parquet"):
        pf = pq.ParquetFile(file)
        for g in range(pf.metadata.num_row_groups):
            rows = pf.read_row_group(g, columns=["image_id", "pixel_bytes"]).to_pylist()
            if len(rows) > 1:
                assert len({r["image_id"] for r in rows}) == len(rows) <= group_images
                assert sum(len(r["pixel_bytes"]) for r in rows) <= group_bytes


def _packed_group_bytes(out: Path) -> tuple[int, int]:
    """(offset, size) of the pixel_bytes column chunk of row group 0 of chunks.parquet."""
    md = pq.read_metadata(out / "chunks.parquet")
    col = md.row_group(0).column(md.schema.to_arrow_schema().get_field_index("pixel_bytes"))
    return int(col.data_page_offset), int(col.total_compressed_size)


def _outcomes(out: Path, images: list[np.ndarray]) -> list[str]:
    """For each image: "ok" (its pixels) or "raised" (an OMEArrowError); a wrong pixel fails the test."""
    ds = OMEArrowDataset.scan(out)
    got = []
    for i, a in enumerate(images):
        try:
            arr = ds[i].to_numpy(layout="CYX")
        except OMEArrowError:
            got.append("raised")
            continue
        np.testing.assert_array_equal(arr, a[None])
        got.append("ok")
    return got


@pytest.mark.parametrize("image", [0, 2, 3])
def test_a_flipped_pixel_in_a_packed_row_group_is_refused_for_its_image(tmp_path: Path, image: int) -> None:
    """One flipped byte in one image's pixels: that image raises, the others read right or raise, none is wrong."""
    images = [_small(i) for i in range(4)]
    out = _write(images, tmp_path / "p.ome.parquet", compression=None)
    data = bytearray((out / "chunks.parquet").read_bytes())
    blob = images[image].astype("<u2").tobytes()
    at = data.find(blob)
    assert at > 0 and data.find(blob, at + 1) < 0
    data[at + 37] ^= 0x10
    (out / "chunks.parquet").write_bytes(bytes(data))
    assert _outcomes(out, images)[image] == "raised"


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_truncated_packed_chunks_file_is_refused(tmp_path: Path, keep: float) -> None:
    images = [_small(i) for i in range(6)]
    out = _write(images, tmp_path / "p.ome.parquet")
    file = out / "chunks.parquet"
    file.write_bytes(file.read_bytes()[: int(file.stat().st_size * keep)])
    try:
        got = _outcomes(out, images)
    except OMEArrowError:  # refused when opened
        return
    assert got == ["raised"] * len(images)  # its footer is gone: no image reads


def test_a_packed_group_whose_rows_are_swapped_is_refused(tmp_path: Path) -> None:
    """Two images of one packed group trade places in the file (their lengths agree): the checksums refuse both."""
    images = [_small(i) for i in range(3)]
    out = _write(images, tmp_path / "p.ome.parquet", compression=None)
    data = bytearray((out / "chunks.parquet").read_bytes())
    a, b = (images[k].astype("<u2").tobytes() for k in (0, 2))
    i, j = data.find(a), data.find(b)
    data[i : i + len(a)], data[j : j + len(b)] = b, a
    (out / "chunks.parquet").write_bytes(bytes(data))
    got = _outcomes(out, images)
    assert got[0] == "raised" and got[2] == "raised"


def _read_all(target: Path) -> list[np.ndarray]:
    ds = OMEArrowDataset.scan(target)
    return [ds[i].to_numpy(layout="CYX")[0] for i in range(len(ds))]


@pytest.mark.parametrize("mode", ["overwrite", "append"])
def test_a_packed_write_killed_at_every_step_leaves_the_old_dataset_or_the_new(tmp_path: Path, mode: str) -> None:
    """A packed plate's writer (tests/writes_support.py's child) killed with SIGKILL just before each rename and
    before the first cleanup of each kind on either side of the commit (the kill points of writes_support's
    kill_points: the cleanups repeat once per file; tests/test_write_faults.py interrupts the same writer steps,
    unpacked, at every one)."""
    old = ws.plate(1, 5) if mode != "create" else []
    new = ws.plate(2, 7)
    want_new = old + new if mode == "append" else new

    def setup(parent: Path) -> Path:
        target = parent / "p.ome.parquet"
        parent.mkdir()
        if old:
            ws.write_packed(target, old)
        return target

    count = ws.run_child(f"packed-{mode}", setup(tmp_path / "count"), 0, "exchange")
    assert count.returncode == 0, count.stderr
    steps = ws.steps_of(count)
    assert len(steps) == int(count.stdout.split()[-1]) >= 2
    for k in ws.kill_points(steps):
        target = setup(tmp_path / f"k{k}")
        proc = ws.run_child(f"packed-{mode}", target, k, "exchange")
        assert proc.returncode == -9, (k, proc.returncode, proc.stderr)
        if not old and not os.path.exists(target):
            continue  # a create killed before its rename: nothing there, as before
        got = _read_all(target)
        assert len(got) in (len(old), len(want_new)), (k, len(got))
        want = old if len(got) == len(old) else want_new
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), k
        # the next write succeeds on what the kill left
        _write(ws.plate(3, 2), target, mode="append")
        assert len(_read_all(target)) == len(got) + 2, k
