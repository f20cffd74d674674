"""Files written by ome-arrow 0.1.0 and legacy CytoDataFrame tables read back exactly.

tests/data/reference/expected.json describes each fixture and how to regenerate its pixels
(in TCZYX order); ours are TZCYX, so reads are transposed before comparing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import LazyTensorView, OMEArrow, OMEArrowDataset, SchemaError
from ome_arrow_core.errors import ArgumentError
from ome_arrow_core.record import pixels_to_record

REF = Path(__file__).resolve().parent / "data" / "reference"
EXPECTED = json.loads((REF / "expected.json").read_text())
CASES = [(fx, im) for fx in EXPECTED["fixtures"] for im in fx["images"]]
IDS = [f"{fx['path']}[{im.get('image_id', im.get('row_index'))}]" for fx, im in CASES]


def regenerate(fixture: dict[str, Any], image: dict[str, Any]) -> np.ndarray:
    """The generator of expected.json, in its TCZYX order."""
    T, C, Z, Y, X = fixture["shape_tczyx"]
    a = ((np.arange(T * C * Z * Y * X, dtype=np.int64) * 7 + image["offset"]) % 65521).astype(np.uint16)
    a = a.reshape(T, C, Z, Y, X)
    return a.astype(np.float32) / 4 if fixture["dtype"] == "float32" else a


def open_kwargs(fixture: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    if fixture["kind"] == "dataset_dir":
        return {"image_id": image["image_id"]}
    return {"column": fixture["column"], "row": image["row_index"]}


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()


def test_expected_json_describes_every_fixture() -> None:
    on_disk = {p.name for p in REF.iterdir() if p.name.startswith("oa010_")}
    assert {fx["path"] for fx in EXPECTED["fixtures"]} == on_disk
    assert EXPECTED["axis_order"] == "TCZYX"
    assert all(fx["verified_with_ome_arrow_0_1_0"] for fx in EXPECTED["fixtures"])


@pytest.mark.parametrize(("fixture", "image"), CASES, ids=IDS)
def test_eager_read_equals_the_generator(fixture: dict[str, Any], image: dict[str, Any]) -> None:
    expected = regenerate(fixture, image)
    assert sha256(expected) == image["sha256"]  # the generator still matches the recorded hash
    img = OMEArrow(REF / fixture["path"], **open_kwargs(fixture, image))
    assert not img.is_lazy
    assert img.dtype == np.dtype(fixture["dtype"])
    assert img.sizes == fixture["sizes"]
    got = img.to_numpy()
    assert sha256(got) == image["sha256"]  # TCZYX, as generated
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), expected.transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(img.tensor_view(layout="TCZYX").to_numpy(), expected)


@pytest.mark.parametrize(("fixture", "image"), CASES, ids=IDS)
def test_scan_and_view_equal_the_generator(fixture: dict[str, Any], image: dict[str, Any]) -> None:
    expected = regenerate(fixture, image)
    lazy = OMEArrow.scan(REF / fixture["path"], **open_kwargs(fixture, image))
    assert lazy.is_lazy and lazy.sizes == fixture["sizes"] and lazy.dtype == np.dtype(fixture["dtype"])
    whole = lazy.tensor_view(layout="TCZYX")
    assert isinstance(whole, LazyTensorView)
    assert sha256(whole.to_numpy(contiguous=True)) == image["sha256"]
    crop = lazy.tensor_view(t=0, z=[2, 0], c=1, roi=(5, 3, 40, 27), layout="ZHW")
    np.testing.assert_array_equal(crop.to_numpy(), expected[0, 1, [2, 0], 3:30, 5:45])


@settings(max_examples=40, deadline=None)
@given(data=st.data(), case=st.sampled_from(CASES))
def test_random_crops_of_reference_files(data: st.DataObject, case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    fixture, image = case
    expected = regenerate(fixture, image)  # TCZYX
    _, C, Z, Y, X = expected.shape
    y0, x0 = data.draw(st.integers(0, Y - 1)), data.draw(st.integers(0, X - 1))
    h, w = data.draw(st.integers(1, Y - y0)), data.draw(st.integers(1, X - x0))
    z = data.draw(st.lists(st.integers(0, Z - 1), min_size=1, max_size=3))
    c = data.draw(st.lists(st.integers(0, C - 1), min_size=1, max_size=2))
    view = OMEArrow.scan(REF / fixture["path"], **open_kwargs(fixture, image)).tensor_view(
        t=0, z=z, c=c, roi=(x0, y0, w, h), layout="CZYX"
    )
    np.testing.assert_array_equal(view.to_numpy(), expected[0][np.ix_(c, z, range(y0, y0 + h), range(x0, x0 + w))])


def test_the_only_struct_column_is_found_without_a_name() -> None:
    img = OMEArrow(REF / "oa010_planes_only.parquet")
    assert img.sizes == {"T": 1, "Z": 3, "C": 2, "Y": 32, "X": 48}
    assert img.info()["column"] == "ome_arrow"


def test_dataset_images_by_row_and_by_id() -> None:
    path = REF / "oa010_dataset_tiles_two_images.ome-arrow"
    by_row = OMEArrow(path, row=1).to_numpy()
    by_id = OMEArrow(path, image_id="image-00001").to_numpy()
    np.testing.assert_array_equal(by_row, by_id)
    with pytest.raises(SchemaError, match=r"image_id 'nope' not in .*ids: \['image-00000', 'image-00001'\]"):
        OMEArrow(path, image_id="nope")
    with pytest.raises(ArgumentError, match=r"row 2 out of range; .* holds images 0..1"):
        OMEArrow(path, row=2)


# -- legacy CytoDataFrame-style tables ------------------------------------------------------------
def legacy_record(a: np.ndarray, ome_type: str, name: str, rng: np.random.Generator) -> dict[str, Any]:
    """An old-style record: fields in alphabetical order, int64/double, list<int64> pixels, no chunks."""
    T, C, Z, Y, X = a.shape
    planes = [
        {"c": c, "pixels": a[t, c, z].reshape(-1).astype(np.int64).tolist(), "t": t, "z": z}
        for t in range(T)
        for c in range(C)
        for z in range(Z)
    ]
    planes = [planes[i] for i in rng.permutation(len(planes))]  # planes are placed by t/c/z, not by position
    pixels_meta = {
        "channels": [{"id": f"Channel:0:{c}", "name": f"{name}-ch{c}"} for c in range(C)],
        "dimension_order": "XYZCT",
        "physical_size_x": 0.325,
        "physical_size_x_unit": "µm",
        "physical_size_y": 0.325,
        "physical_size_y_unit": "µm",
        "physical_size_z": 2.0,
        "physical_size_z_unit": "µm",
        "size_c": C,
        "size_t": T,
        "size_x": X,
        "size_y": Y,
        "size_z": Z,
        "type": ome_type,
    }
    return {
        "acquisition_datetime": None,
        "id": name,
        "image_type": "image",
        "name": name,
        "pixels_meta": pixels_meta,
        "planes": planes,
        "type": "ome.arrow",
        "version": "0.0.1",
    }


@pytest.fixture(scope="module")
def legacy_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[np.ndarray]]]:
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 4096, size=(1, 2, 3, 9, 11), dtype=np.uint16) for _ in range(2)]  # TCZYX
    masks = [rng.integers(0, 255, size=(1, 1, 1, 9, 11), dtype=np.uint8) for _ in range(2)]
    table = pa.table(
        {
            "Metadata_Well": ["A01", "B07"],
            "Image_OMEArrow_ORIG": pa.array(
                [legacy_record(a, "uint16", f"orig{i}", rng) for i, a in enumerate(images)]
            ),
            "Mask_OMEArrow_LABL": pa.array([legacy_record(m, "uint8", f"labl{i}", rng) for i, m in enumerate(masks)]),
        }
    )
    struct = table.schema.field("Image_OMEArrow_ORIG").type
    names = [struct.field(i).name for i in range(struct.num_fields)]
    assert names == sorted(names) and "chunks" not in names and "chunk_grid" not in names
    assert struct.field("planes").type.value_type.field("pixels").type == pa.list_(pa.int64())
    path = tmp_path_factory.mktemp("legacy") / "cytodataframe.parquet"
    pq.write_table(table, path, row_group_size=1)  # row 1 lives in the second row group
    return path, {"Image_OMEArrow_ORIG": images, "Mask_OMEArrow_LABL": masks}


@pytest.mark.parametrize("column", ["Image_OMEArrow_ORIG", "Mask_OMEArrow_LABL"])
@pytest.mark.parametrize("row", [0, 1])
def test_legacy_table_columns_and_rows(
    legacy_table: tuple[Path, dict[str, list[np.ndarray]]], column: str, row: int
) -> None:
    path, arrays = legacy_table
    expected = arrays[column][row]  # TCZYX
    img = OMEArrow(path, column=column, row=row)
    assert img.dtype == expected.dtype
    np.testing.assert_array_equal(img.to_numpy(), expected)
    assert img.meta.name == {"Image_OMEArrow_ORIG": "orig", "Mask_OMEArrow_LABL": "labl"}[column] + str(row)
    assert img.meta.physical_size == {"X": 0.325, "Y": 0.325, "Z": 2.0}
    assert [c.id for c in img.meta.channels] == [f"Channel:0:{c}" for c in range(expected.shape[1])]
    lazy = OMEArrow.scan(path, column=column, row=row).tensor_view(t=0, z=0, c=0, roi=(2, 1, 6, 5), layout="YX")
    np.testing.assert_array_equal(lazy.to_numpy(), expected[0, 0, 0, 1:6, 2:8])
    # the same table in memory
    in_memory = OMEArrow(pq.read_table(path), column=column, row=row)
    np.testing.assert_array_equal(in_memory.to_numpy(), img.to_numpy())


def test_legacy_table_needs_a_column(legacy_table: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    path, _ = legacy_table
    with pytest.raises(
        SchemaError,
        match=r"several OME-Arrow columns \['Image_OMEArrow_ORIG', 'Mask_OMEArrow_LABL'\]; pick one with column=",
    ):
        OMEArrow(path)
    with pytest.raises(SchemaError, match=r"several OME-Arrow columns .*Image_OMEArrow_ORIG.*Mask_OMEArrow_LABL"):
        OMEArrow(pq.read_table(path))
    with pytest.raises(SchemaError, match=r"column 'Metadata_Well' is not an OME-Arrow record"):
        OMEArrow(path, column="Metadata_Well")
    with pytest.raises(
        SchemaError,
        match=r"column 'Nuclei' not found; OME-Arrow columns here: \['Image_OMEArrow_ORIG', 'Mask_OMEArrow_LABL'\]",
    ):
        OMEArrow(path, column="Nuclei")
    with pytest.raises(ArgumentError, match=r"row 2 is out of range; .* has rows 0..1"):
        OMEArrow(path, column="Image_OMEArrow_ORIG", row=2)


def test_a_dataset_of_one_record_of_two_columns_opens_the_column_asked_for(tmp_path: Path) -> None:
    """A Parquet file of one row and two record columns (an image and its mask, no metadata columns) is one image
    file: ``OMEArrowDataset.scan(column=)`` lost the column on the way to it, and opening it asked for one."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 4096, (1, 2, 1, 5, 6), dtype=np.uint16)
    mask = (image > 2000).astype(np.uint8)
    records = {
        n: pixels_to_record(OMEArrow(a, "TCZYX").meta, a.transpose(0, 2, 1, 3, 4))  # records hold TZCYX
        for n, a in (("image", image), ("mask", mask))
    }
    pq.write_table(pa.table(records), tmp_path / "one.parquet")
    for column, truth in (("image", image), ("mask", mask)):
        ds = OMEArrowDataset.scan(tmp_path / "one.parquet", column=column)
        got = ds[0].to_numpy(layout="TCZYX")
        assert len(ds) == 1 and got.dtype == truth.dtype and np.array_equal(got, truth)
    with pytest.raises(SchemaError, match=r"one.parquet.*several OME-Arrow columns \['image', 'mask'\]"):
        OMEArrowDataset.scan(tmp_path / "one.parquet")


def test_values_that_do_not_fit_the_declared_type_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    record = legacy_record(np.full((1, 1, 1, 2, 2), 300, np.uint16), "uint8", "bad", rng)
    with pytest.raises(SchemaError, match="do not fit the declared pixel type uint8"):
        OMEArrow(record)


# -- records in memory ---------------------------------------------------------------------------
def test_in_memory_arrow_records_of_every_container() -> None:
    a = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    parts = [OMEArrow(a[i : i + 1], "CYX").export("arrow") for i in range(3)]  # one-row StructArrays
    flat = pa.concat_arrays(parts)
    batch = pa.RecordBatch.from_arrays([pa.array(["x", "y", "z"]), flat], names=["well", "img"])
    sources = {
        "StructArray": flat,
        "ChunkedArray": pa.chunked_array([parts[0], pa.concat_arrays(parts[1:])]),
        "RecordBatch": batch,
        "Table": pa.Table.from_batches([batch, batch]).slice(0, 3),
    }
    for name, src in sources.items():
        for row in range(3):
            got = OMEArrow(src, row=row).tensor_view(layout="YX").to_numpy()
            np.testing.assert_array_equal(got, a[row], err_msg=f"{name} row {row}")
    np.testing.assert_array_equal(OMEArrow(flat[2]).tensor_view(layout="YX").to_numpy(), a[2])  # a StructScalar
    with pytest.raises(SchemaError, match=r"row 3 is out of range; the table has rows 0..2"):
        OMEArrow(flat, row=3)
