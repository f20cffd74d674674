"""Shape and relationship tables: files cross to and from the reference; bad coordinates are found by row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.compat import shapes
from ome_arrow_core.errors import SchemaError

ref = pytest.importorskip("ome_arrow.shapes", reason="needs the reference package: pip install ome-arrow==0.1.0")

ROWS = [
    {
        "object_id": "cell-1",
        "image_id": "a",
        "geometry": [[[0.0, 0.0], [4.0, 0.0], [4.0, 3.0], [0.0, 0.0]]],
        "centroid": [1.5, 2.0],
        "bbox": {"min": [0.0, 0.0], "max": [4.0, 3.0]},
        "area": 6.0,
    },
    {"object_id": "cell-2", "image_id": "b", "geometry": [[[1.0, 1.0], [2.0, 1.0], [1.0, 1.0]]], "area": 0.5},
]


def test_shape_files_cross_both_ways(tmp_path: Path) -> None:
    ours = shapes.make_shape_table(ROWS, geometry_encoding="geoarrow.polygon", units=("µm", "µm"))
    theirs = ref.make_shape_table(ROWS, geometry_encoding="geoarrow.polygon", units=("µm", "µm"))
    assert ours.schema.equals(theirs.schema, check_metadata=True)
    shapes.write_shape_parquet(ours, tmp_path / "ours.parquet")
    ref.write_shape_parquet(theirs, tmp_path / "theirs.parquet")
    assert ref.read_shape_parquet(tmp_path / "ours.parquet").equals(ours)
    assert shapes.read_shape_parquet(tmp_path / "theirs.parquet").equals(theirs)
    edges = [{"parent_id": "cell-1", "child_id": "nucleus-1", "relationship_type": "contains"}]
    ref.validate_relationship_table(shapes.make_relationship_table(edges))
    shapes.validate_relationship_table(ref.make_relationship_table(edges))


def test_shapes_for_image_filters_rows() -> None:
    table = shapes.OMEArrowShapes.from_rows(ROWS, geometry_encoding="geoarrow.polygon")
    assert table.for_image("b").table["object_id"].to_pylist() == ["cell-2"]


@settings(max_examples=40, deadline=None)
@given(
    rings=st.lists(
        st.lists(st.lists(st.floats(-9, 9), min_size=1, max_size=3), min_size=1, max_size=4), min_size=1, max_size=3
    ),
    rows_before=st.integers(0, 3),
)
def test_the_first_bad_coordinate_is_reported_by_row(rings: list[list[list[float]]], rows_before: int) -> None:
    good = {"object_id": "ok", "geometry": [[[0.0, 1.0], [1.0, 2.0]]]}
    rows = [dict(good, object_id=f"ok{i}") for i in range(rows_before)] + [{"object_id": "x", "geometry": rings}]
    bad = any(len(p) != 2 for ring in rings for p in ring)
    if not bad:
        shapes.make_shape_table(rows, geometry_encoding="geoarrow.polygon")
        return
    with pytest.raises(SchemaError, match=f"geometry row {rows_before} coordinate"):
        shapes.make_shape_table(rows, geometry_encoding="geoarrow.polygon")


def test_tampered_metadata_is_refused(tmp_path: Path) -> None:
    table = shapes.make_shape_table(ROWS, geometry_encoding="geoarrow.polygon")
    meta = dict(table.schema.metadata)
    meta[shapes.OME_ARROW_SHAPES_METADATA_KEY] = b"{not json"
    with pytest.raises(SchemaError, match="not JSON"):
        shapes.validate_shape_table(table.replace_schema_metadata(meta))
    meta[shapes.OME_ARROW_SHAPES_METADATA_KEY] = (
        b'{"type": "ome.arrow.shapes", "geometry_encoding": "geoarrow.point", "axes": ["y", "x"]}'
    )
    with pytest.raises(SchemaError, match="has type"):
        shapes.validate_shape_table(table.replace_schema_metadata(meta))
    with pytest.raises(SchemaError, match="object_id values"):
        shapes.validate_shape_table(table.set_column(0, pa.field("object_id", pa.string()), pa.array([None, "y"])))
