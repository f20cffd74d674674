"""In-memory records keep the stored OME-XML: export("dict"/"scalar"/"arrow"), OMEArrow(record) and the compat
record functions carry it (a dict key; the struct type's pixels_meta field metadata), so OME-TIFF -> record ->
OME-TIFF keeps the OME model (checked with ome-types); the reference still reads the records; a record whose
pixels or identity changed gets none of it, and an entry that lies about the image is refused."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ome_types = pytest.importorskip("ome_types")
pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

import ome_arrow_core.compat as compat  # noqa: E402
from ome_arrow_core import OMEArrow  # noqa: E402
from ome_arrow_core.errors import DamagedFileError, SchemaError  # noqa: E402
from ome_arrow_core.record.memory_xml import FIELD, METADATA_KEY  # noqa: E402
from ome_arrow_core.record.ome_xml_key import KEY  # noqa: E402
from tests.backends.ome_rich import assert_same_ome, image_with_ome_xml, lies  # noqa: E402
from tests.pixels import random_pixels  # noqa: E402


def _record(img: OMEArrow, how: str) -> Any:
    if how == "table":
        return pa.table({"img": img.export("arrow")})
    if how == "parquet table":  # through Parquet's stored Arrow schema, read back with pyarrow alone
        buf = io.BytesIO()
        pq.write_table(pa.table({"img": img.export("arrow")}), buf)
        return pq.read_table(io.BytesIO(buf.getvalue()))
    return img.export(how)


@pytest.mark.parametrize("how", ["dict", "scalar", "arrow", "table", "parquet table"])
@pytest.mark.parametrize("scan", [True, False])
def test_a_record_in_memory_keeps_the_ome_model(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, how: str, scan: bool
) -> None:
    path, model, pixels = rich
    img = OMEArrow.scan(path) if scan else OMEArrow(path)
    back = OMEArrow(_record(img, how))
    assert_same_ome(back.ome_metadata, model)
    np.testing.assert_array_equal(back.to_numpy(layout="TZCYX"), pixels)
    back.export("ome-tiff", tmp_path / "again.ome.tif")
    assert_same_ome(ome_types.from_tiff(tmp_path / "again.ome.tif"), model)
    back.export("parquet", tmp_path / "r.ome.parquet", layout="record")  # and a record file from it, again
    assert_same_ome(OMEArrow(tmp_path / "r.ome.parquet").ome_metadata, model)


def test_the_reference_reads_records_that_carry_it(rich: tuple[Path, Any, np.ndarray], tmp_path: Path) -> None:
    ome_arrow = pytest.importorskip("ome_arrow")
    from ome_arrow.ingest import from_ome_parquet as ref_from_ome_parquet
    from ome_arrow.meta import OME_ARROW_STRUCT
    from ome_arrow.utils import verify_ome_arrow

    path, _, pixels = rich
    img = OMEArrow(path)
    want = pixels.transpose(0, 2, 1, 3, 4)  # the reference's TCZYX
    scalar, record = img.export("scalar"), img.export("dict")
    assert scalar.type == OME_ARROW_STRUCT and FIELD in record  # equal types: field metadata does not count
    assert scalar.type.field("pixels_meta").metadata is not None
    assert verify_ome_arrow(record, OME_ARROW_STRUCT)
    for one in (scalar, record):
        np.testing.assert_array_equal(ome_arrow.OMEArrow(one).export(how="numpy"), want)
    pq.write_table(pa.table({"ome_arrow": img.export("arrow")}), tmp_path / "t.parquet")
    got = ref_from_ome_parquet(str(tmp_path / "t.parquet"), strict_schema=True)
    np.testing.assert_array_equal(ome_arrow.OMEArrow(got).export(how="numpy"), want)


def test_a_record_file_stores_it_once(rich: tuple[Path, Any, np.ndarray], tmp_path: Path) -> None:
    img = OMEArrow(rich[0])
    OMEArrow(img.export("scalar")).export("parquet", tmp_path / "r.ome.parquet", layout="record")
    schema = pq.read_schema(tmp_path / "r.ome.parquet")
    assert KEY in schema.metadata  # the file's own place for it
    assert schema.field("ome_arrow").type.field("pixels_meta").metadata is None  # not a second copy


def test_a_record_whose_pixels_or_identity_changed_gets_none_of_it(rich: tuple[Path, Any, np.ndarray]) -> None:
    img = OMEArrow(rich[0])
    record = img.export("dict")
    record["planes"][0]["pixels"][0] ^= 1  # pixels edited after the export
    edited = OMEArrow(record)
    assert (
        edited.meta.ome_xml is None
        and edited.to_numpy(layout="TZCYX")[0, 0, 0, 0, 0] == record["planes"][0]["pixels"][0]
    )
    renamed = img.export("dict")
    renamed["name"] = "another image"
    assert OMEArrow(renamed).meta.ome_xml is None
    other = OMEArrow(np.ones((1, 2, 3, 16, 12), np.uint16), dim_order="TZCYX").export("arrow")
    mine = img.export("arrow")
    joined = pa.concat_arrays([mine, other.cast(mine.type)])  # the joined type keeps the first array's metadata
    assert joined.type.field("pixels_meta").metadata is not None
    assert OMEArrow(joined, row=0).meta.ome_xml is not None
    assert OMEArrow(joined, row=1).meta.ome_xml is None  # the entry was made for row 0's pixels
    assert OMEArrow(joined.slice(1)).meta.ome_xml is None
    crop = img.slice_lazy(2, 10, 4, 12)
    assert FIELD not in crop.export("dict") and crop.export("scalar").type.field("pixels_meta").metadata is None


@pytest.mark.parametrize("case", list(lies("<x/>")))
def test_an_entry_that_lies_about_the_image_is_refused(rich: tuple[Path, Any, np.ndarray], case: str) -> None:
    record = OMEArrow(rich[0]).export("dict")
    record[FIELD]["xml"] = lies(record[FIELD]["xml"])[case]
    with pytest.raises(SchemaError, match=case):
        OMEArrow(record)


@pytest.mark.parametrize("entry", ["<OME/>", {"id": "x"}, 7])
def test_an_entry_that_is_not_one_is_refused(rich: tuple[Path, Any, np.ndarray], entry: Any) -> None:
    record = OMEArrow(rich[0]).export("dict")
    record[FIELD] = entry
    with pytest.raises(SchemaError, match="ome_xml entry"):
        OMEArrow(record)


def test_damaged_type_metadata_is_refused(rich: tuple[Path, Any, np.ndarray]) -> None:
    arr = OMEArrow(rich[0]).export("arrow")
    fields = [f.with_metadata({METADATA_KEY: b"{not json"}) if f.name == "pixels_meta" else f for f in arr.type]
    bad = pa.StructArray.from_arrays([arr.field(i) for i in range(arr.type.num_fields)], fields=fields)
    with pytest.raises(SchemaError, match="not JSON"):
        OMEArrow(bad)


def test_the_compat_record_functions_carry_it(rich: tuple[Path, Any, np.ndarray], tmp_path: Path) -> None:
    path, model, pixels = rich
    scalar = compat.from_tiff(str(path))
    assert scalar.type.field("pixels_meta").metadata is not None
    assert OMEArrow(scalar).ome_metadata.images[0].pixels.planes == model.images[0].pixels.planes
    compat.to_ome_parquet(scalar, str(tmp_path / "c.parquet"))
    schema = pq.read_schema(tmp_path / "c.parquet")
    assert KEY in schema.metadata and schema.field("image").type.field("pixels_meta").metadata is None
    assert OMEArrow(tmp_path / "c.parquet").ome_metadata.instruments == model.instruments
    again = compat.from_ome_parquet(str(tmp_path / "c.parquet"), column_name="image")
    assert OMEArrow(again).ome_metadata.instruments == model.instruments
    compat.to_ome_tiff(again, str(tmp_path / "c.ome.tif"))
    written = ome_types.from_tiff(tmp_path / "c.ome.tif")
    assert written.instruments == model.instruments
    assert written.images[0].pixels.planes == model.images[0].pixels.planes
    record = compat.OMEArrow(str(path)).export("dict")
    assert FIELD in record
    assert OMEArrow(compat.OMEArrow(record).data).ome_metadata.instruments == model.instruments
    np.testing.assert_array_equal(compat.to_numpy(record), pixels.transpose(0, 2, 1, 3, 4))


def test_compat_reading_a_record_file_whose_stored_ome_xml_lies_is_a_damaged_file(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "r.ome.parquet"
    OMEArrow(rich[0]).export("parquet", out, layout="record")
    table = pq.read_table(out)
    doc = table.schema.metadata[KEY].decode()
    lie = doc.replace('SizeC=\\"3\\"', 'SizeC=\\"2\\"', 1)
    assert lie != doc
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, KEY: lie.encode()}), out)
    with pytest.raises(DamagedFileError, match="describes sizes") as err:
        compat.from_ome_parquet(str(out))
    assert str(out) in str(err.value)


DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(*(st.integers(1, n) for n in (2, 3, 3, 9, 9))),
    dtype=st.sampled_from(DTYPES),
    how=st.sampled_from(["dict", "scalar", "arrow"]),
    seed=st.integers(0, 1000),
)
def test_any_image_with_an_ome_xml_keeps_it_through_a_record_and_only_while_its_pixels_stay(
    shape: tuple[int, ...], dtype: str, how: str, seed: int
) -> None:
    pixels = random_pixels(shape, dtype, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        img = image_with_ome_xml(pixels, Path(tmp), ome_types)
        back = OMEArrow(img.export(how))
        assert back.meta.ome_xml == img.meta.ome_xml
        np.testing.assert_array_equal(back.to_numpy(layout="TZCYX"), pixels)
        record = img.export("dict")
        plane = record["planes"][seed % len(record["planes"])]["pixels"]
        at = seed % len(plane)
        if dtype == "bool":
            plane[at] = not plane[at]
        elif np.dtype(dtype).kind == "f":
            plane[at] = 2.0 if plane[at] != 2.0 else 3.0  # exact in float32 too
        else:
            plane[at] = plane[at] + 1 if plane[at] < 100 else plane[at] - 1
        assert OMEArrow(record).meta.ome_xml is None  # another image now: the entry is not its


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_an_ome_tiff_of_a_reference_record_is_read_by_the_reference_and_ome_types(dtype: str, tmp_path: Path) -> None:
    """ome-arrow 0.1.0's records say 0.0 for unknown wavelengths; written as EmissionWavelength="0.0" (OME's are
    positive) the OME-TIFF was refused by ome-types, bioio-ome-tiff and so the reference, and ome_metadata raised."""
    ome_arrow = pytest.importorskip("ome_arrow", reason="needs the reference package ome-arrow 0.1.0")
    a = random_pixels((1, 2, 3, 8, 9), dtype, seed=7)  # TCZYX
    record = tmp_path / "ref.parquet"
    ome_arrow.to_ome_parquet(ome_arrow.from_numpy(a, clamp_to_uint16=False, chunk_encoding="bytes"), str(record))
    img = OMEArrow.scan(record)
    assert img.meta.channels[0].emission_um == 0.0  # as the reference stored it
    assert img.ome_metadata.images[0].pixels.channels[0].emission_wavelength is None
    out = img.export("ome-tiff", tmp_path / "ours.ome.tiff")
    assert ome_types.from_tiff(out).images[0].pixels.channels[1].name == "C1"
    theirs = ome_arrow.OMEArrow(str(out)).export(how="numpy", dtype=a.dtype)
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), a)
    if dtype == "uint16":  # (the reference reads a TIFF as uint16, casting other dtypes)
        np.testing.assert_array_equal(theirs, a)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("unit", ["um", "micron"])
def test_a_reference_record_s_um_spelling_becomes_ome_s_unit_in_an_ome_tiff(unit: str, tmp_path: Path) -> None:
    """A record spelling µm "um" or "micron" (ome-arrow 0.1.0 stores physical_size_unit as given) gave an OME-TIFF
    with PhysicalSizeXUnit="um", which OME readers (and so the reference) refuse."""
    ome_arrow = pytest.importorskip("ome_arrow", reason="needs the reference package ome-arrow 0.1.0")
    a = random_pixels((1, 1, 2, 8, 9), "uint16", seed=8)
    record = tmp_path / "ref.parquet"
    ome_arrow.to_ome_parquet(ome_arrow.from_numpy(a, physical_size_x=0.5, physical_size_unit=unit), str(record))
    out = OMEArrow.scan(record).export("ome-tiff", tmp_path / "ours.ome.tiff")
    pixels = ome_types.from_tiff(out).images[0].pixels
    assert (pixels.physical_size_x, pixels.physical_size_x_unit.value) == (0.5, "µm")
    np.testing.assert_array_equal(ome_arrow.OMEArrow(str(out)).export(how="numpy"), a)
