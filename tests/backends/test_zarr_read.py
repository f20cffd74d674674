"""Reading OME-Zarr (ome-arrow-zarr) from stores other writers made: zarr-python directly, ome-zarr-py."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from pixels import random_pixels as sample

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_zarr", reason="needs ome-arrow-zarr (pip install -e backends/zarr)")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr_stores import chunks_touched, shard_reads, tzcyx, write_ome_zarr_py, write_zarr_python

from ome_arrow_core import (
    DTypeError,
    OMEArrow,
    OMEArrowDataset,
    SchemaError,
    Selection,
    SelectionError,
    default_registry,
)
from ome_arrow_core.plugin_api import DamagedFileError
from ome_arrow_core.testing import check_reader

OME_ZARR_WARNINGS = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"]


@pytest.mark.parametrize("name", ["x.ome.zarr", "x.zarr", "plain_dir"])
def test_registry_resolves_ngff_directories(tmp_path: Path, name: str) -> None:
    path = write_zarr_python(tmp_path / name, [sample((2, 8, 8))], "cyx")
    assert default_registry().resolve_reader(path).name == "ome-zarr"


def test_zarr_directory_without_ngff_is_refused_clearly(tmp_path: Path) -> None:
    import zarr

    zarr.open_group(tmp_path / "g.zarr", mode="w").create_array("a", shape=(4, 4), dtype="u1")
    with pytest.raises(SchemaError, match="without OME-NGFF multiscales"):
        OMEArrow.scan(tmp_path / "g.zarr")
    zarr.create_array(tmp_path / "a.zarr", shape=(4, 4), dtype="u1")
    with pytest.raises(SchemaError, match="single Zarr array"):
        OMEArrow.scan(tmp_path / "a.zarr")
    zarr.create_array(tmp_path / "v2.zarr", shape=(4, 4), dtype="u1", zarr_format=2)
    for name, match in (("g.zarr", "Zarr group without OME-NGFF"), ("a.zarr", "single Zarr"), ("v2.zarr", "single")):
        with pytest.raises(SchemaError, match=rf"{name} is a {match}"):  # up front (a dataset of 1, failing at ds[0])
            OMEArrowDataset.scan(tmp_path / name)
    write_zarr_python(tmp_path / "x.ome.zarr", [sample((2, 8, 8))], "cyx")
    assert OMEArrowDataset.scan(tmp_path).table.column("image_id").to_pylist() == ["x.ome.zarr"]  # no image: left out


@pytest.mark.parametrize(("version", "shards"), [("0.4", None), ("0.5", None), ("0.5", (1, 1, 2, 32, 32))])
def test_zarr_python_stores_read_exactly(tmp_path: Path, version: str, shards: tuple[int, ...] | None) -> None:
    data = sample((2, 3, 4, 40, 50))
    path = write_zarr_python(
        tmp_path / "x.ome.zarr",
        [data, data[..., ::2, ::2]],
        "tczyx",
        version=version,
        chunks=(1, 1, 1, 16, 16),
        shards=shards,
        scales=[[1, 1, 2.5, 0.25, 0.5], [1, 1, 2.5, 0.5, 1.0]],
        channels=[("DAPI", "0000FF"), ("GFP", "00FF00"), ("RFP", "FF0000")],
    )
    check_reader(path, tzcyx(data, "tczyx"))  # the plugin kit, on the full resolution level
    img = OMEArrow(path)
    meta = img.meta
    assert meta.physical_size == {"X": 0.5, "Y": 0.25, "Z": 2.5}
    assert meta.physical_unit == {"X": "µm", "Y": "µm", "Z": "µm"}
    assert [c.name for c in meta.channels] == ["DAPI", "GFP", "RFP"]
    assert [c.color_rgba for c in meta.channels] == [0x0000FFFF, 0x00FF00FF, 0xFF0000FF]
    assert meta.chunk_shape == (1, 16, 16)
    check_reader(path, tzcyx(data[..., ::2, ::2], "tczyx"), level=1)
    low = OMEArrow.scan(path, level=1)
    assert low.meta.physical_size == {"X": 1.0, "Y": 0.5, "Z": 2.5}
    info = low.info()
    assert info["ngff_version"] == version and info["level"] == 1
    assert [lv["shape"]["Y"] for lv in info["levels"]] == [40, 20]
    assert info["levels"][1]["scale"]["X"] == 1.0
    assert info["shards"] == (list(shards) if shards else None)


@pytest.mark.parametrize("axes", ["yx", "zyx", "cyx", "tyx", "czyx", "tcyx", "tzyx", "tczyx", "xyzct", "zcxty"])
def test_any_axes_subset_and_order_maps_to_tzcyx(tmp_path: Path, axes: str) -> None:
    shape = tuple({"t": 2, "c": 3, "z": 4, "y": 9, "x": 7}[a] for a in axes)
    data = sample(shape, "int16")
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], axes, chunks=(2,) * len(axes))
    img = OMEArrow.scan(path)
    assert img.info()["axes_mapping"] == f"{axes}->{axes.upper()}"
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), tzcyx(data, axes))


def test_axis_without_a_known_name_takes_a_free_axis(tmp_path: Path) -> None:
    data = sample((5, 6, 7))
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "qyx")  # custom type: first free of T, Z, C
    img = OMEArrow(path)
    assert img.shape == (5, 1, 1, 6, 7)
    np.testing.assert_array_equal(img.to_numpy()[:, 0, 0], data)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_every_dtype_is_bit_exact(tmp_path: Path, dtype: str, version: str) -> None:
    data = sample((3, 17, 19), dtype)
    if dtype.startswith("float"):
        data.flat[:4] = [np.nan, -0.0, np.inf, -np.inf]
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "zyx", version=version, chunks=(2, 8, 8))
    check_reader(path, data[None, :, None])  # the plugin kit: dtype and bits of every kind of selection


def test_big_endian_v2_reads_native_and_exact(tmp_path: Path) -> None:
    data = sample((12, 10), "uint16").astype(">u2")
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "yx", version="0.4")
    got = OMEArrow(path).to_numpy()[0, 0, 0]
    assert got.dtype == np.dtype("uint16") and np.array_equal(got, data)


@pytest.mark.parametrize("dtype", ["uint64", "float16", "complex64"])
def test_unsupported_dtypes_raise_dtype_error_naming_the_level(tmp_path: Path, dtype: str) -> None:
    path = write_zarr_python(tmp_path / "x.ome.zarr", [np.zeros((4, 4), dtype)], "yx")
    with pytest.raises(DTypeError, match=r"x\.ome\.zarr \[0\]"):
        OMEArrow.scan(path)


def test_float16_store_says_how_to_read_it_converted(tmp_path: Path) -> None:
    """A float16 OME-Zarr (common for network outputs): the message gives the call that reads it as float32."""
    import zarr

    data = np.random.default_rng(2).standard_normal((3, 8, 10)).astype(np.float16)
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "zyx")
    with pytest.raises(DTypeError, match=r"float16") as info:
        OMEArrow.scan(path)
    call = str(info.value).split("in memory): ", 1)[1]
    assert call == f"OMEArrow(zarr.open_array({str(path)!r}, path='0')[...].astype('float32'), dim_order='ZYX')"
    img = OMEArrow(zarr.open_array(str(path), path="0")[...].astype("float32"), dim_order="ZYX")  # that call
    assert np.array_equal(img.to_numpy()[0, 0], data.astype(np.float32))


def test_scan_reads_no_chunk_and_a_plane_reads_only_its_chunks(tmp_path: Path) -> None:
    data = sample((2, 3, 4, 64, 64))
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "tczyx", chunks=(1, 1, 1, 16, 16))
    img = OMEArrow.scan(path)
    src = img.source
    assert src.chunks_read == 0
    plane = img.tensor_view(t=1, z=2, c=0).to_numpy()
    np.testing.assert_array_equal(plane[0], data[1, 0, 2])
    assert src.chunks_read == 16  # one plane of a 4x4 chunk grid
    crop = img.tensor_view(t=0, z=3, c=2, roi=(20, 5, 10, 10)).to_numpy()  # x, y, w, h
    np.testing.assert_array_equal(crop[0], data[0, 2, 3, 5:15, 20:30])
    assert src.chunks_read == 16 + 1  # rows 5..14 and columns 20..29 lie in one 16x16 chunk


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), sharded=st.booleans())
def test_a_selection_reads_exactly_the_chunks_it_intersects(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, sharded: bool
) -> None:
    arr = sample((2, 3, 2, 24, 30), seed=3)
    chunks, shards = (1, 1, 1, 8, 10), (1, 1, 2, 16, 20) if sharded else None
    path = write_zarr_python(tmp_path_factory.mktemp("z") / "x.ome.zarr", [arr], "tczyx", chunks=chunks, shards=shards)
    img = OMEArrow.scan(path)
    t = data.draw(st.lists(st.integers(0, 1), min_size=1, max_size=2, unique=True))
    c = data.draw(st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))
    z = data.draw(st.lists(st.integers(0, 1), min_size=1, max_size=2, unique=True))
    y0 = data.draw(st.integers(0, 23))
    y1 = data.draw(st.integers(y0 + 1, 24))
    x0 = data.draw(st.integers(0, 29))
    x1 = data.draw(st.integers(x0 + 1, 30))
    sel = Selection(tuple(t), tuple(z), tuple(c), range(y0, y1), range(x0, x1))
    got = img.source.read(sel)
    want = tzcyx(arr, "tczyx")[np.ix_(t, z, c, range(y0, y1), range(x0, x1))]
    np.testing.assert_array_equal(got, want)
    index = [t, c, z, range(y0, y1), range(x0, x1)]
    if shards:  # each shard touched: read whole when all its chunks are needed, else its index and those chunks
        expected = shard_reads(arr.shape, chunks, shards, index)
    else:
        expected = chunks_touched(arr.shape, chunks, index)
    assert img.source.chunks_read == expected


@OME_ZARR_WARNINGS
def test_labels_open_by_name_and_by_path(tmp_path: Path) -> None:
    data = sample((2, 5, 32, 40))
    lab = (data[0] > 30000).astype(np.uint32)
    path = write_ome_zarr_py(tmp_path / "x.ome.zarr", data, "czyx", label=lab, label_axes="zyx")
    assert OMEArrow.scan(path).info()["labels"] == ["nuclei"]
    by_name = OMEArrow.scan(path, label="nuclei")
    by_path = OMEArrow.scan(path / "labels" / "nuclei")
    for img in (by_name, by_path):
        assert img.dtype == np.uint32 and img.meta.image_type == "label"
        np.testing.assert_array_equal(img.to_numpy()[0, 0], lab)
    with pytest.raises(SelectionError, match="its labels: nuclei"):
        OMEArrow.scan(path, label="cells")
    with pytest.raises(SchemaError, match="labels group"):
        OMEArrow.scan(path / "labels")


@OME_ZARR_WARNINGS
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_py_pyramids_read_level_by_level(tmp_path: Path, version: str) -> None:
    data = sample((2, 3, 4, 64, 80), "uint16")
    path = write_ome_zarr_py(
        tmp_path / "x.ome.zarr",
        data,
        "tczyx",
        version=version,
        max_layer=2,
        chunks=(1, 1, 1, 32, 32),
        scale=(1, 1, 2.0, 0.25, 0.25),
    )
    img = OMEArrow.scan(path)
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), tzcyx(data, "tczyx"))
    assert len(img.info()["levels"]) == 3
    assert img.meta.physical_size == {"X": 0.25, "Y": 0.25, "Z": 2.0}
    top = OMEArrow.scan(path, level=2)
    assert top.shape == (2, 3, 4, 16, 20) and top.meta.physical_size["X"] == 1.0
    import zarr

    theirs = zarr.open_group(path, mode="r")[img.info()["levels"][2]["path"]][...]  # its own downsampling
    np.testing.assert_array_equal(top.to_numpy(), theirs)  # TCZYX, as stored
    with pytest.raises(SelectionError, match="valid levels are 0..2"):
        OMEArrow.scan(path, level=3)


def test_missing_chunk_reads_fill_value_or_raises_on_request(tmp_path: Path) -> None:
    data = sample((32, 32)) | 1  # no zeros: a chunk of fill value shows
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "yx", version="0.4", chunks=(16, 16))
    (path / "0" / "1" / "0").unlink()
    got = OMEArrow(path).to_numpy()[0, 0, 0]
    assert (got[16:, :16] == 0).all() and np.array_equal(got[:16], data[:16])
    with pytest.raises(DamagedFileError, match=r"x\.ome\.zarr \[0/1/0\]: the chunk is missing"):
        OMEArrow(path, missing="error")
    OMEArrow.scan(path, missing="error").tensor_view(roi=(0, 0, 16, 16)).to_numpy()  # other chunks still read


def test_source_pickles_and_arguments_are_checked(tmp_path: Path) -> None:
    data = sample((3, 16, 16))
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "zyx")
    src = OMEArrow.scan(path).source
    again = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(again.read(Selection.full(again.meta.sizes)), tzcyx(data, "zyx"))
    with pytest.raises(SchemaError, match="column="):
        OMEArrow.scan(path, column="x")
    with pytest.raises(SelectionError, match="level must be an int"):
        OMEArrow.scan(path, level="0")
    with pytest.raises(SelectionError, match="row=1 is out of range"):
        OMEArrow.scan(path, row=1)
    moved = shutil.copytree(path, tmp_path / "moved")  # no suffix: found by its metadata
    np.testing.assert_array_equal(OMEArrow(moved).to_numpy(layout="TZCYX"), tzcyx(data, "zyx"))


@pytest.mark.parametrize("driver", ["zarr", "zarr3"])
def test_stores_tensorstore_writes_read_exactly(tmp_path: Path, driver: str) -> None:
    ts = pytest.importorskip("tensorstore")
    import zarr

    data = sample((3, 2, 20, 30), "int32")
    path = tmp_path / "x.ome.zarr"
    write_zarr_python(path, [data[..., :1, :1]], "czyx", version="0.5" if driver == "zarr3" else "0.4")
    spec = {
        "driver": driver,
        "kvstore": {"driver": "file", "path": str(path / "0")},
        "create": True,
        "delete_existing": True,
        "dtype": "int32",
        "metadata": {"shape": list(data.shape)},
    }
    if driver == "zarr3":
        spec["metadata"]["chunk_grid"] = {"name": "regular", "configuration": {"chunk_shape": [1, 1, 8, 8]}}
    else:
        spec["metadata"]["chunks"] = [1, 1, 8, 8]
    ts.open(spec).result().write(data).result()  # tensorstore replaces the level array, NGFF metadata stays
    assert zarr.open_group(path, mode="r")["0"].shape == data.shape
    np.testing.assert_array_equal(OMEArrow(path).to_numpy(layout="TZCYX"), tzcyx(data, "czyx"))


def test_concurrent_reads_from_threads_are_exact(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = sample((4, 3, 6, 48, 40))
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "tczyx", chunks=(1, 1, 2, 16, 16))
    img = OMEArrow.scan(path)
    jobs = [(t, c, z) for t in range(4) for c in range(3) for z in range(6)]
    with ThreadPoolExecutor(8) as pool:
        planes = list(pool.map(lambda j: img.tensor_view(t=j[0], c=j[1], z=j[2]).to_numpy()[0], jobs))
    for (t, c, z), plane in zip(jobs, planes, strict=True):
        np.testing.assert_array_equal(plane, data[t, c, z])
    assert img.source.chunks_read == len(jobs) * 9  # each plane: 3x3 chunks (a chunk holds two z)


@OME_ZARR_WARNINGS
@pytest.mark.filterwarnings("ignore::dask.array.core.PerformanceWarning")  # bioio's own writer, not ours
@pytest.mark.parametrize(("zarr_format", "shards"), [(2, None), (3, None), (3, (1, 1, 2, 32, 32))])
def test_stores_bioio_ome_zarr_writes_read_exactly(
    tmp_path: Path, zarr_format: int, shards: tuple[int, ...] | None
) -> None:
    writers = pytest.importorskip("bioio_ome_zarr.writers")
    data = sample((2, 2, 4, 64, 48), "uint16")
    shapes = [data.shape, (2, 2, 4, 32, 24)]
    w = writers.OMEZarrWriter(
        str(tmp_path / "x.ome.zarr"),
        shapes,
        data.dtype,
        chunk_shape=(1, 1, 1, 16, 16),
        shard_shape=shards,
        zarr_format=zarr_format,
        channels=[writers.Channel(label="a", color="FF0000"), writers.Channel(label="b", color="00FF00")],
        physical_pixel_size=[1.0, 1.0, 3.0, 0.5, 0.25],
    )
    w.write_full_volume(data)
    img = OMEArrow.scan(tmp_path / "x.ome.zarr")
    np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), tzcyx(data, "tczyx"))
    assert [c.name for c in img.meta.channels] == ["a", "b"]
    assert img.meta.physical_size == {"X": 0.25, "Y": 0.5, "Z": 3.0}
    assert img.info()["ngff_version"] == ("0.5" if zarr_format == 3 else "0.4")
    assert len(img.info()["levels"]) == 2 and OMEArrow.scan(tmp_path / "x.ome.zarr", level=1).shape[-2:] == (32, 24)


def test_a_repeated_index_on_an_axis_the_store_lacks_repeats_it(tmp_path: Path) -> None:
    """``c=[0, 0]`` on a store without a channel axis gives two copies (found by the plugin kit)."""
    data = sample((3, 8, 8))
    path = write_zarr_python(tmp_path / "x.ome.zarr", [data], "zyx", chunks=(1, 4, 4))
    got = OMEArrow.scan(path).tensor_view(c=[0, 0], t=[0, 0, 0], layout="TZCYX").to_numpy()
    np.testing.assert_array_equal(got, np.broadcast_to(data[None, :, None], (3, 3, 2, 8, 8)))
