"""OME-Zarr HCS plates (ome_arrow_zarr.open_plate) written by ome-zarr-py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_zarr", reason="needs ome-zarr (ome-zarr-py) to write plates")
from zarr_stores import write_plate_ome_zarr_py

from ome_arrow_core import OMEArrow, SchemaError, SelectionError
from ome_arrow_core.plugin_api import DamagedFileError
from ome_arrow_zarr import open_plate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


def fields() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(2)
    return {
        w: [rng.integers(0, 9999, (2, 16, 24)).astype(np.uint16) for _ in range(n)]
        for w, n in (("A/1", 2), ("A/3", 1), ("B/2", 3))
    }


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_fields_open_with_plate_metadata_columns(tmp_path: Path, version: str) -> None:
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want, version=version)
    plate = open_plate(path)
    assert len(plate) == 6
    assert plate.table.column("image_id").to_pylist() == ["A/1/0", "A/1/1", "A/3/0", "B/2/0", "B/2/1", "B/2/2"]
    assert plate.metadata(3) == {
        "image_id": "B/2/0",
        "path": str(path / "B" / "2" / "0"),
        "plate": "plate-1",
        "row": "B",
        "column": "2",
        "well": "B/2",
        "field": 0,
        "acquisition": None,
    }
    flat = [(w, k) for w, imgs in want.items() for k in range(len(imgs))]
    for img, (w, k) in zip(plate, flat, strict=True):
        np.testing.assert_array_equal(img.to_numpy()[0, :, 0], want[w][k])
    import pyarrow.compute as pc

    row_b = plate.filter(pc.field("row") == "B")
    assert len(row_b) == 3 and row_b[2].source.path == path / "B" / "2" / "2"
    with pytest.raises(SelectionError, match="holds 6 fields"):
        plate[6]


def test_a_plate_or_well_opened_as_one_image(tmp_path: Path) -> None:
    """OMEArrow.scan(plate, row=i) is field i in plate order (row 0 by default, as datasets); a well says how."""
    want = fields()
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", want)
    np.testing.assert_array_equal(OMEArrow.scan(path).to_numpy()[0, :, 0], want["A/1"][0])
    np.testing.assert_array_equal(OMEArrow.scan(path, row=4).to_numpy()[0, :, 0], want["B/2"][1])
    with pytest.raises(SelectionError, match="holds 6 fields"):
        OMEArrow.scan(path, row=6)
    with pytest.raises(SchemaError, match="well"):
        OMEArrow.scan(path / "A" / "1")
    image = tmp_path / "img.ome.zarr"
    OMEArrow(np.zeros((4, 4), np.uint8)).export("ome-zarr", image)
    with pytest.raises(SchemaError, match="not an OME-Zarr HCS plate"):
        open_plate(image)


@pytest.mark.parametrize("lie", ["well_path", "row_index", "images", "well_twice", "field_twice"])
def test_lying_plate_metadata_is_damaged(tmp_path: Path, lie: str) -> None:
    path = write_plate_ome_zarr_py(tmp_path / "p.ome.zarr", fields())
    doc_file = path / "zarr.json"
    doc = json.loads(doc_file.read_text())
    plate = doc["attributes"]["ome"]["plate"]
    if lie == "well_path":
        plate["wells"][0]["path"] = "../../etc"
    elif lie == "row_index":
        plate["wells"][0]["rowIndex"] = 1
    elif lie == "well_twice":  # the same well's fields would be listed twice as images of the dataset
        plate["wells"].append(dict(plate["wells"][0]))
    else:
        well_file = path / "A" / "1" / "zarr.json"
        well = json.loads(well_file.read_text())
        images = well["attributes"]["ome"]["well"]["images"]
        well["attributes"]["ome"]["well"]["images"] = [{"path": "../x"}] if lie == "images" else images + images[:1]
        well_file.write_text(json.dumps(well))
    doc_file.write_text(json.dumps(doc))
    with pytest.raises(DamagedFileError, match="p.ome.zarr"):
        open_plate(path)
