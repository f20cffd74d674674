"""Images row groups decoded a column chunk at a time (:mod:`ome_arrow_core.typed_chunk.group_chunks`): a chunk whose
bytes, codec, value count and string reading match one decoded before is not decoded again; every row is still the
table's, and a damaged chunk is never answered with an intact one's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_digests import without_image_records

from ome_arrow_core import OMEArrowDataset, parquet_lite, write_dataset
from ome_arrow_core.errors import DamagedFileError, SchemaError
from ome_arrow_core.typed_chunk import group_chunks, group_footers, image_groups
from ome_arrow_core.typed_chunk.image_rows import META_COLUMNS, meta_from_row
from ome_arrow_core.typed_chunk.opening import open_dataset


def _plate(root: Path, n: int, per_group: int, wells: int = 3) -> Path:
    meta = [{"well": f"W{i % wells}", "site": i} for i in range(n)]
    arrs = [np.full((1, 4, 4), i, dtype=np.uint16) for i in range(n)]
    out = write_dataset(arrs, root, dim_order="CYX", metadata=meta, images_per_group=per_group, progress=False)
    return without_image_records(Path(out))  # the images row groups' path (records: tests/test_image_records.py)


def _decoded(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``columns`` of every row-group read through parquet_lite from now on (None: all of them)."""
    calls: list[Any] = []
    real = parquet_lite.ParquetFile.read_row_group

    def counting(self: Any, i: int, columns: Any = None, use_threads: bool = True) -> Any:
        calls.append(None if columns is None else list(columns))
        return real(self, i, columns=columns, use_threads=use_threads)

    monkeypatch.setattr(parquet_lite.ParquetFile, "read_row_group", counting)
    return calls


@pytest.mark.parametrize("alone", [0, 64])  # every group through the whole footer / through one-group footers
def test_columns_alike_in_every_group_are_decoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: int
) -> None:
    monkeypatch.setattr(group_footers, "ALONE", alone)
    path = _plate(tmp_path / "p", 16, 4, wells=4)  # each group: wells W0..W3, the same bytes
    want = pq.read_table(path / "images.parquet").to_pylist()
    images = open_dataset(path).images
    calls = _decoded(monkeypatch)
    assert [images.row(pos) for pos in range(0, 16, 4)] == want[::4]
    decoded = [set(c) for c in calls if c is not None]
    assert len(decoded) == 4 and None not in calls
    names = set(want[0])
    assert {"image_id", "size_y", "well"} <= decoded[0] <= names  # the first group: each distinct chunk once
    assert len(decoded[0]) < len(names)  # the null physical sizes x, y, z: one chunk's bytes, decoded once
    for later in decoded[1:]:  # then only the columns that differ: per-image ids, names, locators, sites
        assert not {"size_y", "dtype", "channels_json", "well"} & later
        assert {"image_id", "site"} <= later < names


@pytest.mark.parametrize("alone", [0, 64])
def test_an_image_read_decodes_only_its_metadata_and_locator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: int
) -> None:
    """``ds[i].to_numpy()`` decodes the columns of its metadata and pixel locator, no other (a plate's per-image
    metadata columns, here ``well`` and ``site``, are decoded when a row or group is asked for)."""
    monkeypatch.setattr(group_footers, "ALONE", alone)
    path = _plate(tmp_path / "p", 16, 4, wells=4)
    want = pq.read_table(path / "images.parquet").to_pylist()
    ds = OMEArrowDataset.scan(path)
    calls = _decoded(monkeypatch)
    for pos in (1, 6, 11, 12):
        img = ds[pos]
        assert np.array_equal(img.to_numpy(), np.full((1, 1, 1, 4, 4), pos, np.uint16))
        assert img.meta == meta_from_row(want[pos])
    decoded = set().union(*(set(c) for c in calls if c is not None))
    assert None not in calls and decoded <= set(image_groups.IMAGE_COLUMNS)
    assert {"image_id", "pixels_offset"} <= decoded
    images = open_dataset(path).images
    assert [images.row(pos) for pos in range(16)] == want  # the rest still read, on demand


def test_meta_from_row_reads_only_meta_columns() -> None:
    """meta_from_row reads META_COLUMNS and nothing else (a row of those alone makes the same metadata)."""
    read: set[str] = set()

    class Recording(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            read.add(key)
            return super().__getitem__(key)

        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

    full = {n: None for n in META_COLUMNS} | {"image_id": "a", "dtype": "uint8", "well": "B03", "site": 2}
    full |= {f"size_{a}": 1 for a in "tczyx"}
    meta_from_row(Recording(full))
    assert read <= set(META_COLUMNS)
    assert meta_from_row({n: full[n] for n in META_COLUMNS}) == meta_from_row(full)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 30),
    per_group=st.integers(1, 7),
    wells=st.integers(1, 5),
    picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=25),
    kept=st.sampled_from([0, 1, 3, 256]),
    keyed=st.sampled_from([0, 64, 4096]),
    alone=st.sampled_from([0, 2, 16]),
)
def test_any_reads_give_the_table_rows_and_groups(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    per_group: int,
    wells: int,
    picks: list[int],
    kept: int,
    keyed: int,
    alone: int,
) -> None:
    """Any plate, any order, any number of kept chunks and size of keyed ones: each row and each row group is the
    table's (its types too), each image's pixels its own."""
    saved = group_footers.ALONE, group_chunks.KEPT_CHUNKS, group_chunks.KEYED_BYTES
    group_footers.ALONE, group_chunks.KEPT_CHUNKS, group_chunks.KEYED_BYTES = alone, kept, keyed
    try:
        path = _plate(tmp_path_factory.mktemp("any") / "p", n, per_group, wells)
        table = pq.read_table(path / "images.parquet")
        want = table.to_pylist()
        images = open_dataset(path).images
        ds = OMEArrowDataset.scan(path)
        for pick in picks:
            pos = pick % n
            assert images.row(pos) == want[pos]
            part, g, k = images.locate(pos)
            group = images.group(part, g)
            assert group.to_pylist() == want[pos - k : pos - k + group.num_rows]
            assert group.schema.names == table.schema.names
            assert np.array_equal(ds[pos].to_numpy(), np.full((1, 1, 1, 4, 4), pos, np.uint16))
    finally:
        group_footers.ALONE, group_chunks.KEPT_CHUNKS, group_chunks.KEYED_BYTES = saved


def _flip(path: Path, g: int, column: str) -> None:
    """Flip a byte in the last page of ``column`` in images row group ``g``."""
    file = path / "images.parquet"
    md = pq.read_metadata(file)
    col = md.row_group(g).column(md.schema.names.index(column))
    data = bytearray(file.read_bytes())
    data[col.data_page_offset + col.total_compressed_size - 3] ^= 0x5A
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("column", ["size_y", "dtype", "well", "channels_json"])
def test_a_flipped_byte_in_a_chunk_decoded_before_is_refused(tmp_path: Path, column: str) -> None:
    """Group 0's chunk of ``column`` is decoded and kept; group 1's, the same bytes but one, is damaged: checked, it
    is refused (the group's digest), never answered with group 0's values."""
    path = _plate(tmp_path / "p", 8, 4, wells=4)
    ds = OMEArrowDataset.scan(path)
    assert np.array_equal(ds[1].to_numpy(), np.full((1, 1, 1, 4, 4), 1, np.uint16))
    _flip(path, 1, column)
    ds = OMEArrowDataset.scan(path)
    assert np.array_equal(ds[1].to_numpy(), np.full((1, 1, 1, 4, 4), 1, np.uint16))  # group 0 intact
    with pytest.raises(DamagedFileError):
        ds[5].to_numpy()


def _pyarrow_group(path: Path, g: int) -> list[dict[str, Any]] | type[Exception]:
    """Row group ``g`` of the images table as pyarrow reads it alone, or the kind of error it raises."""
    try:
        return pq.ParquetFile(path / "images.parquet").read_row_group(g).to_pylist()  # type: ignore[no-any-return]
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("column", ["size_y", "dtype", "well", "physical_size_x_unit"])
def test_unchecked_a_damaged_chunk_is_decoded_from_its_own_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str
) -> None:
    """With checks off, group 1's damaged chunk (group 0's bytes but one) is not group 0's: its rows are what
    pyarrow reads from the damaged file itself, or the read is refused."""
    monkeypatch.setenv("OME_ARROW_CORE_VERIFY", "0")
    path = _plate(tmp_path / "p", 8, 4, wells=4)
    _flip(path, 1, column)
    images = open_dataset(path, verify=False).images
    want = pq.read_table(path / "images.parquet", columns=["image_id"]).to_pylist()
    assert images.row(0)["image_id"] == want[0]["image_id"]  # group 0: decoded and kept
    expect = _pyarrow_group(path, 1)
    if isinstance(expect, list):
        assert [images.row(pos) for pos in range(4, 8)] == expect
    else:
        with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises for it, refused, not answered
            images.row(5)


def test_a_truncated_images_table_is_refused_unchecked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With checks off, a table cut inside row group 2 after its footer was parsed: that group's rows are refused,
    not made up from chunks decoded before (the read of its chunks is short)."""
    monkeypatch.setattr(group_footers, "ALONE", 0)  # the whole footer, parsed by the first read
    path = _plate(tmp_path / "p", 12, 4, wells=4)
    file = path / "images.parquet"
    md = pq.read_metadata(file)
    images = open_dataset(path, verify=False).images
    assert images.row(0)["site"] == 0 and images.row(4)["site"] == 4
    file.write_bytes(file.read_bytes()[: md.row_group(2).column(0).data_page_offset + 2])
    with pytest.raises(DamagedFileError):
        images.row(9)


def test_channels_are_parsed_once_per_text_and_bad_ones_still_refused() -> None:
    """meta_from_row keeps the channels of each channels_json text it parsed (shared, frozen); a text that is not
    a list of channels is refused each time, never kept."""
    row = {"image_id": "a", "dtype": "uint8", **{f"size_{a}": 1 for a in "tczyx"}}
    text = '[{"id": "c0", "name": "DAPI", "color_rgba": 255}]'
    one, two = (
        meta_from_row(row | {"channels_json": text}),
        meta_from_row(row | {"image_id": "b", "channels_json": text}),
    )
    assert one.channels == two.channels and one.channels[0].name == "DAPI" and one.channels[0].color_rgba == 255
    for bad in ("[{", '{"id": 1}', '[{"color_rgba": -1}]'):
        for _ in range(2):
            with pytest.raises(SchemaError):
                meta_from_row(row | {"channels_json": bad})


def test_chunks_alike_in_bytes_but_not_in_type_are_decoded_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Columns whose chunks hold the same bytes decode once only when they are stored and read alike: int32 and
    uint32 (one physical type, two logical ones), a non-null column and a nullable one are decoded apart."""
    import pyarrow as pa

    values = [1, 2, 3, 2**20]
    table = pa.table(
        {
            "a": pa.array(values, pa.int32()),
            "b": pa.array(values, pa.uint32()),
            "c": pa.array(values, pa.int32()),
            "d": pa.array(values, pa.int32()),
        },
        schema=pa.schema(
            [
                pa.field("a", pa.int32()),
                pa.field("b", pa.uint32()),
                pa.field("c", pa.int32()),
                pa.field("d", pa.int32(), nullable=False),
            ]
        ),
    )
    file = tmp_path / "t.parquet"
    pq.write_table(table, file, row_group_size=2, write_statistics=False)
    md, data = pq.read_metadata(file), file.read_bytes()
    spans = group_chunks.chunk_spans(md.row_group(0), range(4))
    assert spans is not None
    chunks = [data[start : start + length] for start, length, _, _ in spans]
    assert chunks[0] == chunks[1] == chunks[2]  # int32 and uint32: the same bytes
    calls = _decoded(monkeypatch)
    reuse = group_chunks.ChunkReuse(file)
    pf = parquet_lite.ParquetFile(file)
    names = ["a", "b", "c", "d"]
    for g in range(2):
        got = reuse.read(pf, g, frozenset(), names)
        assert got is not None
        want = pq.ParquetFile(file).read_row_group(g)
        for name, column in zip(names, got):
            assert column.array.type == want.schema.field(name).type
            assert column.array.to_pylist() == want.column(name).to_pylist()
        assert got[0] is got[2] and got[1] is not got[0] and got[3] is not got[0]
    assert calls == [["a", "b", "d"], ["a", "b", "d"]]
