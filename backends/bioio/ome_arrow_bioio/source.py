"""BioioSource: one scene of a file a bioio reader plugin opens, read lazily through its dask array.

Opening reads the reader's metadata only (dims, dtype, physical sizes, channel names). A
read indexes the reader's ``dask_data`` (bioio's own dimension order) with the selection and
computes just that, so only the chunks it intersects are read: readers that take
``chunk_dims`` are opened with one plane per chunk. Warnings the reader raises while opening
are kept in ``info()["reader_warnings"]`` instead of escaping (opens take turns for that: the
warning filters are process-wide).

Readers may open the file again for a read (bioio-tifffile does): a local file written or replaced since
it was opened raises StorageError (errno ESTALE) rather than giving its new pixels under the metadata read
then, and pixels of another dtype than the reader declared are refused, never cast.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ome_arrow_core import Channel, ImageMeta, OMEArrowError, Selection
from ome_arrow_core.plugin_api import (
    ArgumentError,
    DTypeError,
    SelectionError,
    StorageError,
    check_dtype,
    reading,
    where,
)

from .choose import open_reader
from .dims import DimMap
from .units import stated_units

__all__ = ["BioioSource", "pick_scene"]

_RGBA = ("R", "G", "B", "A")
#: warnings.catch_warnings swaps process-wide state: opens that record warnings take turns.
_WARNINGS_LOCK = threading.Lock()


def pick_scene(scenes: Sequence[str], scene: int | str | None, row: int, path: Path) -> int:
    """The index of the scene ``scene`` (an index or a scene id) or, when it is None, ``row``."""
    if scene is None:
        index = row
    elif isinstance(scene, str):
        if scene not in scenes:
            raise SelectionError(f"scene={scene!r} is not a scene of {path}; its scenes: {', '.join(scenes)}")
        index = list(scenes).index(scene)
    elif isinstance(scene, int) and not isinstance(scene, bool):
        index = scene
    else:
        raise ArgumentError(f"scene must be a scene index or a scene id (str), got {scene!r}")
    if scene is not None and row not in (0, index):
        raise ArgumentError(f"scene={scene!r} and row={row} pick different scenes; pass one of them")
    if not 0 <= index < len(scenes):
        raise SelectionError(
            f"scene {index} is out of range: {path} has {len(scenes)} scenes "
            f"({', '.join(scenes)}); valid indices are 0..{len(scenes) - 1}"
        )
    return index


class BioioSource:
    """Scene ``scene`` (or ``row``) of ``path`` as a pixel source, through bioio reader ``reader``
    (a plugin name; None: the first installed plugin that opens it)."""

    meta: ImageMeta

    def __init__(
        self,
        path: str | Path,
        *,
        scene: int | str | None = None,
        row: int = 0,
        reader: str | None = None,
        chunk_dims: Sequence[str] | None = None,
        reader_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self._version = _version(self.path)  # before the reader opens it: a change since is seen
        with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.plugin, self._reader = open_reader(self.path, reader, chunk_dims, reader_options or {})
            with reading(self.path, None, f"reading the scenes ({self.plugin})"):
                self.scenes = tuple(str(s) for s in self._reader.scenes)
            self.scene = pick_scene(self.scenes, scene, row, self.path)
            self._member = f"scene {self.scenes[self.scene]}"
            with reading(self.path, self._member, f"reading the metadata ({self.plugin})"):
                self._reader.set_scene(self.scene)
                order, shape = str(self._reader.dims.order), tuple(self._reader.dims.shape)
                self._data = self._reader.dask_data
                file_dtype = np.dtype(self._reader.dtype)
                pps = self._reader.physical_pixel_sizes
                names = self._reader.channel_names
        self._args = (self.scene, 0, self.plugin, tuple(chunk_dims) if chunk_dims else None, dict(reader_options or {}))
        self.reader_warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
        self._dims = DimMap.from_bioio(order, shape, where(self.path, self._member))
        try:
            self._dtype = check_dtype(file_dtype.newbyteorder("="))
        except DTypeError as exc:
            raise DTypeError(f"{where(self.path, self._member)}: {exc}") from exc
        self._pps = {ax: _number(getattr(pps, ax, None)) for ax in "ZYX"}
        self._print_resolution = self.plugin == "bioio-tifffile" and not _is_imagej(self.path)
        with reading(self.path, self._member, f"reading the physical size units ({self.plugin})"):
            self._units = stated_units(self._reader)
        self.meta = self._meta(names)

    def _meta(self, names: Sequence[Any] | None) -> ImageMeta:
        size = {ax: v or None for ax, v in self._pps.items()}  # None: the file gives none
        if self._print_resolution:  # bioio-tifffile's X/Y of a TIFF not ImageJ's: a print resolution, 1 by default
            size.update(X=None, Y=None)
        for ax, unit in self._units.items():
            if unit is None and size.get(ax) == 1.0:  # an NGFF axis without a unit, at scale 1: no size stated
                size[ax] = None
        chunks = {role: int(c[0]) for role, c in zip(self._dims.roles, self._data.chunks, strict=True) if role}
        single = len(self.scenes) == 1
        return ImageMeta(
            sizes=self._dims.sizes(),
            dtype=self._dtype,
            id=f"img-{self.scene}",
            name=self.path.name if single else f"{self.path.name} [{self.scenes[self.scene]}]",
            physical_size=size,
            physical_unit={"X": "µm", "Y": "µm", "Z": "µm", **{ax: u for ax, u in self._units.items() if u}},
            channels=self._channels(names),
            chunk_shape=(chunks.get("Z", 1), chunks["Y"], chunks["X"]),
        )

    def _channels(self, names: Sequence[Any] | None) -> tuple[Channel, ...]:
        n_c, n_s = self._dims.length("C"), self._dims.samples
        base = [str(n) for n in names] if names is not None and len(names) == n_c else [f"C{i}" for i in range(n_c)]
        out = []
        for i in range(n_c * n_s):
            c, s = divmod(i, n_s)
            sample = _RGBA[s] if n_s in (3, 4) else f"S{s}"
            name = base[c] if n_s == 1 else (sample if n_c == 1 else f"{base[c]}/{sample}")
            out.append(Channel(id=f"ch-{i}", name=name))
        return tuple(out)

    # -- lifetime ---------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the arguments it was opened with: a worker process reopens the file."""
        return (_reopen, (str(self.path), *self._args))

    def __repr__(self) -> str:
        return f"BioioSource({str(self.path)!r}, scene={self.scene}, reader={self.plugin!r})"

    # -- reading ----------------------------------------------------------------------------
    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel`` as TZCYX, computing only the reader's chunks the selection intersects."""
        lazy, finish = self._dims.read(self._data, sel)
        try:
            with reading(self.path, self._member, f"reading pixels ({self.plugin})"):
                data = np.asarray(lazy.compute(scheduler="synchronous"))
        except Exception:  # a file written since: that is the error, not what reading it raised
            self._unchanged()
            raise
        self._unchanged()
        out = finish(data)
        if out.dtype.newbyteorder("=") != self._dtype:
            raise OMEArrowError(
                f"{where(self.path, self._member)}: {self.plugin} returned {out.dtype} pixels, but declared "
                f"{self._dtype} when the file was opened; they are not cast. Open it again, or report it to the "
                "reader's authors"
            )
        if out.shape != sel.shape:
            raise OMEArrowError(
                f"{where(self.path, self._member)}: {self.plugin} returned {out.shape} pixels for "
                f"{sel}, expected {sel.shape}"
            )
        return np.ascontiguousarray(out, dtype=self._dtype)

    def _unchanged(self) -> None:
        """Raise StorageError (ESTALE) when the local file opened was written or replaced since."""
        if self._version is None or _version(self.path) == self._version:
            return
        err = StorageError(
            f"{where(self.path, self._member)} was written or replaced after it was opened: {self.plugin} may read "
            "it again by name, so its pixels could be another file's, under the shape and dtype read then; nothing "
            "more is read from it. Open it again"
        )
        err.errno = errno.ESTALE
        raise err

    # -- description ------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``: the bioio plugin, dims and their mapping, scenes, chunks."""
        return {
            "storage": "bioio",
            "bioio_reader": self.plugin,
            "bioio_dims": self._dims.order,
            "bioio_shape": list(self._dims.shape),
            "axes_mapping": self._dims.mapping,
            "scene": self.scene,
            "scenes": list(self.scenes),
            "bioio_physical_pixel_sizes": dict(self._pps),  # None: the file gives none
            "dask_chunks": [list(c) for c in self._data.chunks],
            "file_dtype": str(np.dtype(self._reader.dtype)),
            "reader_warnings": list(self.reader_warnings),
        }


def _version(path: Path) -> tuple[int, int, int] | None:
    """Inode, size and modification time of a regular local file (what tells one version from another); None for
    anything else (a directory, such as an OME-Zarr store, or nothing there)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def _is_imagej(path: Path) -> bool:
    """True when ``path`` is an ImageJ TIFF, whose resolution tags are a calibration (in its ``unit``).

    Any other TIFF's XResolution/YResolution are a print resolution (1 pixel per unit unless set), which
    bioio-tifffile reports as a pixel size in µm; a file that does not open is left to the reader's errors."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_imagej)
    except Exception:  # its reader opened it; a damaged one fails later, naming the file
        return False


def _number(v: Any) -> float | None:
    """A positive finite size, or None (bioio gives None, or a file may hold 0 or NaN)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def _reopen(
    path: str,
    scene: int | str | None,
    row: int,
    reader: str | None,
    chunk_dims: Sequence[str] | None,
    reader_options: Mapping[str, Any],
) -> BioioSource:
    return BioioSource(path, scene=scene, row=row, reader=reader, chunk_dims=chunk_dims, reader_options=reader_options)
