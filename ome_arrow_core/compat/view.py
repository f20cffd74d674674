"""Rendering under the reference's names (``ome_arrow.view``): matplotlib planes, PyVista volumes."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..display.plots import plot_plane, plot_volume
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


def view_matplotlib(
    data: Mapping[str, Any] | pa.StructScalar,
    tcz: Sequence[int] = (0, 0, 0),
    autoscale: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
    show: bool = True,
) -> tuple[Any, Any, Any]:
    """Draw plane (t, c, z) of a record; returns (figure, axes, image). ``show=False`` opens no window."""
    t, c, z = (int(v) for v in tcz)
    return plot_plane(
        decode_record(data)[t, c, z],
        title=f"t={t}, c={c}, z={z}",
        autoscale=autoscale,
        vmin=vmin,
        vmax=vmax,
        cmap=cmap,
        show=show,
    )


def view_pyvista(
    data: Mapping[str, Any] | pa.StructScalar,
    c: int = 0,
    downsample: int = 1,
    scaling_values: tuple[float, float, float] | None = None,
    opacity: str | float = "sigmoid",
    clim: tuple[float, float] | None = None,
    show_axes: bool = True,
    show: bool = True,
    **_options: Any,
) -> Any:
    """A PyVista plotter showing channel ``c`` at t=0 as a volume (needs pyvista)."""
    pyvista = _pyvista()
    volume = decode_record(data)[0, c, ::downsample, ::downsample, ::downsample]
    spacing = None if scaling_values is None else [float(v) for v in scaling_values[::-1]]
    return plot_volume(
        volume, spacing=spacing, opacity=opacity, clim=clim, show_axes=show_axes, show=show, pyvista=pyvista
    )
