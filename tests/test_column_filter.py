"""Mapping filters on a chunk dataset, streamed over the named columns: against a plain-numpy model, bounded, and
refusing damaged tables (dataset.column_filter)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parquet_spies import PARQUET_FILES, spy_on
from table_records import groups_of, without_value_index

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.dataset import column_filter
from ome_arrow_core.errors import ArgumentError, ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import footers, group_sums
from ome_arrow_core.typed_chunk.opening import clear_cache

MANIFEST = "_ome_arrow_dataset.json"
WELLS = ["A01", "A02", "B01", "B02", "C03"]
N = 41
PER_GROUP = 4


def _image(i: int) -> np.ndarray:
    return ((np.arange(2 * 3, dtype=np.int64) + 11 * i) % 4096).astype(np.uint16).reshape(1, 2, 3)


def _meta(i: int) -> dict[str, Any]:
    return {"well": WELLS[(i * 7) % len(WELLS)] if i % 9 else None, "site": i % 6, "plate": "P1"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(
        (_image(i) for i in range(N)),
        tmp_path_factory.mktemp("filters") / "plate",
        dim_order="ZYX",
        metadata=[_meta(i) for i in range(N)],
        images_per_group=PER_GROUP,
        progress=False,
    )


@pytest.fixture
def plate(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "plate"
    shutil.copytree(base, out)
    without_value_index(out)  # the footers' path (the value index's: tests/test_value_index.py)
    return out


def _fresh() -> None:
    clear_cache()
    group_sums._passed.clear()


def _model(spec: dict[str, Any]) -> list[int]:
    """The rows a filter keeps, by plain Python over the metadata written."""
    out = []
    for i in range(N):
        row = _meta(i)
        ok = True
        for name, value in spec.items():
            values = list(value) if isinstance(value, (list, tuple, set)) else [value]
            ok &= row[name] is not None and row[name] in values
        if ok:
            out.append(i)
    return out


_terms = st.fixed_dictionaries(
    {},
    optional={
        "well": st.one_of(st.sampled_from([*WELLS, "Z99"]), st.lists(st.sampled_from([*WELLS, "Z99"]), max_size=3)),
        "site": st.one_of(st.integers(-1, 7), st.lists(st.integers(-1, 7), max_size=3)),
        "plate": st.sampled_from(["P1", "P2"]),
    },
).filter(bool)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=_terms,
    batch=st.sampled_from([1, 3, 4, 1 << 16]),
    block=st.sampled_from([1, 2, 256]),
    order=st.permutations(range(N)),
)
def test_a_mapping_filter_keeps_what_the_numpy_model_keeps(
    base: Path, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any], batch: int, block: int, order: list[int]
) -> None:
    monkeypatch.setattr(column_filter, "BATCH_ROWS", batch)
    monkeypatch.setattr(column_filter, "BLOCK_BATCHES", block)  # row groups compared at once
    ds = OMEArrowDataset.scan(base)
    kept = ds.filter(spec)
    expected = _model(spec)
    assert len(kept) == len(expected)
    for k, i in enumerate(expected[:3]):
        np.testing.assert_array_equal(kept[k].to_numpy(layout="ZYX"), _image(i))
    assert [m["site"] for m in (kept.metadata(k) for k in range(len(kept)))] == [_meta(i)["site"] for i in expected]
    picked = ds.select(order)  # a selection first: the filter keeps its order
    again = picked.filter(spec)
    assert [order[k] for k in range(N) if order[k] in set(expected)] == [
        int(np.asarray(again._positions.many(np.arange(len(again)))[1])[k]) for k in range(len(again))
    ]


def test_the_filter_reads_only_the_named_columns_and_keeps_no_whole_footer(
    plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[list[str] | None] = []

    def spy(original: Any) -> Any:
        def iter_batches(self: Any, *args: Any, **kwargs: Any) -> Any:
            read.append(kwargs.get("columns"))
            return original(self, *args, **kwargs)

        return iter_batches

    spy_on(monkeypatch, PARQUET_FILES, "iter_batches", spy)
    _fresh()
    footers._kept.clear()
    ds = OMEArrowDataset.scan(plate)
    assert len(ds.filter({"well": "A01", "site": [0, 1]})) == len(_model({"well": "A01", "site": [0, 1]}))
    assert read and all(r == ["well", "site"] for r in read)  # (a run of row groups a read: some are pruned)
    assert not any(k[0].endswith("images.parquet") for k in footers._kept)  # parsed for the read, not kept


def test_a_column_no_table_has_is_refused_by_the_whole_table(plate: Path) -> None:
    ds = OMEArrowDataset.scan(plate)
    with pytest.raises(ArgumentError, match="nope"):
        ds.filter({"nope": 1})


def test_a_value_the_column_cannot_hold_is_refused_clearly(plate: Path) -> None:
    ds = OMEArrowDataset.scan(plate)
    with pytest.raises(ArgumentError, match="site"):
        ds.filter({"site": "not a number"})


@pytest.mark.parametrize("group", [0, 3, 9])  # (10, one image, is decided by its statistics: never decoded)
def test_a_flipped_byte_in_any_images_row_group_refuses_the_filter(plate: Path, group: int) -> None:
    entry = groups_of(json.loads((plate / MANIFEST).read_text())["ome_arrow_core"])["images.parquet"]
    file = plate / "images.parquet"
    data = bytearray(file.read_bytes())
    data[entry["bounds"][group] + 7] ^= 0x01
    file.write_bytes(bytes(data))
    _fresh()
    ds = OMEArrowDataset.scan(plate)  # footers only: the group is checked when it is read
    with pytest.raises(ChecksumError, match=f"row group {group}"):
        ds.filter({"well": WELLS})  # every row group may hold one: each is read
    with pytest.raises(ChecksumError):  # still refused when asked again
        ds.filter({"well": WELLS})


def test_a_damaged_row_group_the_statistics_rule_out_is_neither_read_nor_needed(plate: Path) -> None:
    entry = groups_of(json.loads((plate / MANIFEST).read_text())["ome_arrow_core"])["images.parquet"]
    file = plate / "images.parquet"
    data = bytearray(file.read_bytes())
    data[entry["bounds"][0] + 7] ^= 0x01  # row group 0 (images 0..3) holds no A01: its min is A02
    file.write_bytes(bytes(data))
    _fresh()
    ds = OMEArrowDataset.scan(plate)
    kept = ds.filter({"well": "A01"})  # decided by the checked footer's statistics; group 0 never decoded
    assert [int(r) for r in kept._positions.many(np.arange(len(kept)))[1]] == _model({"well": "A01"})
    with pytest.raises(ChecksumError, match="row group 0"):
        ds.filter({"well": "A02"})


def test_a_truncated_images_table_refuses_the_filter(plate: Path) -> None:
    ds = OMEArrowDataset.scan(plate)
    file = plate / "images.parquet"
    file.write_bytes(file.read_bytes()[:-50])
    _fresh()
    with pytest.raises((ChecksumError, DamagedFileError)):
        ds.filter({"well": "A01"})


def test_a_manifest_lying_about_the_image_count_refuses_the_filter(plate: Path) -> None:
    ds = OMEArrowDataset.scan(plate)
    manifest = json.loads((plate / MANIFEST).read_text())
    manifest["image_count"] = N + 5
    (plate / MANIFEST).write_text(json.dumps(manifest))
    _fresh()
    with pytest.raises(DamagedFileError, match="image"):
        ds.filter({"well": "A01"})


def test_appended_tables_are_filtered_across_parts(tmp_path: Path) -> None:
    root = write_dataset(
        (_image(i) for i in range(5)),
        tmp_path / "plate",
        dim_order="ZYX",
        metadata=[_meta(i) for i in range(5)],
        images_per_group=2,
        progress=False,
    )
    write_dataset(
        (_image(i) for i in range(5, 12)),
        root,
        dim_order="ZYX",
        metadata=[_meta(i) for i in range(5, 12)],
        mode="append",
        progress=False,
    )
    ds = OMEArrowDataset.scan(root)
    spec = {"well": ["A01", "B02"]}
    expected = [i for i in range(12) if _meta(i)["well"] in spec["well"]]
    kept = ds.filter(spec)
    assert len(kept) == len(expected)
    for k, i in enumerate(expected):
        np.testing.assert_array_equal(kept[k].to_numpy(layout="ZYX"), _image(i))


def _sorted_meta(i: int) -> dict[str, Any]:
    """A plate written row by row: ``row`` sorted (one or two a row group), ``well`` not; some rows null."""
    return {"row": i // 3 if i % 11 else None, "well": WELLS[(i * 7) % len(WELLS)], "label": f"r{i // 6:02d}"}


@pytest.fixture(scope="module")
def sorted_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(
        (_image(i) for i in range(N)),
        tmp_path_factory.mktemp("sorted") / "plate",
        dim_order="ZYX",
        metadata=[_sorted_meta(i) for i in range(N)],
        images_per_group=PER_GROUP,
        progress=False,
    )


def _sorted_model(spec: dict[str, Any]) -> list[int]:
    def one(v: Any, want: Any) -> bool:
        wanted = list(want) if isinstance(want, (list, tuple, set)) else [want]
        return v is not None and v in wanted

    return [i for i in range(N) if all(one(_sorted_meta(i)[k], w) for k, w in spec.items())]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=st.fixed_dictionaries(
        {},
        optional={
            "row": st.one_of(st.none(), st.integers(-1, 15), st.lists(st.integers(-1, 15), max_size=3)),
            "well": st.one_of(st.sampled_from(WELLS), st.lists(st.sampled_from([*WELLS, "Z9"]), max_size=2)),
            "label": st.one_of(st.sampled_from(["r00", "r03", "r06", "r9"]), st.lists(st.text(max_size=3), max_size=2)),
        },
    ).filter(bool),
    unpruned=st.sampled_from([1, 2, 64]),
)
def test_row_groups_ruled_out_by_their_statistics_are_skipped_and_the_rest_kept_as_the_model_keeps(
    sorted_plate: Path, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any], unpruned: int
) -> None:
    monkeypatch.setattr(column_filter, "UNPRUNED", unpruned)  # statistics asked of a few row groups, or all
    ds = OMEArrowDataset.scan(sorted_plate)
    kept = ds.filter(spec)
    expected = _sorted_model(spec)
    assert [int(r) for r in kept._positions.many(np.arange(len(kept)))[1]] == expected
    for k, i in enumerate(expected[:2]):
        np.testing.assert_array_equal(kept[k].to_numpy(layout="ZYX"), _image(i))


def test_a_term_on_a_sorted_column_reads_only_the_row_groups_that_may_hold_it(
    sorted_plate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[Any] = []

    def spy(original: Any) -> Any:
        def iter_batches(self: Any, *args: Any, **kwargs: Any) -> Any:
            groups.append(kwargs.get("row_groups"))
            return original(self, *args, **kwargs)

        return iter_batches

    spy_on(monkeypatch, PARQUET_FILES, "iter_batches", spy)
    ds = OMEArrowDataset.scan(sorted_plate)
    assert [int(r) for r in ds.filter({"row": 5})._positions.many(np.arange(3))[1]] == [15, 16, 17]
    assert groups == [[3, 4]]  # rows 15, 16, 17 lie in row groups 3 (12..15) and 4 (16..19)
    groups.clear()
    assert len(ds.filter({"row": [0, 13]})) == 4  # 1, 2 (0 is null) and 39, 40
    assert groups == [[0], [9]]  # (10, image 40 alone, is kept whole by its statistics: not decoded)
    groups.clear()
    assert len(ds.filter({"row": 99})) == 0 and groups == []


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_footer_lying_about_its_statistics_refuses_the_filter_before_they_prune(
    sorted_plate: Path, tmp_path: Path, where: float
) -> None:
    plate = tmp_path / "plate"
    shutil.copytree(sorted_plate, plate)
    ds = OMEArrowDataset.scan(plate)
    file = plate / "images.parquet"
    data = bytearray(file.read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    data[len(data) - 8 - length + int(length * where)] ^= 0x01  # somewhere in the footer (its statistics among it)
    file.write_bytes(bytes(data))
    _fresh()
    with pytest.raises((ChecksumError, DamagedFileError)):
        ds.filter({"row": 5})
