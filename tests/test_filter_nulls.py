"""Filters on nulls (dataset.filter_nulls): None values, null rows and metadata columns written all null (Arrow
type null), on every filter path (a scan's pushdown, ``ds.filter`` streamed, ``ds.filter`` on the read table),
against pyarrow.compute on the same columns typed as their values; appending values to an all-null column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from damage import flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.dataset.filter_nulls import filtered
from ome_arrow_core.errors import ArgumentError, ChecksumError, SchemaError
from ome_arrow_core.typed_chunk.opening import clear_cache

WELLS = ["A01", "B02"]
TYPES = {"well": pa.string(), "site": pa.int64()}


def _image(i: int) -> np.ndarray:
    return np.full((1, 2, 2), i, dtype=np.uint8)


def _write(root: Path, rows: list[dict[str, Any]], mode: str = "create", per_group: int = 2) -> None:
    first = 0 if mode == "create" else len(OMEArrowDataset.scan(root))
    write_dataset(
        (_image(first + i) for i in range(len(rows))),
        root,
        dim_order="ZYX",
        metadata={name: [r[name] for r in rows] for name in TYPES},
        mode=mode,  # type: ignore[arg-type]
        images_per_group=per_group,
        progress=False,
    )


def _ids(ds: OMEArrowDataset) -> list[str]:
    return [str(i) for i in ds.table.column("image_id").to_pylist()]


def _model(rows: list[dict[str, Any]], spec: Any) -> list[str]:
    """The image ids ``spec`` keeps, by pyarrow.compute over the columns typed as their values (not null): a
    mapping's value is ``pc.equal``, a list ``pc.is_in(skip_nulls=True)``, None equals nothing; an expression is
    pyarrow's own."""
    table = pa.table({n: pa.array([r[n] for r in rows], kind) for n, kind in TYPES.items()})
    table = table.append_column("image_id", pa.array([f"image-{i:05d}" for i in range(len(rows))]))
    if isinstance(spec, pc.Expression):
        return [str(i) for i in table.filter(spec).column("image_id").to_pylist()]
    keep = pa.array([True] * len(rows))
    for name, value in spec.items():
        if isinstance(value, list):
            wanted = pa.array([v for v in value if v is not None], TYPES[name])
            hit = pc.is_in(table[name], value_set=wanted, skip_nulls=True)
        else:
            hit = pc.equal(table[name], pa.scalar(value, TYPES[name]))
        keep = pc.and_(keep, pc.fill_null(hit, False))
    return [f"image-{i:05d}" for i, k in enumerate(keep.to_pylist()) if k]


_well = st.one_of(st.none(), st.sampled_from([*WELLS, "Z9"]))
_site = st.one_of(st.none(), st.integers(0, 2))
_spec = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"well": st.one_of(_well, st.lists(_well, max_size=3)), "site": st.one_of(_site, st.lists(_site))}
    ).filter(bool),
    st.sampled_from([*WELLS, "Z9"]).map(lambda w: pc.field("well") == w),
    st.lists(st.sampled_from([*WELLS, "Z9"]), min_size=1, max_size=2).map(lambda ws: pc.field("well").isin(ws)),
    st.integers(0, 2).map(lambda s: pc.field("site") == s),
    st.lists(st.integers(0, 2), min_size=1, max_size=2).map(lambda ss: pc.field("site").isin(ss)),
    st.sampled_from(["well", "site"]).map(lambda n: pc.field(n).is_null()),
)
_rows = st.lists(
    st.fixed_dictionaries({"well": st.sampled_from([None, *WELLS]), "site": st.one_of(st.none(), st.integers(0, 2))}),
    min_size=1,
    max_size=7,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=_rows,
    appended=st.one_of(st.just([]), _rows),
    nulls=st.sampled_from([(), ("well",), ("site",), ("well", "site")]),
    per_group=st.sampled_from([1, 2, 5]),
    spec=_spec,
)
def test_a_filter_on_partly_or_all_null_columns_keeps_what_pyarrow_keeps(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[dict[str, Any]],
    appended: list[dict[str, Any]],
    nulls: tuple[str, ...],
    per_group: int,
    spec: Any,
) -> None:
    for name in nulls:  # written all null in the first table: Arrow type null there
        for r in first:
            r[name] = None
    root = tmp_path_factory.mktemp("nulls") / "plate"
    _write(root, first, per_group=per_group)
    if appended:  # a second images table: its values widen the column, or it is null there too
        _write(root, appended, mode="append", per_group=per_group)
    clear_cache()
    expected = _model(first + appended, spec)
    assert _ids(OMEArrowDataset.scan(root, filter=spec)) == expected  # pushed down to the row groups
    assert _ids(OMEArrowDataset.scan(root).filter(spec)) == expected  # the named columns, read alone
    whole = OMEArrowDataset.scan(root)
    assert whole.table.num_rows == len(first) + len(appended)  # read now: the filter runs on it
    assert _ids(whole.filter(spec)) == expected  # on the read table
    if expected:
        kept = OMEArrowDataset.scan(root, filter=spec)
        np.testing.assert_array_equal(kept[0].to_numpy(layout="ZYX"), _image(int(expected[0][-5:])))


def test_a_string_filter_on_an_all_null_column_matches_nothing(tmp_path: Path) -> None:
    root = tmp_path / "plate"
    _write(root, [{"well": None, "site": i} for i in range(3)])
    assert OMEArrowDataset.scan(root).table.schema.field("well").type == pa.null()
    for spec in ({"well": "A01"}, {"well": ["A01", "B02"]}, pc.field("well").isin(["A01"]), {"well": None}):
        assert len(OMEArrowDataset.scan(root, filter=spec)) == 0
        assert len(OMEArrowDataset.scan(root).filter(spec)) == 0
    assert len(OMEArrowDataset.scan(root, filter=pc.field("well").is_null())) == 3
    assert len(OMEArrowDataset.scan(root, filter={"well": ["A01"], "site": 1})) == 0


def test_a_filter_that_fits_no_type_of_an_all_null_column_still_raises(tmp_path: Path) -> None:
    root = tmp_path / "plate"
    _write(root, [{"well": None, "site": i} for i in range(3)])
    bad = pc.field("site") == pc.field("image_id")  # int64 against string: no widening of `well` helps
    with pytest.raises(ArgumentError, match="cannot be applied"):
        OMEArrowDataset.scan(root, filter=bad)
    with pytest.raises(ArgumentError, match="cannot be applied"):
        OMEArrowDataset.scan(root).filter(bad)


def test_filtered_keeps_the_null_columns_as_they_were() -> None:
    table = pa.table({"well": pa.nulls(3), "site": pa.array([1, 2, 1])})
    kept = filtered(table, pc.field("well").isin(["A01"]) | (pc.field("site") == 1))
    assert kept.schema == table.schema and kept.column("site").to_pylist() == [1, 1]


def test_appending_values_to_an_all_null_column_widens_it(tmp_path: Path) -> None:
    root = tmp_path / "plate"
    _write(root, [{"well": None, "site": None}] * 2)
    _write(root, [{"well": "A01", "site": 2}, {"well": None, "site": None}], mode="append")
    ds = OMEArrowDataset.scan(root)
    assert ds.table.schema.field("well").type == pa.string() and ds.table.schema.field("site").type == pa.int64()
    assert ds.table.column("well").to_pylist() == [None, None, "A01", None]
    assert _ids(ds.filter({"well": "A01"})) == _ids(OMEArrowDataset.scan(root, filter={"site": [2]})) == ["image-00002"]
    np.testing.assert_array_equal(ds.filter({"well": "A01"})[0].to_numpy(layout="ZYX"), _image(2))
    assert len(ds.filter(pc.field("well").is_null())) == 3


def test_appending_another_type_to_a_widened_column_is_refused_saying_what_to_pass(tmp_path: Path) -> None:
    root = tmp_path / "plate"
    _write(root, [{"well": None, "site": None}] * 2)
    _write(root, [{"well": None, "site": 1}], mode="append")  # site: null, then int64
    with pytest.raises(
        SchemaError,
        match=r"metadata column 'site': the dataset's column is int64, the appended images' values are string",
    ):
        write_dataset([_image(9)], root, dim_order="ZYX", metadata={"site": ["x"]}, mode="append", progress=False)
    assert len(OMEArrowDataset.scan(root)) == 3  # the refused append left nothing


def test_a_damaged_images_table_is_refused_by_a_filter_on_an_all_null_column(tmp_path: Path) -> None:
    root = tmp_path / "plate"
    _write(root, [{"well": None, "site": i} for i in range(4)])
    file = root / "images.parquet"
    flip_byte(file, 40)  # in the first row group's pages
    clear_cache()
    with pytest.raises(ChecksumError):  # pushed down: the tables are checked whole before they are read
        OMEArrowDataset.scan(root, filter={"well": ["A01"]})
    with pytest.raises(ChecksumError):
        OMEArrowDataset.scan(root, filter=pc.field("well").isin(["A01"]))
    assert len(OMEArrowDataset.scan(root).filter({"well": ["A01"]})) == 0  # the checked footer's type decides
    flip_byte(file, 40)
    size = file.stat().st_size
    flip_byte(file, size - 8 - int.from_bytes(file.read_bytes()[-8:-4], "little") // 2)  # in the footer
    clear_cache()
    with pytest.raises(ChecksumError, match="footer"):
        OMEArrowDataset.scan(root).filter({"well": ["A01"]})


def test_two_all_null_columns_wanted_as_different_types(tmp_path: Path) -> None:
    """{'well': [...], 'site': 0} on a plate whose well and site were never set: one column is compared with text
    and the other with a number, so each null column takes its own type (a shared one fit neither: the filter was
    refused); nothing matches a null, and is_null keeps every row (hypothesis found this)."""
    root = tmp_path / "plate"
    _write(root, [{"well": None, "site": None} for _ in range(3)])
    for spec in ({"well": ["A01"], "site": 0}, pc.field("site") == 0):
        assert _ids(OMEArrowDataset.scan(root, filter=spec)) == []
        assert _ids(OMEArrowDataset.scan(root).filter(spec)) == []
    both = pc.field("well").is_null() & (pc.field("site").is_null() | (pc.field("site") == 1))
    assert len(OMEArrowDataset.scan(root, filter=both)) == 3
