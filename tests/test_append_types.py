"""An append's metadata goes into the dataset's column types exactly, or is refused: never converted silently."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, SchemaError, write_dataset

OPTS: dict[str, Any] = {"dim_order": "YX", "progress": False}
STRUCT = pa.struct([("a", pa.int64()), ("b", pa.string())])


def _arrs(n: int) -> list[np.ndarray]:
    return [np.full((4, 6), k, np.uint16) for k in range(n)]


def _files(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir()) if p.is_file()}


def _append(tmp_path: Path, first: dict[str, list[Any]], then: dict[str, list[Any]]) -> Path:
    out = write_dataset(_arrs(len(next(iter(first.values())))), tmp_path / "d", metadata=first, **OPTS)
    write_dataset(_arrs(len(next(iter(then.values())))), out, mode="append", metadata=then, **OPTS)
    return out


def test_ints_appended_to_a_text_column_are_refused_and_the_dataset_is_untouched(tmp_path: Path) -> None:
    out = write_dataset(_arrs(2), tmp_path / "d", metadata={"label": ["a", "b"]}, **OPTS)
    before = _files(out)
    with pytest.raises(SchemaError, match=r"'label'.*column is string.*values are int64.*convert the values"):
        write_dataset(_arrs(2), out, mode="append", metadata={"label": [1, 2]}, **OPTS)
    assert _files(out) == before
    assert OMEArrowDataset.scan(out).table.column("label").to_pylist() == ["a", "b"]


@pytest.mark.parametrize(
    ("first", "then", "type_", "stored"),
    [
        ([1.5, 2.5], [1, 2], pa.float64(), [1.5, 2.5, 1.0, 2.0]),  # ints a float column holds exactly
        ([1, 2], [3.0, -4.0], pa.int64(), [1, 2, 3, -4]),  # integral floats
        ([np.int32(1)], [7], pa.int32(), [1, 7]),  # int64 values that fit int32
        ([np.float32(0.5)], [0.25], pa.float32(), [0.5, 0.25]),  # exactly representable in float32
        ([1, 2], [None, None], pa.int64(), [1, 2, None, None]),  # nulls fit any type
        (["a"], [None], pa.string(), ["a", None]),
        ([None, None], ["x"], pa.string(), [None, None, "x"]),  # a column written all null takes the new type
        ([float("nan")], [float("nan"), 1], pa.float64(), [math.nan, math.nan, 1.0]),
        # null fits any type at every depth: empty lists (list<null>), a struct field of None
        ([[1], [2]], [[], []], pa.list_(pa.int64()), [[1], [2], [], []]),
        ([{"a": 1, "b": "x"}], [{"a": 2, "b": None}], STRUCT, [{"a": 1, "b": "x"}, {"a": 2, "b": None}]),
        ([{"a": 1, "b": "x"}], [{"a": 2.0, "b": None}], STRUCT, [{"a": 1, "b": "x"}, {"a": 2, "b": None}]),
        # a dataset column null inside (only empty lists, a field always None) takes the values' type there
        ([[], []], [[3]], pa.list_(pa.int64()), [[], [], [3]]),
        ([{"a": 1, "b": None}], [{"a": 2.0, "b": "y"}], STRUCT, [{"a": 1, "b": None}, {"a": 2, "b": "y"}]),
    ],
)
def test_values_the_column_holds_exactly_are_stored_in_its_type(
    tmp_path: Path, first: list[Any], then: list[Any], type_: pa.DataType, stored: list[Any]
) -> None:
    out = _append(tmp_path, {"c": first}, {"c": then})
    column = OMEArrowDataset.scan(out).table.column("c")
    assert column.type == type_
    got = column.to_pylist()
    assert [type(v) for v in got] == [type(v) for v in stored]
    assert [("nan" if isinstance(v, float) and math.isnan(v) else v) for v in got] == [
        ("nan" if isinstance(v, float) and math.isnan(v) else v) for v in stored
    ]


@pytest.mark.parametrize(
    ("first", "then", "match"),
    [
        (["a"], [1], r"column is string, the appended images' values are int64"),
        ([1], ["1"], r"column is int64, the appended images' values are string"),
        ([1], [True], r"column is int64, the appended images' values are bool"),
        ([True], [1], r"column is bool, the appended images' values are int64"),
        ([1.0], ["1.0"], r"column is double, the appended images' values are string"),
        ([1], [1.5], r"do not fit the dataset's column of int64 exactly"),
        ([1], [float("nan")], r"do not fit the dataset's column of int64 exactly"),
        ([0.5], [2**53 + 1], r"do not fit the dataset's column of double exactly"),
        ([np.int32(1)], [2**40], r"do not fit the dataset's column of int32 exactly"),
        ([np.float32(0.5)], [0.1], r"value 0.1 is not exactly representable in the dataset's column of float"),
        ([[1]], [["a"]], r"column is list<\w+: int64>, the appended images' values are list<item: string>"),
        ([{"a": 1, "b": "x"}], [{"a": 1.5, "b": None}], r"do not fit the dataset's column of struct<.*> exactly"),
        ([{"a": 1, "b": None}], [{"a": 1.5, "b": "y"}], r"do not fit the dataset's column of struct<.*> exactly"),
        ([{"a": 1, "b": None}], [{"a": 1, "c": "y"}], r"column is struct<a: int64, b: null>, the appended"),
    ],
)
def test_values_of_another_kind_or_not_exactly_representable_are_refused(
    tmp_path: Path, first: list[Any], then: list[Any], match: str
) -> None:
    out = write_dataset(_arrs(len(first)), tmp_path / "d", metadata={"c": first}, **OPTS)
    before = _files(out)
    with pytest.raises(SchemaError, match=rf"metadata column 'c': .*{match}"):
        write_dataset(_arrs(len(then)), out, mode="append", metadata={"c": then}, **OPTS)
    assert _files(out) == before  # nothing of the append is left


def test_new_columns_are_added_and_missing_ones_read_as_null(tmp_path: Path) -> None:
    out = _append(tmp_path, {"well": ["A1", "A2"], "site": [1, 2]}, {"well": ["B1", "B2"], "dose": [0.5, 1.0]})
    table = OMEArrowDataset.scan(out).table
    assert table.schema.field("site").type == pa.int64() and table.schema.field("dose").type == pa.float64()
    assert table.column("site").to_pylist() == [1, 2, None, None]
    assert table.column("dose").to_pylist() == [None, None, 0.5, 1.0]
    assert OMEArrowDataset.scan(out, filter={"well": "B2"}).table.column("dose").to_pylist() == [1.0]


#: Python values of a few Arrow types (what metadata lists infer): the pairs the property test appends.
VALUES = {
    "int64": st.one_of(st.integers(-(2**62), 2**62), st.sampled_from([2**53, -(2**53), 2**53 + 1, 2**60])),
    "double": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-(2**20), 2**20).map(float)
    ),
    "string": st.text(max_size=4),
    "bool": st.booleans(),
}


def _expected(first: str, value: Any) -> Any:
    """The value a column of type ``first`` stores for appended ``value``, or SchemaError: the test's own rule."""
    if value is None:
        return None
    given_kind = {bool: "bool", int: "number", float: "number", str: "text"}[type(value)]
    want_kind = {"bool": "bool", "int64": "number", "double": "number", "string": "text"}[first]
    if given_kind != want_kind:
        return SchemaError
    if first == "int64" and isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else SchemaError
    if first == "double" and isinstance(value, int):
        return float(value) if abs(value) <= 2**53 else SchemaError  # beyond, pyarrow refuses even exact ones
    return value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    first=st.sampled_from(sorted(VALUES)),
    then=st.sampled_from(sorted(VALUES)),
    nest=st.booleans(),
)
def test_an_append_stores_exactly_what_the_rule_says_or_refuses(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, first: str, then: str, nest: bool
) -> None:
    old: list[Any] = data.draw(st.lists(VALUES[first], min_size=1, max_size=3))
    new: list[Any] = data.draw(st.lists(st.one_of(st.none(), VALUES[then]), min_size=1, max_size=3))
    expected: list[Any] = [_expected(first, v) for v in new]
    if nest:  # each value in a one-item list, None as an empty list (all empty: list<null>)
        old = [[v] for v in old]
        new = [[] if v is None else [v] for v in new]
        expected = [SchemaError if e is SchemaError else [] if e is None else [e] for e in expected]
    root = tmp_path_factory.mktemp("append")
    out = write_dataset(_arrs(len(old)), root / "d", metadata={"c": old}, **OPTS)
    before = _files(out)
    if SchemaError in expected:
        with pytest.raises(SchemaError, match=r"metadata column 'c'"):
            write_dataset(_arrs(len(new)), out, mode="append", metadata={"c": new}, **OPTS)
        assert _files(out) == before
        return
    write_dataset(_arrs(len(new)), out, mode="append", metadata={"c": new}, **OPTS)
    column = OMEArrowDataset.scan(out).table.column("c")
    assert str(column.type.value_type if nest else column.type) == first
    got = column.to_pylist()
    assert got == [*old, *expected]
    flat = [v for g in got[len(old) :] for v in (g if nest else [g])]
    assert [type(v) for v in flat] == [type(v) for e in expected for v in (e if nest else [e])]
