"""Batches of whole images whose chunks are whole planes, read by typed_chunk/whole_batches.py: planned with numpy, one
``os.preadv`` per run of pages, every head and checksum checked. The path is taken (probed: the general path's
placements are never made, and a batch is one scattered read); it refuses damage exactly as the general path does
(the same errors, no unchecked byte left in an output); and it gives the general path's pixels for any batch."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from damage import flip_byte, lie_in_length
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, OMEArrowError
from ome_arrow_core.typed_chunk import rows as rows_module
from ome_arrow_core.typed_chunk.table_sums import file_digest

N = 6
#: CYX images of two 64x72 planes (9 KiB pages: audited by the first read, not from their heads alone)...
SRC = np.random.default_rng(17).integers(0, 65535, (N, 2, 64, 72), dtype=np.uint16)
#: ...and of 96x96 planes (18 KiB pages: a fresh open's first batch audits them from their heads, then reads straight).
BIG = np.random.default_rng(18).integers(0, 65535, (N, 2, 96, 96), dtype=np.uint16)


def _plate(root: Path, src: np.ndarray = SRC, name: str = "plate") -> Path:
    """A plate of ``src`` (CYX images), one chunk per image plane, uncompressed, in one chunks file."""
    opts: dict[str, Any] = {"dim_order": "CYX", "progress": False, "compression": None}
    return Path(write_dataset(list(src), root / name, chunk_shape=src.shape[-2:], **opts))


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """What each batch did: read_whole's answers, the general path's read_placements calls, os.preadv calls."""
    seen: dict[str, list[Any]] = {"whole": [], "general": [], "preadv": []}
    real_whole, real_general, real_preadv = rows_module.read_whole, rows_module.read_placements, os.preadv

    def whole(*args: Any) -> bool:
        seen["whole"].append(real_whole(*args))
        return seen["whole"][-1]  # type: ignore[no-any-return]

    def general(opened: Any, placements: Any, verify: Any) -> int:
        seen["general"].append(len(placements))
        return real_general(opened, placements, verify)  # type: ignore[no-any-return]

    def preadv(fd: int, buffers: Any, offset: int) -> int:
        seen["preadv"].append(len(buffers))
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(rows_module, "read_whole", whole)
    monkeypatch.setattr(rows_module, "read_placements", general)
    monkeypatch.setattr(os, "preadv", preadv)
    yield seen


@pytest.fixture
def general_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch read by the general path (no whole plan)."""
    monkeypatch.setattr(rows_module, "whole_plan", lambda *args: None)


def test_a_batch_of_whole_planes_is_one_scattered_read(tmp_path: Path, probe: dict[str, list[Any]]) -> None:
    ds = OMEArrowDataset.scan(_plate(tmp_path))
    np.testing.assert_array_equal(ds.read(range(N)), SRC)  # first read: small pages are audited by the general path
    assert probe["whole"] == [False]
    for key in probe:
        probe[key].clear()
    np.testing.assert_array_equal(ds.read([4, 1, 1, 5, 0]), SRC[[4, 1, 1, 5, 0]])
    np.testing.assert_array_equal(ds.read(range(N)), SRC)
    assert probe["whole"] == [True, True] and probe["general"] == []
    # pages in file order (row groups 0 1 2 | 2 3 | 3 8 9 10 11: a page read again starts a run; the pages of images 2
    # and 3 between lie within GAP_BYTES, read into scratch), each run one preadv of head + value buffers; the plate one
    assert probe["preadv"] == [2 * 3, 2 * 2, 2 * 5, 2 * 2 * N]
    out = np.full(SRC.shape, 7, dtype=SRC.dtype)
    assert ds.read(range(N), out=out) is out
    np.testing.assert_array_equal(out, SRC)


def test_large_pages_are_audited_from_their_heads_then_read_straight(
    tmp_path: Path, probe: dict[str, list[Any]]
) -> None:
    ds = OMEArrowDataset.scan(_plate(tmp_path, BIG))
    np.testing.assert_array_equal(ds.read(range(N)), BIG)
    assert probe["whole"] == [True] and probe["general"] == []


def test_crops_and_strided_outputs_take_the_general_path(tmp_path: Path, probe: dict[str, list[Any]]) -> None:
    ds = OMEArrowDataset.scan(_plate(tmp_path))
    ds.read(range(N))
    for key in probe:
        probe[key].clear()
    np.testing.assert_array_equal(ds.read([1, 2], roi=(3, 5, 20, 9)), SRC[[1, 2]][..., 5:14, 3:23])
    np.testing.assert_array_equal(ds.read([3], c=1), SRC[[3]][:, 1:2])  # the other plane outside the box: left out
    out = np.zeros((2, *SRC.shape[1:-1], 2 * SRC.shape[-1]), dtype=SRC.dtype)[..., ::2]  # not C-contiguous
    np.testing.assert_array_equal(ds.read([0, 5], out=out), SRC[[0, 5]])
    assert probe["whole"] == [True] and len(probe["general"]) == 2  # c=1: whole planes; crop and strided: general


def _pages(path: Path) -> list[tuple[int, int]]:
    """(page offset, compressed size) of each chunk, in row group order."""
    t = pq.read_table(path / "index.parquet").to_pydict()
    return [(o, n) for _, o, n in sorted(zip(t["row_group_id"], t["page_offset"], t["page_compressed_size"]))]


def _lie_in_index(path: Path, column: str, row: int, delta: int) -> None:
    """Add ``delta`` to ``column`` of index row ``row`` and record the table's new digest in the manifest: a lie
    the manifest vouches for, which only the reads' own checks can refuse."""
    table = pq.read_table(path / "index.parquet")
    values = table.column(column).to_pylist()
    values[row] += delta
    k = table.schema.get_field_index(column)
    table = table.set_column(k, table.schema.field(k), pa.array(values, table.schema.field(k).type))
    pq.write_table(table, path / "index.parquet")
    manifest = json.loads((path / "_ome_arrow_dataset.json").read_text())
    manifest["ome_arrow_core"]["tables"]["index.parquet"] = [file_digest(path / "index.parquet")]
    manifest["ome_arrow_core"].pop("table_groups_packed", None)
    (path / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))


def _damage(path: Path, how: str, twin: Path) -> None:
    name = path / "chunks.parquet"
    (o, n) = _pages(path)[5]  # image 2's second plane, inside the batch's run
    if how == "value":
        flip_byte(name, o + n - 9, 0x10)
    elif how == "level":
        flip_byte(name, o + 5, 0x21)
    elif how == "length":
        lie_in_length(name, o, n - 10 - 2)
    elif how == "truncated":
        os.truncate(name, o + n // 2)
    elif how == "replaced":  # another file of the same shapes (other pixels) in its place
        os.unlink(name)
        shutil.copyfile(twin / "chunks.parquet", name)
    elif how == "rewritten":  # the same inode and size: two planes' pixels swapped (valid pages, wrong places)
        data = bytearray(name.read_bytes())
        (oa, na), (ob, _) = _pages(path)[0], _pages(path)[5]
        data[oa + 10 : oa + na], data[ob + 10 : ob + na] = data[ob + 10 : ob + na], data[oa + 10 : oa + na]
        with open(name, "r+b") as f:
            f.write(data)
    elif how in ("offset+0", "offset+2", "offset-16", "size+1", "size-2"):
        column = "page_offset" if how.startswith("offset") else "page_compressed_size"
        _lie_in_index(path, column, 5, int(how.removeprefix("offset").removeprefix("size")))
    else:
        raise ValueError(how)


#: ("offset+0": the index rewritten and vouched for, telling the truth: the control of the lies after it)
DAMAGE = [
    "value",
    "level",
    "length",
    "truncated",
    "replaced",
    "rewritten",
    "offset+0",
    "offset+2",
    "offset-16",
    "size+1",
    "size-2",
]


#: read_whole's calls during the damaged read (see test_damage_is_refused_as_the_general_path_refuses_it).
TRIED: list[int] = []


def _outcome(path: Path, how: str, twin: Path, src: np.ndarray) -> tuple[str, list[bool]]:
    """(the error class a batch read after ``how`` raised, or "pixels"; per plane (chunk) of its ``out``: zeros, the
    fill, or the file's pixels, never other bytes), for a dataset opened and read before the damage."""
    ds = OMEArrowDataset.scan(path)
    for _ in range(2):
        np.testing.assert_array_equal(ds.read(range(N)), src)
    _damage(path, how, twin)
    out = np.full(src.shape, 7, dtype=src.dtype)
    TRIED.clear()
    try:
        got = ds.read(range(N), out=out)
    except OMEArrowError as exc:
        clean = [
            bool((o == 0).all() or (o == 7).all() or (o == s).all())
            for o, s in zip(out.reshape(-1, *src.shape[-2:]), src.reshape(-1, *src.shape[-2:]))
        ]
        return type(exc).__name__, clean
    np.testing.assert_array_equal(got, src)  # else the file's pixels
    return "pixels", [True] * (src.size // np.prod(src.shape[-2:]))


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("src", [SRC, BIG], ids=["small", "large"])
def test_damage_is_refused_as_the_general_path_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, src: np.ndarray
) -> None:
    twin = _plate(tmp_path, src[::-1].copy(), "twin")
    real = rows_module.read_whole
    monkeypatch.setattr(rows_module, "read_whole", lambda *args: TRIED.append(1) or real(*args))
    fast = _outcome(_plate(tmp_path, src, "fast"), how, twin, src)
    if src is BIG and how in (
        "value",
        "level",
        "length",
        "replaced",
        "rewritten",
    ):  # large pages opened afresh: read straight
        assert TRIED
    monkeypatch.setattr(rows_module, "whole_plan", lambda *args: None)
    general = _outcome(_plate(tmp_path, src, "general"), how, twin, src)
    assert fast == general
    assert (fast[0] == "pixels") == (how == "offset+0")  # every damage and lie refused, the control read
    assert all(fast[1])


def test_the_fast_path_checks_every_chunk(tmp_path: Path, probe: dict[str, list[Any]]) -> None:
    # large pages: the file changed on disk is opened afresh, audited from the heads and read straight again
    path = _plate(tmp_path, BIG)
    ds = OMEArrowDataset.scan(path)
    ds.read(range(N))
    pages = _pages(path)
    for k in (0, 7, 2 * N - 1):  # the first, a middle and the last chunk of the batch
        o, n = pages[k]
        flip_byte(path / "chunks.parquet", o + n - 1, 0x01)
        out = np.full(BIG.shape, 7, dtype=BIG.dtype)
        probe["general"].clear()
        with pytest.raises(ChecksumError, match=f"chunk {k}\\b"):
            ds.read(range(N), out=out)
        assert probe["general"] == []  # refused by the fast path itself
        assert (out == 0).all()  # no byte that was read is left unchecked in the output
        flip_byte(path / "chunks.parquet", o + n - 1, 0x01)
        np.testing.assert_array_equal(ds.read(range(N)), BIG)
        assert probe["whole"][-1] is True


DTYPES = ["uint8", "int16", "uint16", "int32", "float32", "float64"]


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    c=st.integers(1, 3),
    z=st.integers(1, 2),
    yx=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    per_plane=st.booleans(),
)
def test_the_fast_and_general_paths_give_the_same_pixels(
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    dtype: str,
    c: int,
    z: int,
    yx: tuple[int, int],
    per_plane: bool,
) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = data.draw(st.integers(1, 5))
    src = (rng.random((n, c, z, *yx)) * 200).astype(dtype)  # CZYX
    chunk = yx if per_plane else (max(1, yx[0] // 2), yx[1])  # whole planes, or rows of a plane
    root = tmp_path_factory.mktemp("same")
    path = Path(
        write_dataset(list(src), root / "p", dim_order="CZYX", chunk_shape=chunk, compression=None, progress=False)
    )
    picked = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8))
    ds = OMEArrowDataset.scan(path)
    ds.read(range(n))  # audited: later reads may take the whole-chunk path
    fast = ds.read(picked, layout="CZYX")
    real = rows_module.whole_plan
    rows_module.whole_plan = lambda *args: None  # type: ignore[assignment]
    try:
        general = OMEArrowDataset.scan(path).read(picked, layout="CZYX")
    finally:
        rows_module.whole_plan = real
    np.testing.assert_array_equal(fast, general)
    np.testing.assert_array_equal(fast, src[picked])
    assert fast.dtype == general.dtype == np.dtype(dtype)


def test_compressed_chunks_are_left_to_the_general_path_before_any_plan(
    tmp_path: Path, probe: dict[str, list[Any]]
) -> None:
    opts: dict[str, Any] = {"dim_order": "CYX", "progress": False, "compression": "lz4"}
    ds = OMEArrowDataset.scan(write_dataset(list(SRC), tmp_path / "lz4", chunk_shape=SRC.shape[-2:], **opts))
    for _ in range(2):
        np.testing.assert_array_equal(ds.read(range(N)), SRC)
    assert probe["whole"] == [] and len(probe["general"]) == 2  # (pages to decode: no plan is made for them)


def test_a_remote_datasets_chunks_are_left_to_the_general_path_before_any_plan(
    tmp_path: Path, probe: dict[str, list[Any]], http_server: Any
) -> None:
    """A remote dataset's uncompressed chunks file (a placeholder in its mirror, read by ranged GETs) is never
    planned for a straight read (the plan would be made and then dropped)."""
    pytest.importorskip("fsspec")
    opts: dict[str, Any] = {"dim_order": "CYX", "progress": False, "compression": None, "images_per_group": 3}
    local = Path(write_dataset(list(SRC), tmp_path / "remote.ome.parquet", chunk_shape=SRC.shape[-2:], **opts))
    for _ in range(2):
        np.testing.assert_array_equal(OMEArrowDataset.scan(local).read(range(N)), SRC)
    assert probe["whole"][-1] is True  # locally: grouped pages (an aligned index), read straight once audited
    probe["whole"].clear(), probe["general"].clear()
    shutil.copytree(local, http_server.root / local.name)
    ds = OMEArrowDataset.scan(f"{http_server.url}/{local.name}")
    for _ in range(2):
        np.testing.assert_array_equal(ds.read(range(N)), SRC)
    assert probe["whole"] == [] and len(probe["general"]) == 2
