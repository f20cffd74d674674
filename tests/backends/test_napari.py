"""The napari reader plugin (ome-arrow-napari) through npe2's reader API, without napari or a display."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

npe2 = pytest.importorskip("npe2")
pytest.importorskip("ome_arrow_napari")

from ome_arrow_core import ImageMeta, OMEArrow, OMEArrowDataset, OMEArrowError, write_dataset  # noqa: E402
from ome_arrow_napari import ImageArray, StackArray, get_reader  # noqa: E402
from ome_arrow_napari.layers import colormap_name, scale_of  # noqa: E402

PLUGIN = "ome-arrow-napari"
MANIFEST = Path(__file__).resolve().parents[2] / "backends" / "napari" / "ome_arrow_napari" / "napari.yaml"


@pytest.fixture(scope="module", autouse=True)
def _discovered() -> None:
    pm = npe2.PluginManager.instance()
    pm.discover()
    if PLUGIN not in {m.name for m in pm.iter_manifests()}:
        pytest.skip("ome-arrow-napari is not installed (its napari.manifest entry point is missing)")


def read(path: Path | str) -> list[tuple[Any, dict[str, Any], str]]:
    return npe2.read([str(path)], stack=False, plugin_name=PLUGIN)  # type: ignore[no-any-return]


def coloured_record(arr: np.ndarray, dim_order: str, colors: list[int | None], size: float = 0.25) -> dict[str, Any]:
    record = OMEArrow(arr, dim_order).export("dict")
    for ch, rgba in zip(record["pixels_meta"]["channels"], colors, strict=True):
        ch["color_rgba"] = rgba
    for a in "xy":
        record["pixels_meta"][f"physical_size_{a}"] = size
    record["pixels_meta"]["physical_size_z"] = 2.0
    return record


def test_manifest_is_valid() -> None:
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == PLUGIN
    assert [r.command for r in manifest.contributions.readers] == ["ome-arrow-napari.get_reader"]
    assert manifest.contributions.readers[0].accepts_directories


def test_tiff_opens_as_coloured_scaled_channel_layers(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 4000, (2, 3, 20, 24), dtype=np.uint16)  # CZYX
    path = tmp_path / "a.ome.tif"
    OMEArrow(coloured_record(arr, "CZYX", [0xFF0000FF, 0x80FF00FF])).export("ome-tiff", path)
    [(data, kwargs, kind)] = read(path)
    assert kind == "image" and isinstance(data, ImageArray)
    assert data.shape == (3, 2, 20, 24) and data.dtype == np.uint16 and data.ndim == 4
    assert kwargs["channel_axis"] == 1 and kwargs["colormap"] == ["red", "#80ff00"]
    assert kwargs["name"] == ["a.ome.tif C0", "a.ome.tif C1"] and kwargs["blending"] == "additive"
    assert kwargs["scale"] == [2.0, 0.25, 0.25]  # Z, Y, X: the channel axis has none
    assert "multiscale" not in kwargs
    np.testing.assert_array_equal(np.asarray(data[1, 0]), arr[0, 1])
    np.testing.assert_array_equal(np.asarray(data[:, 1, 5:9, ::3]), arr[1, :, 5:9, ::3])


def test_rgba_samples_open_as_red_green_blue_layers_and_an_uncoloured_alpha(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    yxs = np.random.default_rng(5).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", yxs, photometric="rgb", extrasamples=["unassalpha"])
    [(data, kwargs, _)] = read(tmp_path / "rgba.tif")
    assert data.shape == (4, 6, 7) and kwargs["channel_axis"] == 0
    assert kwargs["colormap"] == ["red", "green", "blue", "#000000"]  # alpha adds nothing to the composite
    assert kwargs["name"] == [f"rgba.tif {s}" for s in "RGBA"]
    np.testing.assert_array_equal(np.asarray(data[3]), yxs[..., 3])


def test_one_channel_has_no_channel_axis(tmp_path: Path) -> None:
    path = tmp_path / "one.ome.tif"
    OMEArrow(np.zeros((8, 9), np.uint8)).export("ome-tiff", path)
    [(data, kwargs, _)] = read(path)
    assert data.shape == (8, 9) and "channel_axis" not in kwargs and kwargs["colormap"] == "gray"


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_slices_match_numpy(data: st.DataObject) -> None:
    arr = np.arange(2 * 3 * 2 * 6 * 7, dtype=np.int32).reshape(2, 3, 2, 6, 7)
    lazy = ImageArray(OMEArrow(arr, "TZCYX"))
    assert lazy.axes == "TZCYX"

    def index(n: int) -> Any:
        return data.draw(
            st.one_of(
                st.integers(-n, n - 1),
                st.builds(
                    slice,
                    st.none() | st.integers(-n - 1, n + 1),
                    st.none() | st.integers(-n - 1, n + 1),
                    st.none() | st.sampled_from([1, 2, 3, -1, -2]),
                ),
                st.lists(st.integers(-n, n - 1), min_size=1, max_size=3),
            )
        )

    key = tuple(index(n) for n in arr.shape[: data.draw(st.integers(1, 5))])
    np.testing.assert_array_equal(lazy[key], outer(arr, key))


def outer(arr: np.ndarray, key: tuple[Any, ...]) -> np.ndarray:
    """numpy indexing with every list taken as an outer index of its own axis (as napari's plane requests are)."""
    out, axis = arr, 0
    for k in key:
        if isinstance(k, int):
            out = np.take(out, k, axis=axis)
        elif isinstance(k, slice):
            out = out[(slice(None),) * axis + (k,)]
            axis += 1
        else:
            out = np.take(out, k, axis=axis)
            axis += 1
    return out


def test_a_cropped_image_indexes_within_its_crop() -> None:
    arr = np.arange(3 * 10 * 12, dtype=np.uint16).reshape(3, 10, 12)
    crop = OMEArrow(arr, "ZYX").slice_lazy(2, 9, 1, 7, z_indices=[0, 2])
    lazy = ImageArray(crop)
    assert lazy.shape == (2, 6, 7)
    np.testing.assert_array_equal(lazy[...], arr[[0, 2], 1:7, 2:9])
    np.testing.assert_array_equal(lazy[1, ::-2, 3], arr[2, 1:7, 5][::-2])


def test_pyramid_levels_make_one_multiscale_layer(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 999, (64, 48), dtype=np.uint16)
    path = tmp_path / "p.ome.tif"
    OMEArrow(arr).export("ome-tiff", path, levels=3)
    [(data, kwargs, _)] = read(path)
    assert kwargs["multiscale"] is True and isinstance(data, list)
    assert [d.shape for d in data] == [(64, 48), (32, 24), (16, 12)]
    for k, level in enumerate(data):
        np.testing.assert_array_equal(
            np.asarray(level[...]), OMEArrow.scan(path, level=k).tensor_view(layout="YX").to_numpy()
        )


def test_ome_zarr_levels(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_zarr")
    arr = np.random.default_rng(2).integers(0, 999, (2, 32, 32), dtype=np.uint16)
    path = tmp_path / "z.ome.zarr"
    OMEArrow(arr, "CYX").export("ome-zarr", path, levels=2)
    [(data, kwargs, _)] = read(path)
    assert kwargs["multiscale"] is True and [d.shape for d in data] == [(2, 32, 32), (2, 16, 16)]
    np.testing.assert_array_equal(np.asarray(data[0][1]), arr[1])


def test_opening_reads_no_pixels_and_a_plane_reads_its_chunks_only(tmp_path: Path) -> None:
    arr = np.random.default_rng(3).integers(0, 99, (1, 6, 1, 32, 32), dtype=np.uint16)
    out = write_dataset([arr], tmp_path / "d.ome.parquet", dim_order="TZCYX", chunk_shape=(16, 16), progress=False)
    [(data, _, _)] = read(out)
    assert isinstance(data, ImageArray) and data.shape == (6, 32, 32)
    source: Any = data.image.source
    assert source.chunks_read == 0
    np.testing.assert_array_equal(data[4], arr[0, 4, 0])
    assert source.chunks_read == 4  # one plane of 2 x 2 chunks, not the stack


def test_a_dataset_of_equal_images_is_one_stacked_layer(tmp_path: Path) -> None:
    arrs = [np.full((2, 8, 10), i, np.uint16) for i in range(5)]
    out = write_dataset(arrs, tmp_path / "plate.ome.parquet", dim_order="CYX", image_ids=list("abcde"), progress=False)
    [(data, kwargs, _)] = read(out)
    assert isinstance(data, StackArray) and data.shape == (5, 2, 8, 10)
    assert kwargs["channel_axis"] == 1 and kwargs["metadata"]["ome_arrow"]["image_ids"] == list("abcde")
    assert int(np.asarray(data[3, 1, 0, 0])) == 3
    np.testing.assert_array_equal(data[1:4, 0, 2], np.stack([a[0, 2] for a in arrs[1:4]]))
    assert data[5:, 0].shape == (0, 8, 10)


def test_a_dataset_of_mixed_images_is_one_layer_each(tmp_path: Path) -> None:
    arrs = [np.ones((8, 8), np.uint8), np.ones((2, 5, 6), np.uint8)]
    out = tmp_path / "mixed"
    out.mkdir()
    OMEArrow(arrs[0]).export("ome-tiff", out / "a.ome.tif")
    OMEArrow(arrs[1], "CYX").export("ome-tiff", out / "b.ome.tif")
    layers = read(out)
    assert [d.shape for d, _, _ in layers] == [(8, 8), (2, 5, 6)]
    assert layers[1][1]["channel_axis"] == 0


def test_what_is_not_ours_is_left_to_other_plugins(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "missing.ome.tif")) is None
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "empty")) is None


def test_a_damaged_file_raises_our_error_when_a_plane_is_read(tmp_path: Path) -> None:
    arr = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32)
    out = write_dataset([arr], tmp_path / "d.ome.parquet", dim_order="ZYX", chunk_shape=(32, 32), progress=False)
    [(data, _, _)] = read(out)
    chunks = out / "chunks.parquet"
    raw = bytearray(chunks.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = bytes(b ^ 0x5A for b in raw[mid : mid + 64])
    chunks.write_bytes(bytes(raw))
    with pytest.raises(OMEArrowError):
        np.asarray(data[1])


def test_scale_and_colormaps_from_metadata() -> None:
    meta = ImageMeta(sizes={"Z": 3, "Y": 4, "X": 4}, dtype=np.uint8, physical_size={"X": 1.0, "Y": 1.0, "Z": 1.0})
    assert scale_of(meta, "ZYX") == [1.0, 1.0, 1.0]
    unknown = replace(meta, physical_size={"X": None, "Y": None, "Z": None})
    assert scale_of(unknown, "ZYX") is None
    assert scale_of(ImageMeta(sizes={"Z": 3, "Y": 4, "X": 4}, dtype=np.uint8), "ZYX") is None  # unknown by default
    partly = replace(meta, physical_size={"X": 0.5, "Y": 0.5, "Z": None})
    assert scale_of(partly, "TZCYX") == [1.0, 1.0, 0.5, 0.5]
    assert colormap_name(np.array([1.0, 0.0, 1.0])) == "magenta"
    assert colormap_name(np.array([1.0, 0.5, 0.0])) == "#ff8000"


def test_the_plugin_imports_neither_napari_nor_heavy_frameworks() -> None:
    code = (
        "import sys, ome_arrow_napari, ome_arrow_napari.reader, ome_arrow_napari.layers; "
        "bad = {'napari', 'npe2', 'dask', 'qtpy', 'PyQt5', 'matplotlib'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dataset_scan_is_the_same_object_napari_reads(tmp_path: Path) -> None:
    out = write_dataset([np.zeros((4, 4), np.uint8)] * 2, tmp_path / "two.ome.parquet", progress=False)
    assert len(OMEArrowDataset.scan(out)) == 2 and isinstance(read(out)[0][0], StackArray)


def test_an_image_over_http_opens_lazily(http_server: Any) -> None:
    arr = np.random.default_rng(5).integers(0, 999, (3, 16, 16), dtype=np.uint16)
    OMEArrow(arr, "ZYX").export("parquet", http_server.root / "cells.parquet", layout="record")
    url = f"{http_server.url}/cells.parquet"
    assert get_reader(url) is not None and get_reader(f"{http_server.url}/notes.txt") is None
    [(data, kwargs, _)] = read(url)
    assert data.shape == (3, 16, 16) and kwargs["name"] == "cells.parquet"
    np.testing.assert_array_equal(np.asarray(data[2]), arr[2])
