"""Row groups of the images and index tables read through one-group footers (manifest ``footer_spans``): the same
rows as pyarrow's whole-footer read, never a whole footer of those tables parsed, and lies, damage and older
manifests refused or read as before. The footer's Thrift walk itself: test_thrift_walk.py."""

from __future__ import annotations

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
