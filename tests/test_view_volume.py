"""``view(how="pyvista")``: the plotter holds the image as a VTK volume and renders it off screen.

Needs pyvista (``ome-arrow-core[pyvista]``) and an off-screen OpenGL (scripts/setup.sh installs
both; a machine without them skips with the reason). tests/test_view_plots.py checks the message
when pyvista is missing.
"""

from __future__ import annotations

import ctypes.util
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.compat.view import view_pyvista
from ome_arrow_core.errors import ArgumentError, SelectionError

pv = pytest.importorskip("pyvista", reason='view(how="pyvista") needs pyvista: pip install "ome-arrow-core[pyvista]"')

# VTK's wheels load OpenGL when a window is made: without libX11 and Mesa's EGL or OSMesa they crash the process.
_GL = ctypes.util.find_library("X11") and (ctypes.util.find_library("OSMesa") or ctypes.util.find_library("EGL"))
pytestmark = pytest.mark.skipif(
    not _GL, reason="no off-screen OpenGL for VTK: apt-get install libosmesa6 libx11-6 (scripts/setup.sh does)"
)


def _record(arr: np.ndarray, order: str, sizes: dict[str, float | None]) -> dict[str, Any]:
    record: dict[str, Any] = OMEArrow(arr, order).export("dict")
    for axis, size in sizes.items():
        record["pixels_meta"][f"physical_size_{axis.lower()}"] = size
    return record


def _volume(plotter: Any) -> Any:
    """The one volume actor of a plotter."""
    volumes = [a for a in plotter.renderer.actors.values() if isinstance(a, pv.Volume)]
    assert len(volumes) == 1, plotter.renderer.actors
    return volumes[0]


def _values(grid: Any) -> np.ndarray:
    """The grid's point values as a (Z, Y, X) array (VTK stores X fastest)."""
    return np.asarray(grid.point_data["values"]).reshape(grid.dimensions[::-1])


def test_the_volume_is_the_chosen_channel_with_its_physical_spacing() -> None:
    arr = np.random.default_rng(0).integers(3, 900, (2, 3, 4, 6, 8), dtype=np.uint16)  # T C Z Y X
    img = OMEArrow(_record(arr, "TCZYX", {"X": 0.25, "Y": 0.5, "Z": 2.0}))
    plotter = img.view(how="pyvista", tcz=(1, 2, 0), show=False)
    try:
        assert isinstance(plotter, pv.Plotter) and plotter.off_screen
        grid = _volume(plotter).mapper.dataset
        assert grid.dimensions == (8, 6, 4)
        assert grid.spacing == pytest.approx((0.25, 0.5, 2.0))
        np.testing.assert_array_equal(_values(grid), arr[1, 2])
        assert _values(grid).dtype == np.uint16
        assert tuple(_volume(plotter).mapper.scalar_range) == (arr[1, 2].min(), arr[1, 2].max())
    finally:
        plotter.close()


def test_c_downsample_and_scaling_values_choose_what_is_drawn() -> None:
    arr = np.random.default_rng(1).random((2, 6, 8, 10)).astype(np.float32)  # C Z Y X
    img = OMEArrow(_record(arr, "CZYX", {"X": 0.5, "Y": None, "Z": None}))
    plotter = img.view(how="pyvista", c=1, downsample=2, clim=(0.2, 0.8), show=False)
    try:
        grid = _volume(plotter).mapper.dataset
        np.testing.assert_array_equal(_values(grid), arr[1, ::2, ::2, ::2])
        assert grid.spacing == pytest.approx((1.0, 2.0, 2.0))  # unknown sizes are 1, times the step
        assert tuple(_volume(plotter).mapper.scalar_range) == pytest.approx((0.2, 0.8))
    finally:
        plotter.close()
    plotter = img.view(how="pyvista", scaling_values=(3.0, 2.0, 1.0), show=False)
    try:  # (Z, Y, X) as in ome-arrow 0.1.0; VTK's spacing is (x, y, z)
        assert _volume(plotter).mapper.dataset.spacing == pytest.approx((1.0, 2.0, 3.0))
    finally:
        plotter.close()
    with pytest.raises(ArgumentError, match=r"\(Z, Y, X\)"):
        img.view(how="pyvista", scaling_values=(1.0, 2.0), show=False)  # type: ignore[arg-type]
    with pytest.raises(SelectionError):
        img.view(how="pyvista", c=2, show=False)


def test_a_bool_mask_is_drawn_as_its_zeros_and_ones() -> None:
    mask = np.random.default_rng(2).random((3, 5, 7)) > 0.5
    plotter = OMEArrow(mask, "ZYX").view(how="pyvista", show=False)
    try:
        np.testing.assert_array_equal(_values(_volume(plotter).mapper.dataset), mask.astype(np.uint8))
    finally:
        plotter.close()


def test_the_off_screen_screenshot_shows_the_volume() -> None:
    arr = np.zeros((8, 16, 16), np.uint16)
    arr[2:6, 4:12, 4:12] = 1000
    plotter = OMEArrow(arr, "ZYX").view(how="pyvista", show_axes=False, show=False)
    try:
        plotter.window_size = (160, 120)
        shot = plotter.screenshot(return_img=True)
        assert shot.shape == (120, 160, 3) and shot.dtype == np.uint8
        plotter.remove_actor(_volume(plotter))
        empty = plotter.screenshot(return_img=True)
    finally:
        plotter.close()
    changed = np.any(shot != empty, axis=-1)
    assert changed.sum() > 100  # the volume covers pixels that the scene without it leaves as they were


@settings(max_examples=6, deadline=None)
@given(
    z=st.integers(1, 3),
    y=st.integers(1, 5),
    x=st.integers(1, 5),
    step=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_compat_view_pyvista_matches_the_core_view(z: int, y: int, x: int, step: int, seed: int) -> None:
    arr = np.random.default_rng(seed).integers(-500, 500, (2, z, y, x), dtype=np.int16)  # C Z Y X
    record = _record(arr, "CZYX", {"X": 0.5, "Y": 0.75, "Z": None})
    ours = OMEArrow(record).view(how="pyvista", c=1, downsample=step, show=False)
    theirs = view_pyvista(record, c=1, downsample=step, show=False)
    try:
        a, b = _volume(ours).mapper.dataset, _volume(theirs).mapper.dataset
        np.testing.assert_array_equal(_values(b), arr[1, ::step, ::step, ::step])
        np.testing.assert_array_equal(_values(a), _values(b))
        assert a.spacing == pytest.approx(b.spacing)
        assert b.spacing == pytest.approx((0.5 * step, 0.75 * step, 1.0 * step))
    finally:
        ours.close()
        theirs.close()


def test_a_single_voxel_is_a_volume_too() -> None:
    plotter = OMEArrow(np.array([[[7]]], np.uint8), "ZYX").view(how="pyvista", show=False)
    try:
        grid = _volume(plotter).mapper.dataset
        assert grid.dimensions == (1, 1, 1) and _values(grid).tolist() == [[[7]]]
        assert plotter.screenshot(return_img=True).size > 0
    finally:
        plotter.close()


def test_compat_scaling_values_are_z_y_x() -> None:
    record = _record(np.ones((2, 3, 4), np.uint8), "ZYX", {"X": 0.1, "Y": 0.1, "Z": 0.1})
    plotter = view_pyvista(record, scaling_values=(4.0, 2.0, 1.0), downsample=1, show=False)
    try:
        assert _volume(plotter).mapper.dataset.spacing == pytest.approx((1.0, 2.0, 4.0))
    finally:
        plotter.close()
    with pytest.raises(ArgumentError, match=r"\(Z, Y, X\)"):
        view_pyvista(record, scaling_values=(1.0, 2.0), show=False)  # type: ignore[arg-type]
