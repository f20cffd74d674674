"""The bioio bridge reads real files (PNG, GIF through bioio-imageio; OME-TIFF through bioio-ome-tiff; plain
TIFF through bioio-tifffile) bit-exactly, maps their dims, scenes and metadata, and reads only what is selected."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bioio", reason='needs bioio (pip install "ome-arrow-core[bioio]")')
pytest.importorskip("ome_arrow_bioio", reason="needs ome-arrow-bioio (pip install -e backends/bioio)")
pytest.importorskip("bioio_imageio", reason="needs bioio-imageio")
pytest.importorskip("bioio_ome_tiff", reason="needs bioio-ome-tiff")
pytest.importorskip("bioio_tifffile", reason="needs bioio-tifffile")

import imageio.v3 as iio
from bioio_files import count_opens, no_tiff, rgb, write_ome_tiff, write_png, write_tiff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_bioio.dims import DimMap
from ome_arrow_bioio.plugin import PRIORITY, SUFFIXES
from ome_arrow_core import OMEArrow, Registry, Selection
from ome_arrow_core.first_party import FIRST_PARTY
from ome_arrow_core.plugin_api import PluginError, SchemaError
from ome_arrow_core.plugin_report import explain

#: Every dtype tifffile writes that OME-Arrow stores (bool has no TIFF sample format of its own).
TIFF_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@pytest.mark.parametrize(
    ("dtype", "samples"), [("uint8", 0), ("uint8", 3), ("uint8", 4), ("uint16", 0), ("uint8", 2), ("bool", 0)]
)
def test_png_of_every_dtype_and_sample_count_is_bit_exact(tmp_path: Path, dtype: str, samples: int) -> None:
    src = rgb((19, 23, samples) if samples else (19, 23), dtype, seed=samples)
    path = write_png(tmp_path / "x.png", src)
    img = OMEArrow.scan(path)
    assert img.dtype == np.dtype(dtype)
    info = img.info()
    assert info["bioio_physical_pixel_sizes"] == {"Z": None, "Y": None, "X": None}  # PNG has none
    assert info["physical_size"] == {"X": None, "Y": None, "Z": None}  # unknown, not 1 µm
    assert info["storage"] == "bioio" and info["bioio_reader"] == "bioio-imageio"
    got = img.tensor_view(layout="YXC").to_numpy()
    assert np.array_equal(got, src.reshape(19, 23, samples or 1))
    if samples:
        assert img.sizes["C"] == samples and info["axes_mapping"] == "YXS->YXC"
        assert info["channels"] == (["S0", "S1"] if samples == 2 else ["R", "G", "B", "A"][:samples])


def test_gif_frames_are_time_points(tmp_path: Path) -> None:
    frames = rgb((3, 8, 9, 3), "uint8", seed=2)
    iio.imwrite(tmp_path / "a.gif", frames)
    decoded = iio.imread(tmp_path / "a.gif", index=None)  # GIF is palette-based: compare with its decoder
    img = OMEArrow.scan(tmp_path / "a.gif")
    assert img.sizes == {"T": 3, "Z": 1, "C": 3, "Y": 8, "X": 9}
    assert img.info()["axes_mapping"] == "TYXS->TYXC"
    assert np.array_equal(img.tensor_view(t=2, layout="YXC").to_numpy(), decoded[2, ..., :3])


@pytest.mark.parametrize("dtype", TIFF_DTYPES)
def test_ome_tiff_through_the_bridge_keeps_dtype_dims_sizes_and_names(tmp_path: Path, dtype: str) -> None:
    src = rgb((2, 3, 4, 16, 20), dtype, seed=1)  # TCZYX
    meta = {
        "axes": "TCZYX",
        "PhysicalSizeX": 0.25,
        "PhysicalSizeY": 0.5,
        "PhysicalSizeZ": 2.0,
        "Channel": {"Name": ["dapi", "gfp", "rfp"]},
    }
    path = write_ome_tiff(tmp_path / "x.ome.tiff", (src, meta))
    img = OMEArrow.scan(path, registry=no_tiff())
    info = img.info()
    assert info["bioio_reader"] == "bioio-ome-tiff" and info["bioio_dims"] == "TCZYX"
    assert img.dtype == np.dtype(dtype)
    assert img.sizes == {"T": 2, "Z": 4, "C": 3, "Y": 16, "X": 20}
    assert info["physical_size"] == {"X": 0.25, "Y": 0.5, "Z": 2.0}
    assert info["bioio_physical_pixel_sizes"] == {"Z": 2.0, "Y": 0.5, "X": 0.25}
    assert info["channels"] == ["dapi", "gfp", "rfp"]
    assert np.array_equal(img.tensor_view(layout="TCZYX").to_numpy(), src)


@pytest.mark.parametrize("dtype", TIFF_DTYPES)
def test_plain_tiff_forced_through_the_bridge_is_bit_exact(tmp_path: Path, dtype: str) -> None:
    src = rgb((5, 12, 14), dtype, seed=3)
    path = write_tiff(tmp_path / "x.tif", src)
    img = OMEArrow.scan(path, format="bioio", reader="bioio-tifffile")
    assert img.info()["bioio_reader"] == "bioio-tifffile"
    assert img.dtype == np.dtype(dtype)
    assert np.array_equal(img.to_numpy().reshape(src.shape), src)


def test_scenes_are_listed_and_selected_by_index_id_or_row(tmp_path: Path) -> None:
    a = rgb((2, 3, 16, 16), "uint16", seed=4)
    b = rgb((4, 8, 8), "uint8", seed=5)
    path = write_ome_tiff(tmp_path / "m.ome.tif", (a, {"axes": "CZYX"}), (b, {"axes": "ZYX"}))
    first = OMEArrow.scan(path, registry=no_tiff())
    assert first.info()["scenes"] == ["Image:0", "Image:1"] and first.info()["scene"] == 0
    assert np.array_equal(first.tensor_view(layout="CZYX").to_numpy(), a)
    for how in ({"scene": 1}, {"scene": "Image:1"}, {"row": 1}):
        img = OMEArrow.scan(path, registry=no_tiff(), **how)
        assert img.dtype == np.uint8 and img.sizes["Z"] == 4 and img.info()["name"] == "m.ome.tif [Image:1]"
        assert np.array_equal(img.tensor_view(layout="ZYX").to_numpy(), b)


def test_a_plane_reads_only_its_chunk(tmp_path: Path) -> None:
    src = rgb((3, 4, 5, 32, 32), "uint16", seed=6)  # TZCYX: 60 planes
    path = write_tiff(tmp_path / "s.tif", src, "TZCYX")
    img = OMEArrow.scan(path, format="bioio", reader="bioio-tifffile")
    assert img.sizes == {"T": 3, "Z": 4, "C": 5, "Y": 32, "X": 32}
    with count_opens(path) as opens:
        plane = img.tensor_view(t=2, z=1, c=3, layout="YX").to_numpy()
    assert np.array_equal(plane, src[2, 1, 3]) and len(opens) == 1
    with count_opens(path) as opens:
        crop = img.tensor_view(t=[0, 2], z=3, c=[4, 1], roi=(4, 5, 10, 11), layout="TCYX").to_numpy()
    assert np.array_equal(crop, src[[0, 2], 3][:, [4, 1], 5:16, 4:14]) and len(opens) == 4
    with count_opens(path) as opens:
        img.to_numpy()
    assert len(opens) == 60


def test_samples_and_channels_both_longer_than_one_become_channel_times_sample(tmp_path: Path) -> None:
    src = rgb((2, 6, 7, 3), "uint8", seed=7)  # C Y X S
    path = write_ome_tiff(tmp_path / "c.ome.tif", (src, {"axes": "CYXS", "Channel": {"Name": ["a", "b"]}}))
    img = OMEArrow.scan(path, registry=no_tiff())
    info = img.info()
    if "S" not in info["bioio_dims"]:
        pytest.skip(f"bioio-ome-tiff gave dims {info['bioio_dims']} for an RGB OME-TIFF")
    assert img.sizes["C"] == 6 and info["channels"] == ["a/R", "a/G", "a/B", "b/R", "b/G", "b/B"]
    want = src.transpose(0, 3, 1, 2).reshape(6, 6, 7)
    assert np.array_equal(img.tensor_view(layout="CYX").to_numpy(), want)
    assert np.array_equal(img.tensor_view(c=[5, 1, 1], layout="CYX").to_numpy(), want[[5, 1, 1]])


_STACK = rgb((3, 4, 5, 9, 11), "int16", seed=8)


@pytest.fixture(scope="module")
def stack_img(tmp_path_factory: pytest.TempPathFactory) -> OMEArrow:
    path = write_tiff(tmp_path_factory.mktemp("stack") / "s.tif", _STACK, "TZCYX")
    return OMEArrow.scan(path, format="bioio", reader="bioio-tifffile")


_IX = st.one_of(st.integers(0, 2), st.lists(st.integers(0, 2), min_size=1, max_size=4))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t=_IX,
    z=st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=1, max_size=4)),
    c=st.one_of(st.integers(0, 4), st.lists(st.integers(0, 4), min_size=1, max_size=5)),
    y0=st.integers(0, 8),
    x0=st.integers(0, 10),
    h=st.integers(1, 9),
    w=st.integers(1, 11),
)
def test_any_selection_equals_numpy(
    stack_img: OMEArrow, t: int | list[int], z: int | list[int], c: int | list[int], y0: int, x0: int, h: int, w: int
) -> None:
    h, w = min(h, 9 - y0), min(w, 11 - x0)
    got = stack_img.tensor_view(t=t, z=z, c=c, roi=(x0, y0, w, h), layout="TZCYX").to_numpy()
    ts, zs, cs = ([v] if isinstance(v, int) else v for v in (t, z, c))
    want = _STACK[np.ix_(ts, zs, cs, range(y0, y0 + h), range(x0, x0 + w))]
    assert np.array_equal(got, want)


def test_a_source_pickles_and_reopens(tmp_path: Path) -> None:
    src = rgb((2, 10, 12), "uint16", seed=9)
    path = write_tiff(tmp_path / "p.tif", src)
    img = OMEArrow.scan(path, format="bioio", reader="bioio-tifffile")
    again = pickle.loads(pickle.dumps(img.source))
    assert again.plugin == "bioio-tifffile"
    assert np.array_equal(again.read(Selection.full(again.meta.sizes)).reshape(src.shape), src)


# -- precedence: our readers first, the bridge as the fallback, and `plugins` says so ----------------------
def test_our_readers_keep_their_suffixes_and_the_bridge_takes_the_rest() -> None:
    reg = Registry()
    assert reg.resolve_reader("a.tif").name == "tiff" and reg.resolve_reader("a.ome.tiff").name == "tiff"
    assert reg.resolve_reader("a.ome.zarr").name == "ome-zarr"
    for name in ("a.png", "a.czi", "a.nd2", "a.lif", "a.jpg"):
        assert reg.resolve_reader(name).name == "bioio"
    assert Registry(blocked={"tiff"}).resolve_reader("a.tif").name == "bioio"
    assert Registry(blocked={"zarr"}).resolve_reader("a.ome.zarr").name == "bioio"
    assert all(r.priority > PRIORITY for r in reg.readers() if r.name != "bioio")


def test_explain_says_the_bridge_is_the_fallback() -> None:
    lines = explain("cells.ome.tiff", Registry()).lines()
    assert "  reader: tiff/tiff" in lines
    assert "    - bioio/bioio (priority -10): also accepts it, but tiff/tiff has a higher priority (10)" in lines
    lines = explain("cells.czi", Registry()).lines()
    assert "  reader: bioio/bioio" in lines
    assert "    * bioio/bioio (priority -10): accepts it and comes first" in lines


def test_the_first_party_list_knows_the_bridge_suffixes() -> None:
    assert FIRST_PARTY["bioio"].suffixes == SUFFIXES
    assert FIRST_PARTY["bioio"].install == 'pip install "ome-arrow-core[bioio]"'


def test_an_ome_zarr_store_goes_to_the_bridge_only_when_our_zarr_reader_is_blocked(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_zarr")
    pytest.importorskip("bioio_ome_zarr")
    src = rgb((2, 3, 16, 20), "uint16", seed=10)
    store = OMEArrow(src, "CZYX").export("ome-zarr", tmp_path / "z.ome.zarr", chunk_shape=(1, 8, 8))
    assert OMEArrow.scan(store).info()["storage"] == "ome-zarr"
    img = OMEArrow.scan(store, registry=Registry(blocked={"zarr"}))
    assert img.info()["bioio_reader"] == "bioio-ome-zarr"
    assert np.array_equal(img.tensor_view(layout="CZYX").to_numpy(), src)
    assert np.array_equal(img.tensor_view(c=1, z=2, roi=(3, 4, 9, 7), layout="YX").to_numpy(), src[1, 2, 4:11, 3:12])


def test_a_blocked_bridge_is_named_for_its_suffixes() -> None:
    with pytest.raises(PluginError, match="'bioio' plugin \\(ome-arrow-bioio\\), which is blocked"):
        Registry(blocked={"bioio"}).resolve_reader("cells.czi")


def test_the_cli_lists_the_bridge_and_explains_the_fallback(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "ome_arrow_core.cli", "plugins"]
    rows = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, check=True).stdout)
    bridge = [r for r in rows if r["plugin"] == "bioio"]
    assert [(r["kind"], r["name"], r["status"]) for r in bridge] == [("reader", "bioio", "available")]
    out = subprocess.run([*cli, "--explain", "a.tif"], capture_output=True, text=True, check=True).stdout
    assert "    - bioio/bioio (priority -10): also accepts it, but tiff/tiff has a higher priority (10)" in out


@pytest.mark.parametrize(
    ("order", "shape", "roles", "sizes"),
    [
        ("YXS", (4, 5, 3), ("Y", "X", "S"), {"T": 1, "Z": 1, "C": 3, "Y": 4, "X": 5}),
        ("TCZYXS", (2, 2, 1, 4, 5, 4), ("T", "C", "Z", "Y", "X", "S"), {"T": 2, "Z": 1, "C": 8, "Y": 4, "X": 5}),
        ("MTCZYX", (1, 2, 3, 4, 5, 6), ("", "T", "C", "Z", "Y", "X"), {"T": 2, "Z": 4, "C": 3, "Y": 5, "X": 6}),
        ("MTCZYX", (7, 1, 3, 4, 5, 6), ("T", "", "C", "Z", "Y", "X"), {"T": 7, "Z": 4, "C": 3, "Y": 5, "X": 6}),
        ("MTCZYX", (7, 2, 3, 1, 5, 6), ("Z", "T", "C", "", "Y", "X"), {"T": 2, "Z": 7, "C": 3, "Y": 5, "X": 6}),
    ],
)
def test_bioio_dims_map_to_tzcyx(
    order: str, shape: tuple[int, ...], roles: tuple[str, ...], sizes: dict[str, int]
) -> None:
    dims = DimMap.from_bioio(order, shape, "x")
    assert dims.roles == roles and dims.sizes() == sizes


def test_bioio_dims_that_cannot_map_are_refused() -> None:
    with pytest.raises(SchemaError, match="bioio dimension 'M' of length 7 has no free axis"):
        DimMap.from_bioio("MTCZYX", (7, 2, 3, 4, 5, 6), "x.czi")
    with pytest.raises(SchemaError, match="lack Y or X"):
        DimMap.from_bioio("TCZY", (1, 1, 1, 4), "x.czi")
