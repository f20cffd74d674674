"""Unknown physical sizes are None through the Vortex, OME-Zarr and dask/xarray backends; stated ones
keep their values; a lying size or channel field in a file is our error naming the file and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ome_arrow_core import ImageMeta, OMEArrow
from ome_arrow_core.plugin_api import DamagedFileError
from ome_arrow_core.record.codec import pixels_to_record

UNKNOWN = {"X": None, "Y": None, "Z": None}
PIXELS = np.arange(2 * 2 * 16 * 12, dtype=np.uint16).reshape(1, 2, 2, 16, 12)  # TZCYX


def image(**physical: float | None) -> OMEArrow:
    meta = ImageMeta(sizes={"Z": 2, "C": 2, "Y": 16, "X": 12}, dtype=np.uint16, physical_size=physical)
    return OMEArrow(pixels_to_record(meta, PIXELS))


# -- Vortex ------------------------------------------------------------------------------------------
def _vortex_meta(path: Path, edit: Any, out: Path) -> Path:
    import pyarrow as pa
    import vortex as vx

    table = vx.open(str(path)).to_arrow().read_all()
    metas = table.column("meta").to_pylist()
    doc = json.loads(metas[0])
    edit(doc["image"])
    metas[0] = json.dumps(doc)
    vx.io.write(table.set_column(table.schema.get_field_index("meta"), "meta", pa.array(metas, pa.string())), str(out))
    return out


def test_vortex_unknown_sizes_stay_unknown_and_old_ones_keep_their_value(tmp_path: Path) -> None:
    pytest.importorskip("vortex")
    pytest.importorskip("ome_arrow_vortex")
    image().export(how="vortex", out=tmp_path / "u.vortex")
    got = OMEArrow.scan(tmp_path / "u.vortex")
    assert got.meta.physical_size == UNKNOWN and got.info()["physical_size"] == UNKNOWN
    assert got.to_numpy(layout="TZCYX").tobytes() == PIXELS.tobytes()
    old = _vortex_meta(
        tmp_path / "u.vortex",
        lambda img: img.update(physical_size={"X": 1.0, "Y": 1.0, "Z": 1.0}),
        tmp_path / "old.vortex",
    )  # as files written before unknown was None
    assert OMEArrow.scan(old).meta.physical_size == {"X": 1.0, "Y": 1.0, "Z": 1.0}
    image(X=0.5, Z=2.0).export(how="vortex", out=tmp_path / "k.vortex")
    assert OMEArrow.scan(tmp_path / "k.vortex").meta.physical_size == {"X": 0.5, "Y": None, "Z": 2.0}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda img: img["physical_size"].update(X=-0.5), r"physical_size\.X"),
        (lambda img: img["physical_size"].update(Y="0.5"), r"physical_size\.Y"),
        (lambda img: img["physical_size"].update(Z=math.inf), r"physical_size\.Z"),
        (lambda img: img.update(physical_size=[0.5, 0.5, 1.0]), "physical_size"),
        (lambda img: img["channels"][1].update(color_rgba="red"), r"channels\[1\]\.color_rgba"),
    ],
)
def test_vortex_lying_metadata_names_file_and_field(tmp_path: Path, edit: Any, field: str) -> None:
    pytest.importorskip("vortex")
    pytest.importorskip("ome_arrow_vortex")
    image(X=0.5, Y=0.5, Z=1.0).export(how="vortex", out=tmp_path / "ok.vortex")
    bad = _vortex_meta(tmp_path / "ok.vortex", edit, tmp_path / "bad.vortex")
    with pytest.raises(DamagedFileError, match=rf"bad\.vortex.*{field}"):
        OMEArrow.scan(bad)


# -- OME-Zarr ----------------------------------------------------------------------------------------
def test_zarr_unknown_sizes_write_no_unit_and_read_back_unknown(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_zarr")
    image(Y=0.25).export(how="ome-zarr", out=tmp_path / "u.ome.zarr")
    attrs = json.loads((tmp_path / "u.ome.zarr" / "zarr.json").read_text())["attributes"]
    axes = {a["name"]: a for a in attrs["ome"]["multiscales"][0]["axes"]}
    assert "unit" not in axes["x"] and "unit" not in axes["z"] and axes["y"]["unit"] == "micrometer"
    got = OMEArrow.scan(tmp_path / "u.ome.zarr")
    assert got.meta.physical_size == {"X": None, "Y": 0.25, "Z": None}
    assert got.to_numpy(layout="TZCYX").tobytes() == PIXELS.tobytes()
    assert OMEArrow.scan(tmp_path / "u.ome.zarr", level=0).info()["physical_size"]["X"] is None


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
def test_zarr_without_units_or_scale_is_uncalibrated(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_zarr")
    from zarr_stores import write_ome_zarr_py

    data = PIXELS[0].transpose(1, 0, 2, 3)  # czyx
    path = write_ome_zarr_py(tmp_path / "plain.ome.zarr", data, "czyx")  # ome-zarr-py: no units, scale 1
    assert OMEArrow.scan(path).meta.physical_size == UNKNOWN
    scaled = write_ome_zarr_py(tmp_path / "s.ome.zarr", data, "czyx", scale=(1, 2.0, 0.5, 0.5))
    assert OMEArrow.scan(scaled).meta.physical_size == {"X": 0.5, "Y": 0.5, "Z": 2.0}  # a scale: taken as µm


def test_zarr_lying_channel_metadata_names_store_and_field(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_zarr")
    image().export(how="ome-zarr", out=tmp_path / "c.ome.zarr")
    doc_path = tmp_path / "c.ome.zarr" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    doc["attributes"]["ome_arrow"]["channels"][0]["emission_um"] = "blue"
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(DamagedFileError, match=r"c\.ome\.zarr.*channels\[0\]\.emission_um"):
        OMEArrow.scan(tmp_path / "c.ome.zarr")


# -- dask / xarray -----------------------------------------------------------------------------------
def test_xarray_has_no_physical_coordinates_when_sizes_are_unknown() -> None:
    pytest.importorskip("xarray")
    from ome_arrow_dask import to_xarray

    arr = to_xarray(image(X=0.5), layout="ZCYX")
    assert arr.coords["X"].values.tolist() == [0.5 * i for i in range(12)]
    assert arr.coords["X"].attrs["units"] == "µm"
    for ax, n in (("Y", 16), ("Z", 2)):
        assert arr.coords[ax].values.tolist() == list(range(n)) and "units" not in arr.coords[ax].attrs
