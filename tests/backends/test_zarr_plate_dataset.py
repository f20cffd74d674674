"""OME-Zarr HCS plates as OMEArrowDataset: one row per field with plate, row, column, field columns, lazily."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_zarr", reason="needs ome-zarr (ome-zarr-py) to write plates")
import pyarrow.compute as pc
from zarr_stores import chunk_files, write_plate_ome_zarr_py

from ome_arrow_core import OMEArrow, OMEArrowDataset, SelectionError
from ome_arrow_core.plugin_api import DamagedFileError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")

WELLS = (("A/1", 2), ("A/3", 1), ("B/2", 3))  # a sparse plate: rows A-B, columns 1-3, three wells written


def fields(seed: int = 2) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {w: [rng.integers(0, 9999, (2, 16, 24)).astype(np.uint16) for _ in range(n)] for w, n in WELLS}


def flat(want: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
    return [img for imgs in want.values() for img in imgs]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_plate_scans_as_a_dataset_with_plate_columns(tmp_path: Path, version: str) -> None:
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want, version=version)
    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 6
    assert ds.column_names == ["image_id", "path", "plate", "row", "column", "well", "field", "acquisition"]
    assert ds.extra_columns == ["plate", "row", "column", "well", "field", "acquisition"]
    assert ds.metadata(3) == {
        "image_id": "B/2/0",
        "path": str(path / "B" / "2" / "0"),
        "plate": "plate-1",
        "row": "B",
        "column": "2",
        "well": "B/2",
        "field": 0,
        "acquisition": None,
    }
    for i, img in enumerate(flat(want)):
        np.testing.assert_array_equal(ds[i].to_numpy()[0, :, 0], img)
    batch = ds.read(c=1, layout="YX")
    assert batch.shape == (6, 16, 24) and batch.dtype == np.uint16
    np.testing.assert_array_equal(batch, np.stack([img[1] for img in flat(want)]))
    crops = ds.read([5, 0], roi=(4, 2, 8, 6), c=0, layout="YX")
    np.testing.assert_array_equal(crops, np.stack([flat(want)[5][0, 2:8, 4:12], flat(want)[0][0, 2:8, 4:12]]))


def test_filters_on_plate_metadata(tmp_path: Path) -> None:
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want)
    row_b = OMEArrowDataset.scan(path, filter={"row": "B"})
    assert row_b.table.column("image_id").to_pylist() == ["B/2/0", "B/2/1", "B/2/2"]
    np.testing.assert_array_equal(row_b[2].to_numpy()[0, :, 0], want["B/2"][2])
    ds = OMEArrowDataset.scan(path)
    second = ds.filter((pc.field("field") == 1) | (pc.field("well") == "A/3"))
    assert second.table.column("image_id").to_pylist() == ["A/1/1", "A/3/0", "B/2/1"]
    np.testing.assert_array_equal(second[1].to_numpy()[0, :, 0], want["A/3"][0])
    assert len(ds.filter({"column": ["1", "3"]})) == 3


def test_scan_reads_no_pixels_and_an_image_only_its_own_chunks(tmp_path: Path) -> None:
    """Every chunk of every field but B/2/1 is junk: the scan and that field still read exactly."""
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want, chunks=(1, 8, 8))
    keep = path / "B" / "2" / "1"
    for f in chunk_files(path):
        if keep not in f.parents and f.parent.name != "" and not f.name.startswith((".z", "zarr.json")):
            f.write_bytes(b"junk")
    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 6
    img = ds[4]
    assert img.source.chunks_read == 0  # opening reads metadata only
    np.testing.assert_array_equal(img.to_numpy()[0, :, 0], want["B/2"][1])
    import zarr

    arr = zarr.open_array(keep / img.info()["levels"][0]["path"], mode="r")
    assert img.source.chunks_read == len(chunk_files(keep)) == arr.nchunks
    plane = ds[4]
    np.testing.assert_array_equal(plane.tensor_view(c=1, layout="YX").to_numpy(), want["B/2"][1][1])
    assert arr.nchunks == 2 * 2 * 3 and plane.source.chunks_read == 6  # the chunks of channel 1
    crop = ds[4]
    np.testing.assert_array_equal(
        crop.tensor_view(c=0, roi=(6, 3, 6, 4), layout="YX").to_numpy(), want["B/2"][1][0, 3:7, 6:12]
    )
    assert crop.source.chunks_read == 2  # x 6..11: chunk columns 0 and 1; y 3..6: chunk row 0
    with pytest.raises(DamagedFileError, match=r"p\.ome\.zarr/B/2/0"):
        ds[3].to_numpy()


def test_locations_pickle_and_open_their_field(tmp_path: Path) -> None:
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want)
    ds = pickle.loads(pickle.dumps(OMEArrowDataset.scan(path)))
    loc = pickle.loads(pickle.dumps(ds.locate(2)))
    assert loc.kind == "collection" and loc.row == 2
    np.testing.assert_array_equal(loc.open().to_numpy()[0, :, 0], want["A/3"][0])


def test_a_listed_well_the_store_lacks_is_named(tmp_path: Path) -> None:
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", fields())
    shutil.rmtree(path / "A" / "3")
    with pytest.raises(DamagedFileError, match=r"p\.ome\.zarr \[A/3\]: the plate lists well 'A/3'"):
        OMEArrowDataset.scan(path)


def test_a_listed_field_the_store_lacks_fails_alone(tmp_path: Path) -> None:
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want)
    shutil.rmtree(path / "B" / "2" / "1")
    ds = OMEArrowDataset.scan(path)  # metadata only: the field's absence shows when it is opened
    assert len(ds) == 6
    with pytest.raises(DamagedFileError, match=r"p\.ome\.zarr/B/2/1"):
        ds[4]
    np.testing.assert_array_equal(ds[5].to_numpy()[0, :, 0], want["B/2"][2])
    ok = ds.filter(pc.field("image_id") != "B/2/1")
    assert len(ok) == 5 and ok.read(c=0, layout="YX").shape == (5, 16, 24)


def test_a_rewritten_plate_is_scanned_again(tmp_path: Path) -> None:
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", fields())
    assert len(OMEArrowDataset.scan(path)) == 6
    shutil.rmtree(path)
    want = fields(3)
    del want["B/2"]
    write_plate_ome_zarr_py(path, want)
    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 3
    np.testing.assert_array_equal(ds[2].to_numpy()[0, :, 0], want["A/3"][0])
    with pytest.raises(SelectionError, match="holds 3 fields"):
        OMEArrow.scan(path, row=3)


def test_a_directory_of_plates_and_images(tmp_path: Path) -> None:
    want = fields()
    write_plate_ome_zarr_py(tmp_path / "a.ome.zarr", want)
    image = np.arange(2 * 16 * 24, dtype=np.uint16).reshape(2, 16, 24)
    OMEArrow(image, "CYX").export("ome-zarr", tmp_path / "b.ome.zarr")
    (tmp_path / "notes").mkdir()  # a plain directory: skipped
    ds = OMEArrowDataset.scan(tmp_path)
    assert len(ds) == 7
    assert ds.table.column("plate").to_pylist() == ["plate-1"] * 6 + [None]
    assert ds.metadata(6)["image_id"] == "b.ome.zarr"
    np.testing.assert_array_equal(ds[6].to_numpy()[0, :, 0], image)
    np.testing.assert_array_equal(ds.read([6, 1], c=0, layout="YX"), np.stack([image[0], want["A/1"][1][0]]))


def test_one_image_store_scans_as_a_one_image_dataset(tmp_path: Path) -> None:
    image = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    path = OMEArrow(image, "ZYX").export("ome-zarr", tmp_path / "x.ome.zarr")
    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 1 and ds.metadata(0) == {"image_id": "x.ome.zarr", "path": str(path)}
    np.testing.assert_array_equal(ds[0].to_numpy()[0, 0], image)


def test_torch_loader_over_a_plate(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ome_arrow_torch = pytest.importorskip("ome_arrow_torch")
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want)
    tds = ome_arrow_torch.OMEArrowTorchDataset(path, filter={"row": "A"}, c=0, layout="YX", target="well")
    assert len(tds) == 3
    x, y = tds[2]
    np.testing.assert_array_equal(x.numpy(), want["A/3"][0][0])
    assert y == "A/3"


def test_an_edited_well_is_read_again(tmp_path: Path) -> None:
    """The plate's table is cached; a well whose metadata changed (the plate's did not) is read again."""
    import json

    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", fields())
    assert len(OMEArrowDataset.scan(path)) == 6
    well = path / "A" / "1" / "zarr.json"
    doc = json.loads(well.read_text())
    doc["attributes"]["ome"]["well"]["images"] = doc["attributes"]["ome"]["well"]["images"][1:]
    well.write_text(json.dumps(doc, indent=4))
    ds = OMEArrowDataset.scan(path)
    assert ds.table.column("image_id").to_pylist() == ["A/1/1", "A/3/0", "B/2/0", "B/2/1", "B/2/2"]
    assert OMEArrow.scan(path, row=0).source.path == path / "A" / "1" / "1"
