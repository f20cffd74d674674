"""TiffSource: one series of a TIFF file, read page by page and tile by tile on request.

A read touches only the pages its (t, z, c) selection maps to, and within each page only
what its Y/X crop needs: the rows of uncompressed pages, or the strips and tiles that
intersect the crop (read from ``dataoffsets``/``databytecounts`` and decoded with
tifffile's own ``page.decode``). Reads are thread-safe: file access is serialized on the
file handle's lock, decoding runs outside it.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ome_arrow_core import (
    BackendUnavailableError,
    DTypeError,
    ImageMeta,
    OMEArrowError,
    Selection,
    SelectionError,
)
from ome_arrow_core.plugin_api import SUPPORTED

from ome_arrow_core.plugin_api import require_regular_file
from ome_arrow_core.plugin_api import DamagedFileError

from .axes import AxisMap
from .damage import check_declared, check_extent, strict_tifffile
from .metadata import image_meta

if TYPE_CHECKING:
    import tifffile

__all__ = ["TiffSource"]

_JPEG = frozenset({6, 7, 33007, 34892})


@contextmanager
def _codec_hint() -> Iterator[None]:
    """Turn tifffile's 'requires imagecodecs' failures into BackendUnavailableError."""
    try:
        yield
    except (ValueError, KeyError, ImportError) as exc:
        if "imagecodecs" not in str(exc):
            raise
        raise BackendUnavailableError(
            f"decoding this TIFF needs the imagecodecs package ({exc}); "
            "install it with: pip install imagecodecs"
        ) from exc


def _span(r: range) -> tuple[int, int, slice]:
    """Bounding ``[lo, hi)`` of a non-empty range and the slice that picks it from there."""
    lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
    stop = r.stop - lo
    return lo, hi, slice(r.start - lo, stop if stop >= 0 else None, r.step)


class TiffSource:
    """Series ``series`` of the TIFF file at ``path`` as a pixel source.

    Counters of I/O done so far: ``pages_read`` (pages or planes of pages read),
    ``segments_read`` (strips or tiles read) and ``bytes_read`` (bytes read from file).
    """

    meta: ImageMeta

    def __init__(self, path: str | Path, *, series: int = 0) -> None:
        import tifffile

        self.path = Path(path)
        self.series_index = int(series)
        self.pages_read = 0
        self.segments_read = 0
        self.bytes_read = 0
        self._size = require_regular_file(self.path).st_size
        tif = None
        try:
            with strict_tifffile(self.path, "opening"):
                tif = tifffile.TiffFile(self.path)
        except BaseException:
            if tif is not None:
                tif.close()
            raise
        self._tif = tif
        self._finalizer = weakref.finalize(self, self._tif.close)
        self._state = threading.Lock()
        self._pages: dict[int, Any] = {}
        self._geometry: dict[int, np.ndarray] = {}
        try:
            with strict_tifffile(self.path, "reading the series"):
                self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        tif = self._tif
        tif.filehandle.set_lock(True)
        n = len(tif.series)
        if not 0 <= self.series_index < n:
            raise SelectionError(
                f"row={self.series_index} is out of range: {self.path.name} holds {n} image "
                f"series; valid rows are 0..{n - 1}"
            )
        s = tif.series[self.series_index]
        if s.transform is not None:
            raise OMEArrowError(
                f"{self.path.name}: tifffile transforms the values of this {s.kind} series; "
                "it cannot be read plane by plane. Read it with tifffile.imread instead."
            )
        self._series = s
        self._keyframe = kf = s.keyframe
        self._axes = AxisMap.from_series(s.axes, s.shape, math.prod(kf.shape))
        # An uncompressed series stored contiguously is read by offset, as tifffile does,
        # without parsing an IFD per page (some such files have one IFD for the stack).
        self._virtual = s.dataoffset is not None
        if not self._virtual and len(s) != self._axes.n_pages:
            raise OMEArrowError(
                f"{self.path.name}: series {self.series_index} has {len(s)} pages but its "
                f"shape {s.shape} needs {self._axes.n_pages}, and its data is not contiguous"
            )
        if kf.dtype is None:
            raise DTypeError(
                f"{self.path.name}: tifffile cannot decode its pixel type (SampleFormat "
                f"{kf.sampleformat}, {kf.bitspersample} bits per sample); supported dtypes "
                f"are {', '.join(SUPPORTED)}"
            )
        self._file_dtype = np.dtype(tif.byteorder + kf.dtype.char)
        self._dataoffset = int(s.dataoffset or 0)
        try:
            self.meta = image_meta(tif, s, self.series_index, self._axes, self.path.name)
        except DTypeError as exc:
            raise DTypeError(f"{self.path.name}: {exc}") from exc
        check_declared(tif, s, self.series_index, self.meta.sizes, self.meta.dtype, self.path)
        end = self._dataoffset + self._axes.n_pages * kf.nbytes
        if self._virtual and end > self._size:
            raise DamagedFileError(
                f"{self.path}: its {self._axes.n_pages} pages need bytes up to {end} but the file has "
                f"{self._size}; the file is truncated"
            )

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file; later reads raise OMEArrowError."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (or the source was garbage-collected)."""
        return not self._finalizer.alive

    def __enter__(self) -> TiffSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (path, series): a worker process reopens the file."""
        return (_reopen, (str(self.path), self.series_index))

    def __repr__(self) -> str:
        return f"TiffSource({str(self.path)!r}, series={self.series_index}, axes={self._series.axes!r})"

    # -- reading --------------------------------------------------------------------------
    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel`` as a ``TZCYX`` array, reading only the pages and tiles it needs."""
        if self.closed:
            raise OMEArrowError(f"{self.path.name} is closed; open it again to read pixels")
        out = np.empty(sel.shape, self.meta.dtype)
        y0, y1, ysl = _span(sel.y)
        x0, x1, xsl = _span(sel.x)
        jobs: dict[int, list[tuple[tuple[int, int, int], tuple[int | slice, ...]]]] = {}
        for ti, t in enumerate(sel.t):
            for zi, z in enumerate(sel.z):
                for ci, c in enumerate(sel.c):
                    page, plane = self._axes.locate(t, z, c)
                    jobs.setdefault(page, []).append(((ti, zi, ci), plane))
        crop_shape = tuple(
            y1 - y0 if a == "Y" else x1 - x0 if a == "X" else n
            for a, n in zip(self._axes.page_axes, self._axes.page_shape, strict=True)
        )
        # Single-plane raw pages read full-width rows straight into ``out`` (no extra copy).
        direct = self._axes.page_axes == "YX" and sel.x == range(self._keyframe.imagewidth)
        with strict_tifffile(self.path, "reading pixels"), _codec_hint():
            for page in sorted(jobs):
                raw = self._raw_location(page) if direct and sel.y.step == 1 else None
                if raw is not None and len(jobs[page]) == 1:
                    self._read_rows(*raw, y0, y1, 0, x1, into=out[jobs[page][0][0]])
                    continue
                data = self._read_shaped(page, y0, y1, x0, x1).reshape(crop_shape)
                for pos, plane in jobs[page]:
                    out[pos] = data[plane][ysl, xsl]
        return out

    def _count(self, pages: int, segments: int, nbytes: int) -> None:
        with self._state:
            self.pages_read += pages
            self.segments_read += segments
            self.bytes_read += nbytes

    def _page(self, index: int) -> Any:
        """Page (TiffPage or TiffFrame, None when missing) ``index`` of the series."""
        page = self._pages.get(index)
        if page is None and index not in self._pages:
            with self._tif.filehandle.lock:
                page = self._series[index]
                if page is not None:
                    page.parent.filehandle.set_lock(True)  # pages may live in other files
                    size = self._size if page.parent is self._tif else page.parent.filehandle.size
                    check_extent(page, size, Path(page.parent.filehandle.path), index)
            self._pages[index] = page
        return page

    def _raw_location(self, index: int) -> tuple[tifffile.TiffFile, int] | None:
        """File and offset of page ``index`` when it is stored uncompressed and contiguous."""
        if self._virtual:
            return self._tif, self._dataoffset + index * self._keyframe.nbytes
        page = self._page(index)
        if page is None or not self._keyframe.is_final:
            return None
        return page.parent, int(page.dataoffsets[0])

    def _read_shaped(self, index: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Page ``index`` cropped to rows y0:y1 and columns x0:x1, shaped (S, D, Y, X, S)."""
        kf = self._keyframe
        raw = self._raw_location(index)
        if raw is not None:
            return self._read_rows(*raw, y0, y1, x0, x1)
        page = self._page(index)
        if page is None:  # a plane the file does not hold: zeros, as tifffile reads it
            ss, d, _, _, sc = kf.shaped
            return np.zeros((ss, d, y1 - y0, x1 - x0, sc), self.meta.dtype)
        whole = y1 - y0 == kf.imagelength and x1 - x0 == kf.imagewidth
        if whole or len(page.dataoffsets) == 1:
            arr = page.asarray(squeeze=False, lock=page.parent.filehandle.lock)
            self._count(1, len(page.dataoffsets), sum(page.databytecounts))
            return arr[:, :, y0:y1, x0:x1, :]  # type: ignore[no-any-return]
        return self._read_segments(page, y0, y1, x0, x1)

    def _read_rows(
        self, tif: tifffile.TiffFile, offset: int, y0: int, y1: int, x0: int, x1: int,
        into: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows y0:y1 of an uncompressed contiguous page at ``offset`` (one read per plane).

        ``into``, when given, is a C-contiguous array of the rows' size that receives them.
        """
        ss, depth, ny, nx, sc = self._keyframe.shaped
        row = nx * sc * self._file_dtype.itemsize
        shape = (ss, depth, y1 - y0, nx, sc)
        if into is None:
            out = np.empty(shape, self._file_dtype.newbyteorder("="))
        elif into.flags.c_contiguous and into.size == math.prod(shape):
            out = into.reshape(shape)
        else:
            raise ValueError(f"rows need a C-contiguous target of shape {shape}")
        fh = tif.filehandle
        with fh.lock:
            for s in range(ss):
                for d in range(depth):
                    fh.seek(offset + ((s * depth + d) * ny + y0) * row)
                    fh.read_array(self._file_dtype, out[s, d].size, out=out[s, d])
        self._count(1, 1, out.nbytes)
        return out[:, :, :, x0:x1, :]

    def _segment_geometry(self, kf: Any) -> np.ndarray:
        """(index, s, d, y, x, depth, height, width) of every strip or tile of ``kf``'s pages."""
        key = kf.hash
        geo = self._geometry.get(key)
        if geo is None:
            with kf.parent.filehandle.lock:
                kf.decode  # noqa: B018  (first access builds the decoder; not thread-safe)
            rows = []
            for i in range(math.prod(kf.chunked)):
                _, (s, d, y, x, _), shape = kf.decode(None, i)
                rows.append((i, s, d, y, x, *shape[:3]))
            geo = np.array(rows, dtype=np.int64).reshape(-1, 8)
            self._geometry[key] = geo
        return geo

    def _read_segments(self, page: Any, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Decode only the strips or tiles of ``page`` that intersect the crop."""
        kf = page.keyframe
        geo = self._segment_geometry(kf)
        _, sy, sx, sh, sw = geo[:, 0], geo[:, 3], geo[:, 4], geo[:, 6], geo[:, 7]
        hit = (sy < y1) & (sy + sh > y0) & (sx < x1) & (sx + sw > x0)
        wanted = [int(i) for i in geo[hit, 0]]
        offsets = [page.dataoffsets[i] for i in wanted]
        counts = [page.databytecounts[i] for i in wanted]
        ss, depth, _, _, sc = kf.shaped
        out = np.empty((ss, depth, y1 - y0, x1 - x0, sc), self.meta.dtype)
        kwargs = {}
        if kf.compression in _JPEG:
            kwargs = {"jpegtables": page.jpegtables, "jpegheader": kf.jpegheader}
        fh = page.parent.filehandle
        for data, i in fh.read_segments(offsets, counts, indices=wanted, lock=fh.lock, sort=True):
            seg, (s, d, y, x, _), shape = kf.decode(data, i, **kwargs)
            dd = min(shape[0], depth - d)
            ra, rb = max(y, y0), min(y + shape[1], y1, kf.imagelength)
            ca, cb = max(x, x0), min(x + shape[2], x1, kf.imagewidth)
            dst = out[s, d : d + dd, ra - y0 : rb - y0, ca - x0 : cb - x0]
            dst[...] = kf.nodata if seg is None else seg[:dd, ra - y : rb - y, ca - x : cb - x]
        self._count(1, len(wanted), sum(counts))
        return out

    # -- description ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``: file, TIFF flavour, pages, tiling and compression."""
        tif, s, kf = self._tif, self._series, self._keyframe
        return {
            "storage": "tiff",
            "file": str(self.path),
            "file_size": self.path.stat().st_size,
            "tiff_kind": s.kind,
            "bigtiff": bool(tif.is_bigtiff),
            "series": self.series_index,
            "series_count": len(tif.series),
            "series_axes": s.axes,
            "series_shape": list(s.shape),
            "axes_mapping": f"{s.axes}->{self._axes.targets}",
            "page_count": self._axes.n_pages,
            "page_shape": list(kf.shape),
            "tiled": bool(kf.is_tiled),
            "tile_shape": [kf.tilelength, kf.tilewidth] if kf.is_tiled else None,
            "rows_per_strip": None if kf.is_tiled else int(kf.rowsperstrip),
            "compression": str(getattr(kf.compression, "name", kf.compression)).lower(),
            "byteorder": tif.byteorder,
        }


def _reopen(path: str, series: int) -> TiffSource:
    return TiffSource(path, series=series)
