"""The full OME model through our formats: OME-TIFF -> Parquet (dataset or record) -> OME-TIFF keeps planes,
instrument, objective settings, channel colours and settings, and annotations with their links (checked with
ome-types); a crop or channel subset keeps none of it; a damaged or lying stored OME-XML is a DamagedFileError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ome_types = pytest.importorskip("ome_types")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset  # noqa: E402
from ome_arrow_core.errors import DamagedFileError  # noqa: E402
from ome_arrow_core.record.ome_xml_key import KEY  # noqa: E402
from tests.backends.ome_rich import CHECKSUMS_NS, assert_same_ome, lies  # noqa: E402
from tests.table_digests import without_table_digests  # noqa: E402


def _parquet(img: OMEArrow, out: Path, how: str) -> OMEArrow:
    if how == "dataset":
        img.export("parquet", out)
        return OMEArrowDataset.scan(out)[0]
    if how == "write_dataset":
        write_dataset([img], out, progress=False)
        return OMEArrow(out)
    img.export("parquet", out, layout="record")
    return OMEArrow.scan(out)


@pytest.mark.parametrize("how", ["dataset", "write_dataset", "record"])
@pytest.mark.parametrize("scan", [True, False])
def test_ome_tiff_to_parquet_to_ome_tiff_keeps_the_ome_model(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, how: str, scan: bool
) -> None:
    path, model, pixels = rich
    img = OMEArrow.scan(path) if scan else OMEArrow(path)
    assert_same_ome(img.ome_metadata, model)
    back = _parquet(img, tmp_path / "p.ome.parquet", how)
    assert_same_ome(back.ome_metadata, model)
    np.testing.assert_array_equal(back.to_numpy(layout="TZCYX"), pixels)
    back.export("ome-tiff", tmp_path / "again.ome.tif")
    written = ome_types.from_tiff(tmp_path / "again.ome.tif")
    assert_same_ome(written, model)
    assert [a.namespace for a in written.structured_annotations.map_annotations].count(CHECKSUMS_NS) == 1
    again = OMEArrow(tmp_path / "again.ome.tif")  # our reader checks the new file's checksums
    np.testing.assert_array_equal(again.to_numpy(layout="TZCYX"), pixels)
    assert_same_ome(again.ome_metadata, model)  # and a second trip keeps it all again
    again.export("parquet", tmp_path / "twice.ome.parquet", layout="record")
    OMEArrow(tmp_path / "twice.ome.parquet").export("ome-tiff", tmp_path / "twice.ome.tif")
    assert_same_ome(ome_types.from_tiff(tmp_path / "twice.ome.tif"), model)


def _stored(img: OMEArrow) -> Any:
    return ome_types.from_xml(img.meta.ome_xml)


def test_the_stored_document_is_the_one_image_without_file_layout(rich: tuple[Path, Any, np.ndarray]) -> None:
    path, model, _ = rich
    stored = _stored(OMEArrow.scan(path))
    assert len(stored.images) == 1 and stored.images[0].pixels.tiff_data_blocks == []
    assert stored.images[0].pixels.metadata_only is not None
    assert stored.instruments == model.instruments


@pytest.mark.parametrize("how", ["dataset", "record"])
def test_a_crop_or_channel_subset_keeps_none_of_the_stored_model(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, how: str
) -> None:
    path, model, _ = rich
    img = OMEArrow.scan(path)
    crop = img.slice_lazy(2, 10, 4, 12)  # every plane, a smaller field: the positions would lie
    sub = img.slice_lazy(0, 12, 0, 16, c_indices=[2, 0])
    one_t = img.slice_lazy(0, 12, 0, 16, t_indices=[1])
    for k, part in enumerate((crop, sub, one_t)):
        assert part.meta.ome_xml is None
        copy = _parquet(part, tmp_path / f"{k}.ome.parquet", how)
        assert copy.meta.ome_xml is None
        copy.export("ome-tiff", tmp_path / f"{k}.ome.tif")
        written = ome_types.from_tiff(tmp_path / f"{k}.ome.tif")
        assert written.instruments == [] and written.images[0].pixels.planes == []
        assert written.images[0].instrument_ref is None and written.images[0].annotation_refs == []
        assert [a.namespace for a in written.structured_annotations.map_annotations] == [CHECKSUMS_NS]
    subset = ome_types.from_tiff(tmp_path / "1.ome.tif").images[0].pixels.channels
    want = model.images[0].pixels.channels
    assert [(c.name, c.color) for c in subset] == [(want[i].name, want[i].color) for i in (2, 0)]
    # what ImageMeta keeps of each channel follows the channels kept (a record stores wavelengths as float32)
    assert [c.emission_wavelength for c in subset] == [pytest.approx(want[i].emission_wavelength) for i in (2, 0)]
    whole = img.slice_lazy(0, 12, 0, 16)  # a selection of everything is the whole image
    assert whole.meta.ome_xml == img.meta.ome_xml


def _dataset_with_xml(tmp_path: Path, rich: tuple[Path, Any, np.ndarray], xml: Any) -> Path:
    out = tmp_path / "d.ome.parquet"
    OMEArrow.scan(rich[0]).export("parquet", out)
    images = pq.read_table(out / "images.parquet")
    at = images.schema.get_field_index("ome_xml")
    column = pa.array([xml], pa.string()) if isinstance(xml, str) else pa.array([xml])
    meta = images.schema.metadata
    pq.write_table(images.set_column(at, "ome_xml", column).replace_schema_metadata(meta), out / "images.parquet")
    return without_table_digests(out)


@pytest.mark.parametrize("case", list(lies("<x/>")))
def test_a_lying_stored_ome_xml_in_a_dataset_is_a_damaged_file(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, case: str
) -> None:
    xml = OMEArrow.scan(rich[0]).meta.ome_xml
    bad = lies(xml)[case]
    assert bad != xml
    out = _dataset_with_xml(tmp_path, rich, bad)
    with pytest.raises(DamagedFileError, match=case) as err:
        OMEArrow(out)
    assert str(out) in str(err.value) and "stored OME-XML" in str(err.value)
    with pytest.raises(DamagedFileError, match=str(out).replace(".", r"\.")):
        OMEArrowDataset.scan(out)[0]


def test_a_dataset_without_the_column_or_with_null_reads_as_before(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path
) -> None:
    out = _dataset_with_xml(tmp_path, rich, None)
    assert OMEArrow(out).meta.ome_xml is None
    images = pq.read_table(out / "images.parquet")
    pq.write_table(
        images.drop_columns(["ome_xml"]).replace_schema_metadata(images.schema.metadata), out / "images.parquet"
    )
    without_table_digests(out)
    img = OMEArrow(out)
    assert img.meta.ome_xml is None and img.ome_metadata.creator == "ome-arrow-core"


def _record_with(tmp_path: Path, rich: tuple[Path, Any, np.ndarray], value: bytes) -> Path:
    out = tmp_path / "r.ome.parquet"
    OMEArrow.scan(rich[0]).export("parquet", out, layout="record")
    table = pq.read_table(out)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, KEY: value}), out)
    return out


@pytest.mark.parametrize("case", list(lies("<x/>")))
def test_a_lying_stored_ome_xml_in_a_record_file_is_a_damaged_file(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, case: str
) -> None:
    xml = OMEArrow.scan(rich[0]).meta.ome_xml
    out = _record_with(tmp_path, rich, json.dumps({"column": "ome_arrow", "rows": [lies(xml)[case]]}).encode())
    for opener in (OMEArrow, OMEArrow.scan):
        with pytest.raises(DamagedFileError, match=case) as err:
            opener(out)
        assert str(out) in str(err.value)


@pytest.mark.parametrize(
    "value",
    [b"{not json", b'{"column": "ome_arrow"}', b'{"column": 3, "rows": []}', b'{"column": "ome_arrow", "rows": [7]}'],
)
def test_a_damaged_ome_xml_entry_of_a_record_file_is_a_damaged_file(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, value: bytes
) -> None:
    out = _record_with(tmp_path, rich, value)
    with pytest.raises(DamagedFileError, match="ome_arrow_core.ome_xml") as err:
        OMEArrow(out)
    assert str(out) in str(err.value)


def test_the_reference_reads_our_files_with_the_stored_ome_xml(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path
) -> None:
    ome_arrow = pytest.importorskip("ome_arrow")
    path, _, pixels = rich
    img = OMEArrow.scan(path)
    img.export("parquet", tmp_path / "r.ome.parquet", layout="record")
    img.export("parquet", tmp_path / "d.ome.parquet")
    ref = ome_arrow.OMEArrow(str(tmp_path / "r.ome.parquet"))
    np.testing.assert_array_equal(ref.export(how="numpy"), pixels.transpose(0, 2, 1, 3, 4))
    from ome_arrow.dataset import OMEArrowDataset as RefDataset

    got = RefDataset(str(tmp_path / "d.ome.parquet")).read_image(None)
    np.testing.assert_array_equal(np.asarray(got), pixels.transpose(0, 2, 1, 3, 4))


def test_appending_to_a_dataset_written_before_the_column(rich: tuple[Path, Any, np.ndarray], tmp_path: Path) -> None:
    path, model, pixels = rich
    out = tmp_path / "d.ome.parquet"
    write_dataset([np.zeros((2, 4, 4), np.uint8)], out, progress=False)
    images = pq.read_table(out / "images.parquet")
    stripped = images.drop_columns(["ome_xml"]).replace_schema_metadata(images.schema.metadata)
    pq.write_table(stripped, out / "images.parquet")  # as written by ome-arrow-core 0.1
    without_table_digests(out)
    write_dataset([OMEArrow.scan(path)], out, mode="append", progress=False)
    ds = OMEArrowDataset.scan(out)
    assert ds[0].meta.ome_xml is None
    assert_same_ome(ds[1].ome_metadata, model)
    np.testing.assert_array_equal(ds[1].to_numpy(layout="TZCYX"), pixels)


def test_the_image_of_a_multi_image_ome_tiff_keeps_its_own_image(tmp_path: Path) -> None:
    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as tw:
        tw.write(np.zeros((2, 8, 8), np.uint8), photometric="minisblack", metadata={"axes": "CYX", "Name": "first"})
        tw.write(np.ones((3, 4, 4), np.uint16), photometric="minisblack", metadata={"axes": "ZYX", "Name": "second"})
    second = OMEArrow(tmp_path / "two.ome.tif", row=1)
    assert [i.name for i in ome_types.from_xml(second.meta.ome_xml).images] == ["second"]
    second.export("parquet", tmp_path / "s.ome.parquet", layout="record")
    OMEArrow(tmp_path / "s.ome.parquet").export("ome-tiff", tmp_path / "s.ome.tif")
    written = ome_types.from_tiff(tmp_path / "s.ome.tif")
    assert [i.name for i in written.images] == ["second"] and written.images[0].pixels.size_z == 3


def test_an_rgb_ome_tiff_goes_through_with_its_samples_as_channels(tmp_path: Path) -> None:
    data = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    tifffile.imwrite(tmp_path / "rgb.ome.tif", data, ome=True, photometric="rgb", metadata={"Name": "colour"})
    img = OMEArrow(tmp_path / "rgb.ome.tif")
    assert img.sizes["C"] == 3 and img.meta.ome_xml is not None  # one Channel of 3 samples describes C=3
    img.export("parquet", tmp_path / "rgb.ome.parquet")
    back = OMEArrow(tmp_path / "rgb.ome.parquet")
    back.export("ome-tiff", tmp_path / "rgb2.ome.tif")  # 3 one-sample channels
    written = ome_types.from_tiff(tmp_path / "rgb2.ome.tif")
    assert written.images[0].name == "colour" and written.images[0].pixels.size_c == 3
    np.testing.assert_array_equal(
        OMEArrow(tmp_path / "rgb2.ome.tif").to_numpy(layout="TZCYX")[0, 0], data.transpose(2, 0, 1)
    )


def _rgb_ome(samples: int) -> Any:
    """One Image of one Channel of ``samples`` samples per pixel, with every channel setting."""
    m = ome_types.model
    channel = m.Channel(
        id="Channel:0:0",
        name="brightfield",
        samples_per_pixel=samples,
        color=m.Color((255, 128, 0)),
        emission_wavelength=520.0,
        excitation_wavelength=480.0,
        fluor="none",
        pinhole_size=2.0,
        illumination_type="Transmitted",
        contrast_method="Brightfield",
        acquisition_mode="WideField",
        detector_settings=m.DetectorSettings(id="Detector:0", gain=3.0, binning="1x1"),
    )
    pixels = m.Pixels(
        id="Pixels:0",
        dimension_order="XYCZT",
        type="uint8",
        size_x=8,
        size_y=6,
        size_c=samples,
        size_z=1,
        size_t=1,
        interleaved=True,
        channels=[channel],
        tiff_data_blocks=[m.TiffData(ifd=0, plane_count=1)],
        planes=[m.Plane(the_t=0, the_z=0, the_c=0, exposure_time=5.0, position_x=1.5)],
    )
    instrument = m.Instrument(id="Instrument:0", detectors=[m.Detector(id="Detector:0", model="colour camera")])
    image = m.Image(id="Image:0", name="slide", pixels=pixels, instrument_ref=m.InstrumentRef(id="Instrument:0"))
    return ome_types.OME(images=[image], instruments=[instrument])


@pytest.mark.parametrize("samples", [3, 4])
@pytest.mark.parametrize("how", ["dataset", "record"])
def test_an_rgb_channels_settings_reach_each_of_its_written_channels(tmp_path: Path, samples: int, how: str) -> None:
    model = _rgb_ome(samples)
    data = np.arange(6 * 8 * samples, dtype=np.uint8).reshape(6, 8, samples)
    tifffile.imwrite(
        tmp_path / "rgb.ome.tif",
        data,
        photometric="rgb",
        extrasamples=["unassalpha"] if samples == 4 else None,
        description=ome_types.to_xml(model).encode(),
        metadata=None,
    )
    img = OMEArrow(tmp_path / "rgb.ome.tif")
    assert img.sizes["C"] == samples
    back = _parquet(img, tmp_path / "p.ome.parquet", how)
    back.export("ome-tiff", tmp_path / "again.ome.tif")
    written = ome_types.from_tiff(tmp_path / "again.ome.tif")
    stored = model.images[0].pixels.channels[0]
    got = written.images[0].pixels.channels
    assert len(got) == samples and len({c.id for c in got}) == samples
    keep = {"id", "name", "samples_per_pixel"}
    for k, channel in enumerate(got):
        assert channel.samples_per_pixel == 1 and channel.name == f"brightfield:{k}"  # one channel per sample
        assert channel.model_dump(exclude=keep) == stored.model_dump(exclude=keep)  # every setting of the stored one
    assert (
        written.instruments == model.instruments and written.images[0].instrument_ref == model.images[0].instrument_ref
    )
    assert written.images[0].pixels.planes == model.images[0].pixels.planes
    np.testing.assert_array_equal(
        OMEArrow(tmp_path / "again.ome.tif").to_numpy(layout="TZCYX")[0, 0], data.transpose(2, 0, 1)
    )


def test_a_vortex_file_keeps_the_ome_model_and_refuses_a_lying_one(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path
) -> None:
    pytest.importorskip("vortex")
    pytest.importorskip("ome_arrow_vortex")
    path, model, pixels = rich
    OMEArrow.scan(path).export("vortex", tmp_path / "v.vortex")
    back = OMEArrow(tmp_path / "v.vortex")
    assert_same_ome(back.ome_metadata, model)
    back.export("ome-tiff", tmp_path / "v.ome.tif")
    assert_same_ome(ome_types.from_tiff(tmp_path / "v.ome.tif"), model)
    np.testing.assert_array_equal(OMEArrow(tmp_path / "v.ome.tif").to_numpy(layout="TZCYX"), pixels)
    vx = pytest.importorskip("vortex")
    table = vx.open(str(tmp_path / "v.vortex")).to_arrow().read_all()
    metas = table.column("meta").to_pylist()
    doc = json.loads(metas[0])
    doc["image"]["ome_xml"] = doc["image"]["ome_xml"].replace('SizeC="3"', 'SizeC="2"', 1)
    metas[0] = json.dumps(doc)
    at = table.schema.get_field_index("meta")
    vx.io.write(table.set_column(at, "meta", pa.array(metas, pa.string())), str(tmp_path / "lie.vortex"))
    with pytest.raises(DamagedFileError, match="describes sizes") as err:
        OMEArrow.scan(tmp_path / "lie.vortex")
    assert str(tmp_path / "lie.vortex") in str(err.value)
