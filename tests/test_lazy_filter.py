"""``ds.filter`` on a dataset whose table was never read: only the columns the filter names are read, and the
result is the one the whole table gives."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parquet_spies import PARQUET_FILES, spy_on
from table_records import without_value_index

from ome_arrow_core import OMEArrowDataset, write_dataset

N = 30
WELLS = ["A01", "A02", "B01", "B02"]


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("filter") / "plate"
    write_dataset(
        (np.full((1, 4, 4), i, np.uint16) for i in range(N)),
        root,
        dim_order="CYX",
        metadata=[{"well": WELLS[i % 4], "site": i // 4, "score": i / 3} for i in range(N)],
        images_per_group=7,
        progress=False,
    )
    return root


def _eager(plate: Path, spec: Any, pick: list[int] | None) -> list[int]:
    ds = OMEArrowDataset.scan(plate)
    if pick is not None:
        ds = ds.select(pick)
    ds.table  # noqa: B018 (read: the filter then runs on the table)
    return [int(ds.filter(spec)[k].to_numpy(layout="CYX")[0, 0, 0]) for k in range(len(ds.filter(spec)))]


def _lazy(plate: Path, spec: Any, pick: list[int] | None) -> list[int]:
    ds = OMEArrowDataset.scan(plate)
    if pick is not None:
        ds = ds.select(pick)
    kept = ds.filter(spec)
    assert ds._table is None  # the whole table was not read
    return [int(kept[k].to_numpy(layout="CYX")[0, 0, 0]) for k in range(len(kept))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    wells=st.one_of(st.sampled_from(WELLS), st.lists(st.sampled_from([*WELLS, "Z99"]), max_size=3)),
    sites=st.one_of(st.none(), st.integers(0, 8), st.lists(st.integers(0, 8), max_size=3)),
    pick=st.one_of(st.none(), st.lists(st.integers(0, N - 1), max_size=12, unique=True)),
)
def test_a_mapping_filter_keeps_what_the_whole_table_keeps(
    plate: Path, wells: Any, sites: Any, pick: list[int] | None
) -> None:
    spec: dict[str, Any] = {"well": wells}
    if sites is not None:
        spec["site"] = sites
    assert _lazy(plate, spec, pick) == _eager(plate, spec, pick)


@pytest.mark.parametrize(
    "spec", [pc.field("site") > 3, (pc.field("well") == "B01") | (pc.field("score") < 2), {"score": 1.0}]
)
def test_expressions_and_floats_keep_what_the_whole_table_keeps(plate: Path, spec: Any) -> None:
    assert _lazy(plate, spec, None) == _eager(plate, spec, None)
    assert _lazy(plate, spec, [29, 3, 14, 0]) == _eager(plate, spec, [29, 3, 14, 0])


@pytest.mark.parametrize("indexed", [True, False])
def test_only_the_named_columns_are_read(
    plate: Path, monkeypatch: pytest.MonkeyPatch, indexed: bool, tmp_path: Path
) -> None:
    if not indexed:  # as written before the value index: the footers' path
        shutil.copytree(plate, tmp_path / "plate")
        plate = tmp_path / "plate"
        without_value_index(plate)
    read: list[Any] = []

    def spy(real: Any) -> Any:
        def read_(pf: Any, columns: list[str] | None = None, *a: Any, **k: Any) -> pa.Table:
            read.append(columns)
            return real(pf, columns, *a, **k)

        return read_

    def stream_spy(streamed: Any) -> Any:
        def iter_batches(pf: Any, *a: Any, **k: Any) -> Any:
            read.append(k.get("columns"))
            return streamed(pf, *a, **k)

        return iter_batches

    spy_on(monkeypatch, PARQUET_FILES, "read", spy)
    spy_on(monkeypatch, PARQUET_FILES, "iter_batches", stream_spy)  # a mapping streams the named columns
    kept = OMEArrowDataset.scan(plate).filter({"well": "B02"})
    seen = list(read)
    assert len(kept) == len(range(3, N, 4)) and seen == ([] if indexed else [["well"]])  # indexed: no column read


def test_an_unknown_column_is_an_argument_error_in_one_line(plate: Path) -> None:
    """A filter naming no column of the dataset is the argument's mistake (ArgumentError, not SchemaError, which
    is for files), naming the columns there are, without pyarrow's schema dump."""
    from ome_arrow_core.errors import ArgumentError, SchemaError

    for call in (
        lambda: OMEArrowDataset.scan(plate).filter({"nope": 1}),
        lambda: OMEArrowDataset.scan(plate, filter={"nope": 1}),
    ):
        with pytest.raises(
            ArgumentError, match=r"cannot be applied.*'well'.*No match for FieldRef.Name\(nope\)"
        ) as err:
            call()
        assert not isinstance(err.value, SchemaError) and "\n" not in str(err.value)


def test_a_mapping_filter_imports_neither_pandas_nor_pyarrow_dataset(plate: Path) -> None:
    code = (
        "import sys\nfrom ome_arrow_core import OMEArrowDataset\n"
        f"ds = OMEArrowDataset.scan({str(plate)!r}).filter({{'well': ['A01', 'B02'], 'site': 2}})\n"
        "ds[0].to_numpy(layout='CYX')\n"
        "print(len(ds), 'pandas' in sys.modules, 'pyarrow.dataset' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["2", "False", "False"]
