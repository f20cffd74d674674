"""Row groups of the images and index tables read through one-group footers (manifest ``footer_spans``): the same
rows as pyarrow's whole-footer read, never a whole footer of those tables parsed, and lies, damage and older
manifests refused or read as before."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_records import edit_groups, groups_of

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import footers, group_sums
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.thrift_walk import ThriftError, one_group_footer, row_group_spans, skip_struct

MANIFEST = "_ome_arrow_dataset.json"
PER_GROUP = 4
N = 19


def _image(i: int) -> np.ndarray:
    return ((np.arange(3 * 4 * 5, dtype=np.int64) * 5 + 13 * i) % 4096).astype(np.uint16).reshape(3, 4, 5)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(
        (_image(i) for i in range(N)),
        tmp_path_factory.mktemp("footers") / "plate",
        dim_order="ZYX",
        metadata=[{"well": f"W{i % 3}", "site": i} for i in range(N)],
        images_per_group=PER_GROUP,
        progress=False,
    )


@pytest.fixture
def plate(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "plate"
    shutil.copytree(base, out)
    return out


def _edit(root: Path, name: str, edit: Any) -> None:
    manifest = json.loads((root / MANIFEST).read_text())
    edit_groups(manifest["ome_arrow_core"], lambda entries: edit(entries[name]))
    (root / MANIFEST).write_text(json.dumps(manifest))


def _fresh() -> None:
    clear_cache()
    group_sums._passed.clear()


def _footer_of(data: bytes) -> bytes:
    length = int.from_bytes(data[-8:-4], "little")
    return data[-8 - length : -8]


def _parse(meta: bytes) -> pq.FileMetaData:
    return pq.read_metadata(pa.BufferReader(b"PAR1" + meta + len(meta).to_bytes(4, "little") + b"PAR1"))


# -- the Thrift walk ------------------------------------------------------------------------------------------------
_values = st.one_of(st.none(), st.text(max_size=12), st.integers(-(2**40), 2**40))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(min_value=0, max_value=60),
    group=st.integers(min_value=1, max_value=9),
    statistics=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_each_spliced_footer_reads_its_row_group_as_the_whole_footer_does(
    rows: int, group: int, statistics: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "id": [f"image-{k:05d}" for k in range(rows)],
            "n": pa.array(rng.integers(-1000, 1000, rows), pa.int64()),
            "maybe": pa.array([None if k % 3 == 0 else float(k) for k in range(rows)], pa.float64()),
            "word": pa.array([["a", "bb", None][k % 3] for k in range(rows)], pa.string()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=group, write_statistics=statistics, write_page_checksum=True)
    data = sink.getvalue()
    whole = pq.ParquetFile(pa.BufferReader(data))
    meta = _footer_of(data)
    spans = row_group_spans(meta)
    assert len(spans.starts) == whole.metadata.num_row_groups
    ends = [*spans.starts[1:], spans.end]
    for g, (a, b) in enumerate(zip(spans.starts, ends)):
        assert skip_struct(meta, a) == b
        md = _parse(one_group_footer(meta[: spans.header], meta[a:b], meta[spans.end :]))
        assert md.num_row_groups == 1
        assert md.row_group(0).to_dict() == whole.metadata.row_group(g).to_dict()
        alone = pq.ParquetFile(pa.BufferReader(data), metadata=md).read_row_group(0)
        assert alone.equals(whole.read_row_group(g))
    empty = _parse(one_group_footer(meta[: spans.header], None, meta[spans.end :]))
    assert empty.num_row_groups == 0 and empty.schema.to_arrow_schema() == whole.schema_arrow


@settings(max_examples=60, deadline=None)
@given(cut=st.floats(min_value=0.0, max_value=0.999), where=st.floats(0.0, 0.999), bit=st.integers(0, 7))
def test_truncated_or_flipped_footer_bytes_raise_thrift_errors_or_still_walk(
    cut: float, where: float, bit: int
) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(30)), "b": [str(k) for k in range(30)]}), sink, row_group_size=7)
    meta = _footer_of(sink.getvalue())
    with pytest.raises(ThriftError):
        row_group_spans(meta[: int(cut * len(meta))])
    flipped = bytearray(meta)
    flipped[int(where * len(meta))] ^= 1 << bit
    try:  # a flipped bit may still be a well-formed struct; it must never raise anything else, nor hang
        row_group_spans(bytes(flipped))
    except ThriftError:
        pass


def _struct_of_every_kind() -> bytes:
    """A Thrift compact struct holding a value of every type: each nested in lists, a set, a map and structs."""
    list_of_structs = b"\x2c" + b"\x15\x04\x00" + b"\x18\x02hi\x00"  # list<struct>: {i32 2}, {binary "hi"}
    fields = [
        b"\x11",  # field 1: true (in the header)
        b"\x13\x7f",  # field 2: byte
        b"\x14\xac\x02",  # field 3: i16, a 2-byte varint
        b"\x15\x80\x80\x04",  # field 4: i32, a 3-byte varint
        b"\x16\x01",  # field 5: i64
        b"\x17" + bytes(8),  # field 6: double
        b"\x18\x83\x01" + bytes(131),  # field 7: binary of 131 bytes (a 2-byte length)
        b"\x19\x31\x01\x02\x01",  # field 8: list of 3 booleans, a byte each
        b"\x1a\x26\x02\x04",  # field 9: set of 2 i64
        b"\x1b\x02\x58\x02\x01a\x04\x01b",  # field 10: map<i32, binary> of 2
        b"\x1b\x00",  # field 11: an empty map
        b"\x19" + list_of_structs,  # field 12: list of 2 structs
        b"\x1c\x19\xfc\x12" + bytes(18) + b"\x00",  # field 13: struct {list of 18 empty structs}
        b"\x09\x20\x0c",  # field 16 (long form): an empty list of structs
    ]
    return b"".join(fields) + b"\x00"


def test_every_thrift_type_is_skipped_whole_and_each_cut_raises() -> None:
    meta = _struct_of_every_kind()
    assert skip_struct(meta) == len(meta)
    assert skip_struct(meta + b"tail") == len(meta)
    for cut in range(len(meta)):
        with pytest.raises(ThriftError):
            skip_struct(meta[:cut])


def test_nesting_deeper_than_a_footer_raises_a_thrift_error() -> None:
    deep = b"\x1c" * 40 + b"\x00" * 41  # 40 structs, each the first field of the one around it
    with pytest.raises(ThriftError, match="deeper"):
        skip_struct(deep)
    lists = b"\x19\x19" + b"\x19" * 40  # lists of lists...: refused, not a RecursionError
    with pytest.raises(ThriftError):
        skip_struct(lists)
    shallow = b"\x1c" * 8 + b"\x00" * 9
    assert skip_struct(shallow) == len(shallow)


# -- datasets -------------------------------------------------------------------------------------------------------
def test_writes_record_where_each_footer_lists_its_row_groups(plate: Path) -> None:
    for name in ("images.parquet", "index.parquet"):
        entry = groups_of(json.loads((plate / MANIFEST).read_text())["ome_arrow_core"])[name]
        md = pq.read_metadata(plate / name)
        assert entry["group_rows"] == [md.row_group(g).num_rows for g in range(md.num_row_groups)]
        at, length = entry["footer_spans"][:2]
        assert at + length + 8 == (plate / name).stat().st_size
        assert len(entry["footer_spans"]) == 4 + md.num_row_groups


def test_images_are_read_without_parsing_a_whole_footer_of_the_tables(
    plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    real = footers.footer

    def spy(root: Path, name: str) -> pq.FileMetaData:
        parsed.append(name)
        return real(root, name)

    for module in ("footers", "image_groups", "aligned_index", "tables"):
        monkeypatch.setattr(f"ome_arrow_core.typed_chunk.{module}.footer", spy)
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    for i in (0, N - 1, 5, 9, 14):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), _image(i))
    np.testing.assert_array_equal(ds.read([3, 17, 8], layout="ZYX"), np.stack([_image(3), _image(17), _image(8)]))
    assert [n for n in parsed if n in ("images.parquet", "index.parquet")] == []
    assert ds[7].meta.id == pq.read_table(plate / "images.parquet").column("image_id")[7].as_py()


@pytest.mark.parametrize("verify", [False, True])
def test_manifests_without_footer_spans_and_unchecked_reads_parse_the_footers_as_before(
    plate: Path, monkeypatch: pytest.MonkeyPatch, verify: bool
) -> None:
    if verify:  # as a manifest written before footer spans
        for name in ("images.parquet", "index.parquet"):
            _edit(plate, name, lambda e: [e.pop("group_rows"), e.pop("footer_spans")])
    parsed: list[str] = []
    real = footers.footer

    def spy(root: Path, name: str) -> pq.FileMetaData:
        parsed.append(name)
        return real(root, name)

    monkeypatch.setattr("ome_arrow_core.typed_chunk.image_groups.footer", spy)
    _fresh()
    ds = OMEArrowDataset.scan(plate, verify=verify)
    for i in range(N):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), _image(i))
    assert "images.parquet" in parsed


@pytest.mark.parametrize("lied", [1, 2])  # 1: row group 0, which the schema is read from, is spliced wrong too
@pytest.mark.parametrize("name", ["images.parquet", "index.parquet"])
@pytest.mark.parametrize("shift", [-2, -1, 1, 3])
def test_a_lie_in_where_a_row_group_is_listed_is_refused_or_reads_right(
    plate: Path, name: str, shift: int, lied: int
) -> None:
    # the entry of row group ``lied`` starts elsewhere (it and the row group before are spliced wrong)

    def lie(entry: dict[str, Any]) -> None:
        entry["footer_spans"][4 + lied] += shift

    _edit(plate, name, lie)
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    refused = set()
    for i in range(N):
        try:
            got = ds[i].to_numpy(layout="ZYX")
        except DamagedFileError:
            refused.add(i // PER_GROUP)
            continue
        np.testing.assert_array_equal(got, _image(i))
    assert lied == 1 or lied in refused or lied - 1 in refused  # a splice may also read right: never wrong
    assert refused <= {lied - 1, lied}


@pytest.mark.parametrize("name", ["images.parquet", "index.parquet"])
def test_a_lie_in_the_rows_of_a_row_group_is_refused(plate: Path, name: str) -> None:
    def lie(entry: dict[str, Any]) -> None:  # the total still agrees
        entry["group_rows"][0] -= 1
        entry["group_rows"][1] += 1

    _edit(plate, name, lie)
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    with pytest.raises(DamagedFileError, match="row group 0"):
        ds[0].to_numpy()


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e["footer_spans"].pop(),  # one row group fewer
        lambda e: e.update(footer_spans=[e["footer_spans"][0] + 1, *e["footer_spans"][1:]]),  # not at the end
        lambda e: e.update(footer_spans="everywhere"),
        lambda e: e.pop("group_rows"),
    ],
)
def test_footer_spans_that_do_not_fit_the_table_are_a_damaged_manifest(plate: Path, edit: Any) -> None:
    _edit(plate, "images.parquet", edit)
    _fresh()
    with pytest.raises(DamagedFileError, match="manifest is damaged"):
        OMEArrowDataset.scan(plate)[0].to_numpy()


def test_group_rows_that_disagree_with_the_rows_recorded_leave_the_footer_to_decide(
    plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(plate, "images.parquet", lambda e: e.update(group_rows=[*e["group_rows"][:-1], e["group_rows"][-1] + 1]))
    parsed: list[str] = []
    real = footers.footer

    def spy(root: Path, name: str) -> pq.FileMetaData:
        parsed.append(name)
        return real(root, name)

    monkeypatch.setattr("ome_arrow_core.typed_chunk.image_groups.footer", spy)
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    for i in range(N):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), _image(i))
    assert "images.parquet" in parsed


@pytest.mark.parametrize("how", ["truncate", "flip-footer", "flip-group"])
def test_damaged_tables_are_refused_on_the_new_path(plate: Path, how: str) -> None:
    file = plate / "images.parquet"
    data = bytearray(file.read_bytes())
    entry = groups_of(json.loads((plate / MANIFEST).read_text())["ome_arrow_core"])["images.parquet"]
    if how == "truncate":
        data = data[:-100]
    elif how == "flip-footer":
        data[entry["footer_spans"][0] + entry["footer_spans"][4 + 2] + 3] ^= 0x10  # inside row group 2's entry
    else:
        data[entry["bounds"][2] + 10] ^= 0x01
    file.write_bytes(bytes(data))
    _fresh()
    if how != "flip-group":  # the footer: checked before the first read parses it (a scan counts by the manifest)
        with pytest.raises(ChecksumError):
            OMEArrowDataset.scan(plate)[0].to_numpy()
        return
    ds = OMEArrowDataset.scan(plate)
    with pytest.raises(ChecksumError):
        ds[2 * PER_GROUP].to_numpy()
    np.testing.assert_array_equal(ds[0].to_numpy(layout="ZYX"), _image(0))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=1, max_value=23), per_group=st.integers(min_value=1, max_value=6))
def test_every_image_and_its_metadata_read_as_written(
    tmp_path_factory: pytest.TempPathFactory, n: int, per_group: int
) -> None:
    root = write_dataset(
        (_image(i) for i in range(n)),
        tmp_path_factory.mktemp("any") / "plate",
        dim_order="ZYX",
        metadata=[{"site": i} for i in range(n)],
        images_per_group=per_group,
        progress=False,
    )
    _fresh()
    ds = OMEArrowDataset.scan(root)
    order = np.random.default_rng(n).permutation(n)
    for i in order.tolist():
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), _image(i))
        assert ds.metadata(i)["site"] == i


# -- comparing text columns from their buffers (the read checks' image ids and dtypes) ----------------------------
_texts = st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=1, max_size=30)


def _column(values: list[str | None], how: str, split: int) -> pa.ChunkedArray | pa.Array:
    arr = pa.array(values, pa.large_string() if how == "large" else pa.string())
    if how == "dictionary":
        arr = arr.dictionary_encode()
    if how == "binary":
        arr = pa.array([None if v is None else v.encode() for v in values], pa.binary())
    cut = split % (len(values) + 1)
    return pa.chunked_array([arr.slice(0, cut), arr.slice(cut)], type=arr.type) if split % 2 else arr


@pytest.fixture(params=[1 << 16, 3])
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Positions compared at a time: the default, and 3 (many blocks, merged)."""
    from ome_arrow_core import arrow_text

    monkeypatch.setattr(arrow_text, "BLOCK", request.param)
    return int(request.param)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=_texts,
    b=_texts,
    how=st.sampled_from(["plain", "large", "dictionary", "binary"]),
    split=st.integers(0, 40),
    data=st.data(),
)
def test_text_compared_from_buffers_as_python_compares_it(
    block: int, a: list[str | None], b: list[str | None], how: str, split: int, data: st.DataObject
) -> None:
    from ome_arrow_core.arrow_text import distinct_text, same_text

    k = data.draw(st.integers(1, 40))
    at_a = np.asarray(data.draw(st.lists(st.integers(0, len(a) - 1), min_size=k, max_size=k)), dtype=np.int64)
    at_b = np.asarray(data.draw(st.lists(st.integers(0, len(b) - 1), min_size=k, max_size=k)), dtype=np.int64)
    col_a, col_b = _column(a, how, split), _column(b, "plain", split + 1)
    want = [a[i] == b[j] for i, j in zip(at_a.tolist(), at_b.tolist())]
    assert same_text(col_a, at_a, col_b, at_b).tolist() == want
    values, codes = distinct_text(col_a, at_a)
    assert [values[c] for c in codes.tolist()] == [a[i] for i in at_a.tolist()]
    assert len(values) == len(set(a[i] for i in at_a.tolist()))


def test_past_a_few_row_groups_the_whole_footer_serves_the_rest(plate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ome_arrow_core.typed_chunk import group_footers

    monkeypatch.setattr(group_footers, "ALONE", 2)
    parsed: list[str] = []
    real = footers.footer

    def spy(root: Path, name: str) -> pq.FileMetaData:
        parsed.append(name)
        return real(root, name)

    for module in ("image_groups", "aligned_index"):
        monkeypatch.setattr(f"ome_arrow_core.typed_chunk.{module}.footer", spy)
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    for i in (0, 1, PER_GROUP):  # two row groups: spliced footers only
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), _image(i))
    assert parsed == []
    for i in np.random.default_rng(0).permutation(N).tolist():
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), _image(i))
    assert {"images.parquet", "index.parquet"} <= set(parsed)


def test_past_the_row_groups_kept_images_rows_are_read_again_and_right(
    plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ome_arrow_core.typed_chunk import image_groups
    from ome_arrow_core.typed_chunk.opening import open_dataset

    monkeypatch.setattr(image_groups, "GROUPS_KEPT", 2)
    monkeypatch.setattr(image_groups, "ROWS_KEPT", 1)
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    for i in [*np.random.default_rng(1).permutation(N).tolist(), 0, N - 1, 0]:
        np.testing.assert_array_equal(ds[i].to_numpy(layout="ZYX"), _image(i))
        assert ds.metadata(i)["site"] == i
        assert len(open_dataset(plate).images._groups) <= 2
