"""Drawing with matplotlib (planes, composites) or PyVista (volumes), both optional imports.

Neither is a dependency of the core: a missing one raises BackendUnavailableError with the pip
command (``ome-arrow-core[matplotlib]``, ``ome-arrow-core[pyvista]``). ``show=False`` draws on
a matplotlib ``Figure`` without pyplot (no window, no GUI backend), or on an off-screen PyVista
plotter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, BackendUnavailableError

__all__ = ["MATPLOTLIB_HINT", "PYVISTA_HINT", "load_pyvista", "plot_plane", "plot_volume", "voxel_spacing", "Viewable"]

MATPLOTLIB_HINT = 'pip install "ome-arrow-core[matplotlib]"'
PYVISTA_HINT = 'pip install "ome-arrow-core[pyvista]"'
VIEW_MODES = ("matplotlib", "composite", "pyvista")


def _figure(show: bool) -> tuple[Any, Any]:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(
            f"view() draws with matplotlib, which is not installed: {MATPLOTLIB_HINT}"
        ) from exc
    if show:
        import matplotlib.pyplot as plt

        return plt.subplots()
    from matplotlib.figure import Figure

    fig = Figure()
    return fig, fig.add_subplot()


def plot_plane(
    plane: np.ndarray,
    *,
    title: str = "",
    autoscale: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
    show: bool = True,
) -> tuple[Any, Any, Any]:
    """Draw a 2-D plane (or an ``(h, w, 3)`` RGB picture) with matplotlib; returns (figure, axes, image).

    ``autoscale`` without ``vmin``/``vmax`` stretches the plane's finite minimum to maximum.
    """
    data = np.asarray(plane)
    if autoscale and vmin is None and vmax is None and data.ndim == 2:
        finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
        if finite.size:
            vmin, vmax = float(finite.min()), float(finite.max())
    fig, ax = _figure(show)
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return fig, ax, im


def load_pyvista() -> Any:
    """The pyvista module; BackendUnavailableError naming the pip command when it is missing."""
    try:
        import pyvista
    except ImportError as exc:
        raise BackendUnavailableError(f"volume views need pyvista, which is not installed: {PYVISTA_HINT}") from exc
    return pyvista


def voxel_spacing(
    physical_size: Mapping[str, float | None], scaling_values: Sequence[float] | None, step: int
) -> list[float]:
    """The (x, y, z) spacing of a volume drawn every ``step``-th voxel.

    ``scaling_values`` is the (Z, Y, X) voxel size, as in ome-arrow 0.1.0; without it the physical
    sizes, 1 where unknown.
    """
    if scaling_values is None:
        zyx = [1.0 if (v := physical_size.get(axis)) is None else float(v) for axis in "ZYX"]
    elif len(scaling_values) == 3:
        zyx = [float(v) for v in scaling_values]
    else:
        raise ArgumentError(f"scaling_values is the (Z, Y, X) voxel size, got {tuple(scaling_values)!r}")
    return [v * step for v in zyx[::-1]]


def plot_volume(
    volume: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    opacity: str | float = "sigmoid",
    clim: tuple[float, float] | None = None,
    show_axes: bool = True,
    show: bool = True,
    pyvista: Any = None,
) -> Any:
    """A PyVista plotter showing a ``(Z, Y, X)`` volume; ``spacing`` is the (x, y, z) voxel size."""
    pv = pyvista if pyvista is not None else load_pyvista()
    data = np.asarray(volume)
    if data.ndim != 3:
        raise ArgumentError(f"a volume view takes a (Z, Y, X) array, got shape {data.shape}")
    grid = pv.ImageData(dimensions=data.shape[::-1])
    if spacing is not None:
        grid.spacing = tuple(float(v) for v in spacing)
    if data.dtype == np.bool_:
        data = data.view(np.uint8)  # VTK has no bool scalars; the same bytes read as 0/1 (no cast)
    grid.point_data["values"] = np.ascontiguousarray(data).reshape(-1)
    plotter = pv.Plotter(off_screen=not show)
    mean_side = float(np.mean(data.shape))
    # PyVista's own opacity unit distance (diagonal / (mean side - 1)) divides by zero for a single voxel.
    unit = grid.length / (mean_side - 1) if mean_side > 1 else 1.0
    plotter.add_volume(grid, opacity=opacity, clim=clim, opacity_unit_distance=unit)
    if show_axes:
        plotter.show_axes()
    if show:
        plotter.show()
    return plotter


class Viewable:
    """``view()`` for OMEArrow images, with the reference package's keywords."""

    __slots__ = ()

    def view(
        self,
        how: str = "matplotlib",
        tcz: Sequence[int] = (0, 0, 0),
        autoscale: bool = True,
        vmin: float | None = None,
        vmax: float | None = None,
        cmap: str = "gray",
        show: bool = True,
        c: int | None = None,
        downsample: int = 1,
        opacity: str | float = "sigmoid",
        clim: tuple[float, float] | None = None,
        show_axes: bool = True,
        scaling_values: tuple[float, float, float] | None = None,
        size: int | None = None,
    ) -> Any:
        """Draw this image.

        - ``how="matplotlib"``: plane ``tcz=(t, c, z)`` in ``cmap``; returns (figure, axes, image).
        - ``how="composite"``: every channel in its colour, max over Z at T ``tcz[0]``, robust
          contrast (:meth:`thumbnail`, longest side ``size``, default the image's own); same return.
        - ``how="pyvista"``: channel ``c`` (default ``tcz[1]``) at T ``tcz[0]`` as a volume, every
          ``downsample``-th voxel, voxel size ``scaling_values`` (Z, Y, X) or the physical sizes;
          returns the plotter.

        Only the pixels drawn are read from a lazy image. ``show=False`` opens no window.
        """
        img: Any = self  # an OMEArrow (this module cannot import it: image.py imports this one)
        t, ch, z = (int(v) for v in tcz)
        if how == "matplotlib":
            plane = img.tensor_view(t=t, c=ch, z=z, layout="YX").to_numpy()
            return plot_plane(
                plane, title=f"t={t}, c={ch}, z={z}", autoscale=autoscale, vmin=vmin, vmax=vmax, cmap=cmap, show=show
            )
        if how == "composite":
            picture = img.thumbnail(size or max(img.sizes["Y"], img.sizes["X"]), t=t)
            return plot_plane(picture, title=f"t={t}, max over Z", show=show)
        if how == "pyvista":
            pv = load_pyvista()
            step = max(1, int(downsample))
            volume = img.tensor_view(t=t, c=ch if c is None else int(c), layout="ZYX").to_numpy()[
                ::step, ::step, ::step
            ]
            return plot_volume(
                volume,
                spacing=voxel_spacing(img.meta.physical_size, scaling_values, step),
                opacity=opacity,
                clim=clim,
                show_axes=show_axes,
                show=show,
                pyvista=pv,
            )
        raise ArgumentError(f"view(how={how!r}) is not a view mode; expected one of {', '.join(VIEW_MODES)}")
