"""``OMEArrow.view()``: matplotlib planes and composites (Agg, no window), PyVista volumes as an extra."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from png_support import decode_png

from ome_arrow_core import BackendUnavailableError, OMEArrow, write_dataset
from ome_arrow_core.errors import ArgumentError, SelectionError

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def test_plane_view_draws_the_chosen_plane() -> None:
    arr = np.random.default_rng(0).integers(0, 999, (2, 3, 4, 10, 12), dtype=np.uint16)
    img = OMEArrow(arr, "TCZYX")
    fig, ax, im = img.view(tcz=(1, 2, 3), show=False)
    np.testing.assert_array_equal(np.asarray(im.get_array()), arr[1, 2, 3])
    assert im.get_clim() == (float(arr[1, 2, 3].min()), float(arr[1, 2, 3].max()))
    assert ax.get_title() == "t=1, c=2, z=3" and fig.axes == [ax]
    _, _, fixed = img.view(tcz=(0, 0, 0), vmin=5, vmax=50, cmap="magma", show=False)
    assert fixed.get_clim() == (5.0, 50.0) and fixed.get_cmap().name == "magma"
    with pytest.raises(SelectionError):
        img.view(tcz=(0, 3, 0), show=False)
    with pytest.raises(ArgumentError, match="matplotlib, composite, pyvista"):
        img.view(how="vtk", show=False)


def test_autoscale_ignores_nan() -> None:
    arr = np.array([[np.nan, 1.0], [2.0, 4.0]], np.float32)
    _, _, im = OMEArrow(arr).view(show=False)
    assert im.get_clim() == (1.0, 4.0)


def test_composite_view_is_the_thumbnail_in_channel_colours(tmp_path: Path) -> None:
    arr = np.zeros((2, 20, 20), np.uint8)
    arr[0, :10] = 200
    arr[1, 10:] = 200
    record = OMEArrow(arr, "CYX").export("dict")
    record["pixels_meta"]["channels"][0]["color_rgba"] = 0xFF0000FF
    record["pixels_meta"]["channels"][1]["color_rgba"] = 0x0000FFFF
    img = OMEArrow(record)
    fig, _, im = img.view(how="composite", show=False)
    np.testing.assert_array_equal(np.asarray(im.get_array()), img.thumbnail(20))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # matplotlib's own PNG: filters and alpha, read by the test decoder
    drawn = decode_png(buf.getvalue())[..., :3].reshape(-1, 3)
    colours = {tuple(int(v) for v in p) for p in drawn}
    assert (255, 0, 0) in colours and (0, 0, 255) in colours


def test_a_lazy_image_reads_only_the_drawn_plane(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 99, (1, 4, 1, 16, 16), dtype=np.uint16)
    out = write_dataset([arr], tmp_path / "d.ome.parquet", dim_order="TZCYX", chunk_shape=(16, 16), progress=False)
    lazy = OMEArrow.scan(out)
    _, _, im = lazy.view(tcz=(0, 0, 2), show=False)
    np.testing.assert_array_equal(np.asarray(im.get_array()), arr[0, 2, 0])
    assert lazy.is_lazy


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(BackendUnavailableError, match=r'pip install "ome-arrow-core\[matplotlib\]"'):
        OMEArrow(np.zeros((4, 4), np.uint8)).view(show=False)


def test_volume_view_without_pyvista_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ome_arrow_core.compat import view as compat_view

    monkeypatch.setitem(sys.modules, "pyvista", None)  # import pyvista now raises ImportError
    img = OMEArrow(np.zeros((3, 4, 4), np.uint8), "ZYX")
    with pytest.raises(BackendUnavailableError, match=r'pip install "ome-arrow-core\[pyvista\]"'):
        img.view(how="pyvista", show=False)
    monkeypatch.setattr(compat_view, "pv", None)  # the compat module's record of a failed import
    with pytest.warns(RuntimeWarning, match="pip install pyvista"):
        with pytest.raises(compat_view.VizUnavailableError, match=r"ome-arrow\[viz\]"):
            compat_view.view_pyvista(img.export("dict"), show=False)


def test_compat_view_draws_through_the_same_code() -> None:
    from ome_arrow_core.compat.view import view_matplotlib

    arr = np.arange(2 * 3 * 5 * 6, dtype=np.uint16).reshape(2, 3, 5, 6)
    record = OMEArrow(arr, "CZYX").export("dict")
    _, ax, im = view_matplotlib(record, (0, 1, 2), show=False)
    np.testing.assert_array_equal(np.asarray(im.get_array()), arr[1, 2])
    assert ax.get_title() == "t=0, c=1, z=2"
