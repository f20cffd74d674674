"""OME-Zarr keeps the OME-XML (bioformats2raw layout: ``OME/METADATA.ome.xml``): OME-TIFF -> OME-Zarr -> Parquet ->
OME-TIFF keeps the OME model (checked with ome-types), other tools find the image and the document, stores other
tools write give theirs, and a missing, damaged or lying document is a DamagedFileError naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ome_types = pytest.importorskip("ome_types")
pytest.importorskip("tifffile")
pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_zarr", reason="needs ome-arrow-zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrow, OMEArrowDataset  # noqa: E402
from ome_arrow_core.errors import ChecksumError, DamagedFileError, SelectionError  # noqa: E402
from tests.backends.ome_rich import (  # noqa: E402
    assert_same_ome,
    image_with_ome_xml,
    lies,
    rich_ome,
)
from tests.backends.zarr_stores import write_bf2raw  # noqa: E402
from tests.pixels import random_pixels  # noqa: E402

XML = "OME/METADATA.ome.xml"
#: ome-zarr-py (the other tool here) warns about its own deprecations.
OME_ZARR_WARNINGS = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


def _root_doc(store: Path) -> tuple[Path, dict[str, Any]]:
    for name in ("zarr.json", ".zattrs"):
        if (store / name).exists():
            return store / name, json.loads((store / name).read_text())
    raise AssertionError(f"{store} has no group metadata")


def _ours(doc: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = doc.get("attributes", doc)
    return attrs


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize("how", ["dataset", "record"])
def test_ome_tiff_to_ome_zarr_to_parquet_to_ome_tiff_keeps_the_ome_model(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, version: str, how: str
) -> None:
    path, model, pixels = rich
    store = tmp_path / "r.ome.zarr"
    OMEArrow(path).export("ome-zarr", store, version=version)
    assert (store / XML).is_file() and (store / "0").is_dir()
    for img in (OMEArrow(store), OMEArrow.scan(store), OMEArrowDataset.scan(store)[0]):
        assert img.info()["series"] == "0" and img.info()["ome_xml_file"] == XML
        assert_same_ome(img.ome_metadata, model)
        np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), pixels)
    back = OMEArrow(store)
    layout = {"dataset": {}, "record": {"layout": "record"}}[how]
    back.export("parquet", tmp_path / "p.ome.parquet", **layout)
    again = OMEArrow(tmp_path / "p.ome.parquet")
    assert_same_ome(again.ome_metadata, model)
    again.export("ome-tiff", tmp_path / "again.ome.tif")
    assert_same_ome(ome_types.from_tiff(tmp_path / "again.ome.tif"), model)
    np.testing.assert_array_equal(OMEArrow(tmp_path / "again.ome.tif").to_numpy(layout="TZCYX"), pixels)
    again.export("ome-zarr", tmp_path / "twice.ome.zarr", version=version)  # a second trip keeps it again
    assert_same_ome(OMEArrow(tmp_path / "twice.ome.zarr").ome_metadata, model)


@OME_ZARR_WARNINGS
def test_other_tools_find_the_image_and_its_ome_xml(rich: tuple[Path, Any, np.ndarray], tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr.utils import find_multiscales

    path, model, pixels = rich
    for version in ("0.5", "0.4"):
        store = tmp_path / f"r{version}.ome.zarr"
        OMEArrow(path).export("ome-zarr", store, version=version)
        found = find_multiscales(store)  # ome-zarr-py's bioformats2raw handling: image i at "i", named by the XML
        assert [(Path(p), name) for p, name, _ in found] == [(store / "0", "cells")]
        nodes = list(Reader(parse_url(store / "0"))())
        np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), pixels.transpose(0, 2, 1, 3, 4))
        document = ome_types.from_xml((store / XML).read_text(encoding="utf-8"))
        assert len(document.images) == 1 and document.images[0].pixels.metadata_only is not None
        assert document.images[0].pixels.planes == model.images[0].pixels.planes
        assert document.instruments == model.instruments


@pytest.mark.filterwarnings("ignore")
def test_ome_arrow_0_1_0_reads_the_image_at_0_or_a_store_written_without_the_document(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path
) -> None:
    """ome-arrow 0.1.0 reads OME-Zarr through bioio-ome-zarr, which refuses the bioformats2raw layout at its root
    (docs/ome-zarr.md says so): it reads the image at ``store/0``, and a store written with ``ome_xml=False``."""
    ome_arrow = pytest.importorskip("ome_arrow", reason="needs the reference package ome-arrow 0.1.0")
    pytest.importorskip("bioio_ome_zarr")
    path, _model, pixels = rich
    expected = pixels.transpose(0, 2, 1, 3, 4)  # TCZYX
    store = OMEArrow(path).export("ome-zarr", tmp_path / "r.ome.zarr")
    with pytest.raises(Exception, match="bioformats2raw"):
        ome_arrow.OMEArrow(str(store))
    np.testing.assert_array_equal(ome_arrow.OMEArrow(str(store / "0")).export(how="numpy"), expected)
    plain = OMEArrow(path).export("ome-zarr", tmp_path / "plain.ome.zarr", ome_xml=False)
    np.testing.assert_array_equal(ome_arrow.OMEArrow(str(plain)).export(how="numpy"), expected)


def _second_image(m: Any) -> Any:
    return m.Image(
        id="Image:second",
        name="second",
        pixels=m.Pixels(
            id="Pixels:1",
            dimension_order="XYZCT",
            type="uint8",
            size_t=1,
            size_c=1,
            size_z=1,
            size_y=8,
            size_x=8,
            channels=[m.Channel(id="Channel:1:0", name="only", samples_per_pixel=1)],
            metadata_only=True,
        ),
    )


@OME_ZARR_WARNINGS
@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize("series", [None, ["a", "b/c"]])
def test_a_store_other_tools_wrote_gives_each_image_its_own_image_of_the_ome_xml(
    tmp_path: Path, version: str, series: list[str] | None
) -> None:
    model = rich_ome(ome_types)
    model.images.append(_second_image(ome_types.model))
    first = np.arange(2 * 3 * 2 * 16 * 12, dtype=np.uint16).reshape(2, 3, 2, 16, 12)  # TCZYX
    second = np.full((1, 1, 1, 8, 8), 7, np.uint8)
    store = write_bf2raw(
        tmp_path / "o.ome.zarr", [first, second], ome_types.to_xml(model), version=version, series=series
    )
    img = OMEArrow(store)
    assert_same_ome(img.ome_metadata, model)
    np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), first)
    other = OMEArrow(store, row=1)
    assert [i.name for i in other.ome_metadata.images] == ["second"]
    assert other.ome_metadata.instruments == model.instruments  # the document's other parts come along
    np.testing.assert_array_equal(other.to_numpy(layout="TCZYX"), second)
    assert OMEArrow(store, level=0, row=1).info()["series"] == (series or ["0", "1"])[1]
    if series is not None:
        with pytest.raises(SelectionError, match="row=2 is out of range"):
            OMEArrow(store, row=2)


@OME_ZARR_WARNINGS
def test_a_store_other_tools_wrote_without_a_document_reads_as_before(tmp_path: Path) -> None:
    data = np.arange(2 * 16 * 12, dtype=np.uint16).reshape(1, 2, 1, 16, 12)
    store = write_bf2raw(tmp_path / "o.ome.zarr", [data], None)
    img = OMEArrow(store)
    assert img.meta.ome_xml is None and img.ome_metadata.creator == "ome-arrow-core"
    np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), data)


def test_other_levels_and_a_crop_keep_none_of_it(rich: tuple[Path, Any, np.ndarray], tmp_path: Path) -> None:
    path, _, pixels = rich
    store = tmp_path / "r.ome.zarr"
    OMEArrow(path).export("ome-zarr", store, levels=2)
    low = OMEArrow(store, level=1)
    assert low.meta.ome_xml is None and low.sizes["X"] == 6
    assert low.ome_metadata.images[0].pixels.planes == []
    crop = OMEArrow(path).slice_lazy(2, 10, 4, 12)
    crop.export("ome-zarr", tmp_path / "crop.ome.zarr")
    assert not (tmp_path / "crop.ome.zarr" / "OME").exists()  # no document: the image at the root, as before
    assert OMEArrow(tmp_path / "crop.ome.zarr").meta.ome_xml is None
    OMEArrow(path).export("ome-zarr", tmp_path / "plain.ome.zarr", ome_xml=False)
    plain = OMEArrow(tmp_path / "plain.ome.zarr")
    assert plain.meta.ome_xml is None and not (tmp_path / "plain.ome.zarr" / "OME").exists()
    np.testing.assert_array_equal(plain.to_numpy(layout="TZCYX"), pixels)


#: What the reader says for each lie of :func:`lies` (one Image lacking: no Image for the store's image 0).
MESSAGES = {**{k: k for k in lies("<x/>")}, "not one OME Image": "none for image 0"}


def _with_xml(store: Path, text: str, *, foreign: bool = False) -> None:
    (store / XML).write_text(text, encoding="utf-8")
    if foreign:  # as another tool writes it: no checksum of ours
        file, doc = _root_doc(store)
        _ours(doc).pop("ome_arrow")
        file.write_text(json.dumps(doc))


@pytest.mark.parametrize("case", list(lies("<x/>")))
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_a_lying_ome_xml_is_a_damaged_file_naming_it(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, case: str, version: str
) -> None:
    store = tmp_path / "r.ome.zarr"
    OMEArrow(rich[0]).export("ome-zarr", store, version=version)
    bad = lies((store / XML).read_text(encoding="utf-8"))[case]
    _with_xml(store, bad)
    with pytest.raises(ChecksumError, match="do not match their checksum") as err:
        OMEArrow.scan(store)
    assert f"{store} [{XML}]" in str(err.value)
    for opener in (lambda: OMEArrow.scan(store, verify=False), lambda: OMEArrow(store, verify=False)):
        with pytest.raises(DamagedFileError, match=MESSAGES[case]) as err:
            opener()
        assert f"{store} [{XML}]" in str(err.value)
    _with_xml(store, bad, foreign=True)
    with pytest.raises(DamagedFileError, match=MESSAGES[case]) as err:
        OMEArrow.scan(store)
    assert f"{store} [{XML}]" in str(err.value) and not isinstance(err.value, ChecksumError)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "delete"])
def test_a_damaged_or_missing_ome_xml_of_our_store_is_refused(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path, damage: str
) -> None:
    store = tmp_path / "r.ome.zarr"
    OMEArrow(rich[0]).export("ome-zarr", store)
    file = store / XML
    data = bytearray(file.read_bytes())
    if damage == "flip":
        at = data.index(b"Acme") + 1  # inside an attribute value: the XML still parses and describes the pixels
        data[at] ^= 0x01
        file.write_bytes(bytes(data))
    elif damage == "truncate":
        file.write_bytes(bytes(data[: len(data) - 10]))
    elif damage == "empty":
        file.write_bytes(b"")
    else:
        file.unlink()
    kind = DamagedFileError if damage == "delete" else ChecksumError
    with pytest.raises(kind, match="missing" if damage == "delete" else "checksum") as err:
        OMEArrow(store)
    assert f"{store} [{XML}]" in str(err.value)
    if damage == "flip":  # unchecked, the flipped letter is read as the document says
        assert (
            OMEArrow(store, verify=False).ome_metadata.instruments[0].microscope.manufacturer
            == "A" + chr(ord("c") ^ 1) + "me"
        )


@pytest.mark.parametrize("entry", [7, {"path": XML}, {"path": "elsewhere.xml", "digest": "00"}])
def test_a_damaged_checksum_entry_is_refused(rich: tuple[Path, Any, np.ndarray], tmp_path: Path, entry: Any) -> None:
    store = tmp_path / "r.ome.zarr"
    OMEArrow(rich[0]).export("ome-zarr", store)
    file, doc = _root_doc(store)
    _ours(doc)["ome_arrow"]["ome_xml"] = entry
    file.write_text(json.dumps(doc))
    with pytest.raises(DamagedFileError, match="ome_arrow.ome_xml") as err:
        OMEArrow(store)
    assert str(store) in str(err.value)


CHILD = textwrap.dedent("""
    import os, signal, sys
    import ome_arrow_zarr.omexml as omexml
    from ome_arrow_core import OMEArrow

    source, target = sys.argv[1], sys.argv[2]
    write_layout = omexml.write_layout

    def die_after(*args, **kwargs):  # the document and the OME group written, the root not yet marked
        write_layout(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    omexml.write_layout = die_after
    OMEArrow(source).export("ome-zarr", target)
""")


def test_a_kill_while_the_ome_xml_is_written_leaves_no_store(
    rich: tuple[Path, Any, np.ndarray], tmp_path: Path
) -> None:
    target = tmp_path / "k.ome.zarr"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(rich[0]), str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not target.exists()
    OMEArrow(rich[0]).export("ome-zarr", target)  # the next write removes what the killed one left
    assert_same_ome(OMEArrow(target).ome_metadata, rich[1])


def test_a_store_on_s3_keeps_and_checks_its_ome_xml(
    rich: tuple[Path, Any, np.ndarray], s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fsspec")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    bucket = s3_server.bucket("omexml")
    path, model, pixels = rich
    uri = f"s3://{bucket}/r.ome.zarr"
    OMEArrow(path).export("ome-zarr", uri)
    img = OMEArrow(uri)
    assert_same_ome(img.ome_metadata, model)
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), pixels)
    s3_server.put(bucket, f"r.ome.zarr/{XML}", lies(img.meta.ome_xml or "")["describes sizes"].encode())
    with pytest.raises(ChecksumError, match="do not match their checksum") as err:
        OMEArrow.scan(uri)
    assert XML in str(err.value) and "r.ome.zarr" in str(err.value)


@settings(max_examples=15, deadline=None)
@given(
    shape=st.tuples(*(st.integers(1, n) for n in (2, 3, 3, 12, 12))),
    dtype=st.sampled_from(("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")),
    version=st.sampled_from(["0.5", "0.4"]),
    levels=st.integers(1, 2),
    seed=st.integers(0, 1000),
)
def test_any_image_with_an_ome_xml_keeps_it_through_ome_zarr(
    shape: tuple[int, ...], dtype: str, version: str, levels: int, seed: int
) -> None:
    pixels = random_pixels(shape, dtype, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        img = image_with_ome_xml(pixels, Path(tmp), ome_types)
        store = Path(tmp) / "x.ome.zarr"
        img.export("ome-zarr", store, version=version, levels=levels, chunk_shape=(1, 5, 5))
        back = OMEArrow(store)
        assert back.meta.ome_xml == img.meta.ome_xml
        np.testing.assert_array_equal(back.to_numpy(layout="TZCYX"), pixels)
        if levels == 2:
            assert OMEArrow(store, level=1).meta.ome_xml is None


@OME_ZARR_WARNINGS
@pytest.mark.parametrize("series", [None, ["a", "b/c"]])
def test_a_store_of_several_images_scans_as_a_dataset_of_them(tmp_path: Path, series: list[str] | None) -> None:
    model = rich_ome(ome_types)
    model.images.append(_second_image(ome_types.model))
    first = np.arange(2 * 3 * 2 * 16 * 12, dtype=np.uint16).reshape(2, 3, 2, 16, 12)  # TCZYX
    second = np.full((1, 1, 1, 8, 8), 7, np.uint8)
    store = write_bf2raw(tmp_path / "o.ome.zarr", [first, second], ome_types.to_xml(model), series=series)
    ds = OMEArrowDataset.scan(store)
    assert len(ds) == 2
    assert [ds.metadata(i)["image_id"] for i in range(2)] == (series or ["0", "1"])
    assert_same_ome(ds[0].ome_metadata, model)
    assert [i.name for i in ds[1].ome_metadata.images] == ["second"]
    np.testing.assert_array_equal(ds[1].to_numpy(layout="TCZYX"), second)
