"""Rendering under the reference's names (``ome_arrow.view``): matplotlib planes, PyVista volumes."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..display.plots import plot_plane, plot_volume, voxel_spacing
from ..errors import BackendUnavailableError
from .records import decode_record, record_array

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
    """A PyVista plotter showing channel ``c`` at t=0 as a volume (needs pyvista).

    The voxel size is ``scaling_values`` (Z, Y, X), else the record's physical sizes (1 where
    unknown), times ``downsample`` (every ``downsample``-th voxel is drawn).
    """
    from .. import OMEArrow as CoreImage

    pyvista = _pyvista()
    step = max(1, int(downsample))
    image = CoreImage(record_array(data))
    volume = image.tensor_view(t=0, c=int(c), layout="ZYX").to_numpy()[::step, ::step, ::step]
    spacing = voxel_spacing(image.meta.physical_size, scaling_values, step)
    return plot_volume(
        volume, spacing=spacing, opacity=opacity, clim=clim, show_axes=show_axes, show=show, pyvista=pyvista
    )
