"""Rendering under the reference's names (``ome_arrow.view``): matplotlib planes, PyVista volumes."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import BackendUnavailableError
from .records import decode_record

__all__ = ["VizUnavailableError", "pv", "view_matplotlib", "view_pyvista"]

_UNLOADED: Any = object()
#: The pyvista module once loaded (None when it is not installed); loaded on first use.
pv: Any = _UNLOADED
_HINT = "pip install pyvista (the reference package's ome-arrow[viz] extra)"


class VizUnavailableError(BackendUnavailableError, RuntimeError):
    """PyVista (or its VTK stack) is not installed."""


def _pyvista() -> Any:
    global pv
    if pv is _UNLOADED:
        try:
            import pyvista
        except ImportError:
            pv = None
        else:
            pv = pyvista
    if pv is None:
        warnings.warn(f"PyVista is not installed: {_HINT}", RuntimeWarning, stacklevel=3)
        raise VizUnavailableError(f"PyVista-based visualization needs pyvista: {_HINT}")
    return pv


def view_matplotlib(data: Mapping[str, Any] | pa.StructScalar, tcz: Sequence[int] = (0, 0, 0),
                    autoscale: bool = True, vmin: float | None = None, vmax: float | None = None,
                    cmap: str = "gray", show: bool = True) -> tuple[Any, Any, Any]:
    """Draw plane (t, c, z) of a record; returns (figure, axes, image). ``show=False`` opens no window."""
    t, c, z = (int(v) for v in tcz)
    plane = decode_record(data)[t, c, z]
    if autoscale and vmin is None and vmax is None:
        vmin, vmax = float(np.min(plane)), float(np.max(plane))
    if show:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
    else:
        from matplotlib.figure import Figure

        fig = Figure()
        ax = fig.add_subplot()
    im = ax.imshow(plane, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(f"t={t}, c={c}, z={z}")
    ax.axis("off")
    if show:
        plt.show()
    return fig, ax, im


def view_pyvista(data: Mapping[str, Any] | pa.StructScalar, c: int = 0, downsample: int = 1,
                 scaling_values: tuple[float, float, float] | None = None, opacity: str | float = "sigmoid",
                 clim: tuple[float, float] | None = None, show_axes: bool = True, show: bool = True,
                 **_options: Any) -> Any:
    """A PyVista plotter showing channel ``c`` at t=0 as a volume (needs pyvista)."""
    pyvista = _pyvista()
    volume = decode_record(data)[0, c, ::downsample, ::downsample, ::downsample]
    grid = pyvista.ImageData(dimensions=volume.shape[::-1])
    if scaling_values is not None:
        grid.spacing = tuple(float(v) for v in scaling_values[::-1])
    grid.point_data["values"] = np.ascontiguousarray(volume).reshape(-1)
    plotter = pyvista.Plotter(off_screen=not show)
    plotter.add_volume(grid, opacity=opacity, clim=clim)
    if show_axes:
        plotter.show_axes()
    if show:
        plotter.show()
    return plotter
