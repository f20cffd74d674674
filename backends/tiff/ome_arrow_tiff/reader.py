"""TiffSource: one series of a TIFF file, read page by page and tile by tile on request.

A read touches only the pages its (t, z, c) selection maps to, and within each page only
what its Y/X crop needs: the rows of uncompressed pages, or the strips and tiles that
intersect the crop (read from ``dataoffsets``/``databytecounts`` and decoded with
tifffile's own ``page.decode``). Reads are thread-safe: file access is serialized on the
file handle's lock, decoding runs outside it.

Opening picks and checks the series and its ``level=`` (a pyramid level, see :mod:`.levels`)
before any pixel is read (see :mod:`.series`). When the file stores checksums (see
:mod:`.integrity`: every OME-TIFF ome-arrow-core writes) and verification is on (default;
``verify=False`` or ``OME_ARROW_CORE_VERIFY=0`` skips it), every strip or tile read is checked
against its checksum; a crop then reads whole strips (tiles are read whole anyway).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import replace
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np

from ome_arrow_core import ImageMeta, OMEArrowError, Selection
from ome_arrow_core.plugin_api import (
    DamagedFileError,
    Location,
    checksums_of,
    open_known,
    reading,
    require_regular_file,
)

from .damage import check_extent, strict_tifffile
from .handles import FileVersions, open_for_read
from .integrity import LevelChecksums, TiffChecksums, le_bytes
from .levels import describe_levels
from .metadata import print_resolution
from .raw_rows import read_raw_rows
from .remote import RangeFile
from .segments import SegmentCheck, as_slice, codec_hint, read_segments, segment_geometry, span
from .series import open_series
from .verification import load_checksums, segment_name

if TYPE_CHECKING:
    import tifffile

__all__ = ["TiffSource"]


class TiffSource:
    """Pyramid level ``level`` of series ``series`` of the TIFF file at ``path`` as a pixel source.

    Counters of I/O done so far: ``pages_read`` (pages or planes of pages read),
    ``segments_read`` (strips or tiles read) and ``bytes_read`` (bytes read from file).
    ``has_checksums``: the file stores checksums of this image's strips and tiles.
    """

    meta: ImageMeta
    checksums: TiffChecksums | None
    has_checksums: bool

    def __init__(
        self, path: str | Path | Location, *, series: int = 0, level: int = 0, verify: bool | None = None
    ) -> None:
        import tifffile

        self._target = path  # what a pickled source reopens
        self._remote: RangeFile | None = None
        self._versions = FileVersions(None, None)  # a remote file: not stat'ed
        self.path: PurePath = path.display_path() if isinstance(path, Location) else Path(path)
        self.series_index = int(series)
        self.level_requested: object = level
        self.level = 0
        self.verify = verify
        self.pages_read = 0
        self.segments_read = 0
        self.bytes_read = 0
        if isinstance(path, Location) and not path.local:
            with reading(self.path, None, "opening"):  # the lookup that found it gave its size: no second one
                known = None if path.info is None else path.info.size
                raw = path.fs.open_input_file(path.path) if known is None else open_known(path, int(known))
            self._remote = RangeFile(raw, raw.size(), path.name)
            self._size = raw.size()
        else:
            st = require_regular_file(self.path)
            self._size, self._versions = st.st_size, FileVersions(Path(self.path), st)
        tif = None
        try:
            with strict_tifffile(self.path, "opening"):
                # remote: the sibling files of a multi-file OME-TIFF are not looked for on the local disk
                tif = (
                    tifffile.TiffFile(cast("IO[bytes]", self._remote), name=self.path.name, _multifile=False)
                    if self._remote
                    else tifffile.TiffFile(self.path)
                )
        except BaseException:
            if tif is not None:
                tif.close()
            raise
        self._tif = tif
        self._finalizer = weakref.finalize(self, _close, self._tif, self._remote)
        self._state = threading.Lock()
        self._pages: dict[int, Any] = {}
        self._geometry: dict[int, np.ndarray] = {}
        try:
            with strict_tifffile(self.path, "reading the series"):
                self._setup()
            self._load_checksums()  # after what tifffile reports about the pages: that comes first
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        self._tif.filehandle.set_lock(True)
        opened = open_series(self._tif, self.series_index, self.level_requested, self.path, self._size)
        self.level, self.meta = opened.level, opened.meta
        self._series, self._keyframe, self._axes = opened.series, opened.keyframe, opened.axes
        self._virtual, self._dataoffset, self._file_dtype = opened.virtual, opened.dataoffset, opened.file_dtype
        self._level_sizes, self._base_meta = opened.level_sizes, opened.base_meta

    def _load_checksums(self) -> None:
        """Find the file's checksums; set up their checks when verification is on."""
        found = load_checksums(self._tif, self._series.kind, self.series_index, self.path, self.verify)
        self.checksums, self.has_checksums = found.checksums, found.present
        self._sums: LevelChecksums | None = None
        if self.checksums is not None:
            if self._axes.page_axes != "YX":
                raise DamagedFileError(
                    f"{self.path}: it stores checksums per plane but its pages are {self._axes.page_axes!r}, "
                    "not single planes; the file's tags or its OME-XML are damaged"
                )
            self._sums = self.checksums.for_level(self.level, self.meta.sizes, self.meta.dtype)

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
        """Pickle as (path, series, level, verify): a worker process reopens the file."""
        # a remote target without its lookup: the worker looks the object up again (it may have been replaced)
        target = replace(self._target, info=None) if isinstance(self._target, Location) else str(self.path)
        return (_reopen, (target, self.series_index, self.level, self.verify))

    def __repr__(self) -> str:
        return (
            f"TiffSource({str(self.path)!r}, series={self.series_index}, level={self.level}, "
            f"axes={self._series.axes!r})"
        )

    # -- reading --------------------------------------------------------------------------
    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel`` as a ``TZCYX`` array, reading only the pages and tiles it needs."""
        try:
            return self._read(sel)
        except Exception:  # a file written since: that is the error, not what reading it raised
            self._versions.check(self._pages.values())
            raise

    def _read(self, sel: Selection) -> np.ndarray:
        if self.closed:
            raise OMEArrowError(f"{self.path.name} is closed; open it again to read pixels")
        if self._axes.rows_paged:
            return self._read_rows_paged(sel)
        out = np.empty(sel.shape, self.meta.dtype)
        y0, y1, ysl = span(sel.y)
        x0, x1, xsl = span(sel.x)
        kf = self._keyframe
        squeezed = (kf.imagelength, kf.imagewidth) != (self.meta.sizes["Y"], self.meta.sizes["X"])
        if squeezed:  # tifffile stored length-1 axes squeezed (5x1x1 ZYX as one 5x1 page): read whole pages
            y0, y1, ysl, x0, x1, xsl = 0, kf.imagelength, as_slice(sel.y), 0, kf.imagewidth, as_slice(sel.x)
        jobs: dict[int, list[tuple[tuple[int, int, int], tuple[int | slice, ...]]]] = {}
        planes: dict[int, int] = {}  # page -> canonical plane (t * Z + z) * C + c, for checksums
        n_z, n_c = self.meta.sizes["Z"], self.meta.sizes["C"]
        for ti, t in enumerate(sel.t):
            for zi, z in enumerate(sel.z):
                for ci, c in enumerate(sel.c):
                    page, plane = self._axes.locate(t, z, c)
                    jobs.setdefault(page, []).append(((ti, zi, ci), plane))
                    planes[page] = (t * n_z + z) * n_c + c
        crop_shape = tuple(
            n if squeezed else y1 - y0 if a == "Y" else x1 - x0 if a == "X" else n
            for a, n in zip(self._axes.page_axes, self._axes.page_shape, strict=True)
        )
        # Single-plane raw pages read full-width rows straight into ``out`` (no extra copy);
        # with checksums, only whole planes (a checksum covers whole strips).
        direct = self._axes.page_axes == "YX" and sel.x == range(kf.imagewidth) and sel.y.step == 1 and not squeezed
        if self._sums is not None:
            direct = direct and sel.y == range(self._keyframe.imagelength) and not self._keyframe.is_tiled
        with strict_tifffile(self.path, "reading pixels"), codec_hint():
            for page in sorted(jobs):
                raw = self._raw_location(page) if direct else None
                if raw is not None and len(jobs[page]) == 1:
                    into = out[jobs[page][0][0]]
                    if self._sums is not None:
                        self._read_checked_plane(*raw, page, planes[page], into)
                    else:
                        self._read_rows(*raw, y0, y1, 0, x1, into=into)
                    continue
                checked = None if self._sums is None else planes[page]
                data = self._read_shaped(page, y0, y1, x0, x1, checked).reshape(crop_shape)
                for pos, plane in jobs[page]:
                    out[pos] = data[plane][ysl, xsl]
        self._versions.check(self._pages.get(p) for p in jobs)
        return out

    def _read_rows_paged(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel`` from a series stored one image row per page (see ``AxisMap.rows_paged``)."""
        out = np.empty(sel.shape, self.meta.dtype)
        x0, x1, xsl = span(sel.x)
        jobs: dict[int, list[tuple[tuple[int, int, int, int], tuple[int | slice, ...]]]] = {}
        for ti, t in enumerate(sel.t):
            for zi, z in enumerate(sel.z):
                for ci, c in enumerate(sel.c):
                    for yi, y in enumerate(sel.y):
                        page, row = self._axes.locate(t, z, c, y)
                        jobs.setdefault(page, []).append(((ti, zi, ci, yi), row))
        kf = self._keyframe
        with strict_tifffile(self.path, "reading pixels"), codec_hint():
            for page in sorted(jobs):
                data = self._read_shaped(page, 0, kf.imagelength, 0, kf.imagewidth).reshape(self._axes.page_shape)
                for pos, row in jobs[page]:
                    out[pos] = data[row][x0:x1][xsl]
        self._versions.check(self._pages.get(p) for p in jobs)
        return out

    # -- checksums ------------------------------------------------------------------------
    def _where(self, page: int, plane: int, segment: int) -> str:
        return segment_name(self.meta.sizes, self._keyframe.is_tiled, self.level, page, plane, segment)

    def _segment_check(self, page: int, plane: int) -> SegmentCheck:
        """The check of each decoded segment of ``page`` (holding canonical ``plane``) against its checksum."""
        sums = self._sums
        assert sums is not None

        def check(index: int, seg: np.ndarray | None) -> None:
            sums.check(plane, index, seg, lambda: self._where(page, plane, index))

        return check

    def _read_checked_plane(self, tif: tifffile.TiffFile, offset: int, page: int, plane: int, into: np.ndarray) -> None:
        """Read a whole raw plane into ``into`` (Y, X) in one read, then check each strip's checksum.

        (Reading strip by strip to hash each while in the cache costs more in calls than it saves.)
        """
        assert self._sums is not None
        height = into.shape[0]
        per = max(1, min(int(self._keyframe.rowsperstrip or height), height))
        strips = -(-height // per)
        self._sums.require_segments(plane, strips, f"page {page}")
        self._read_rows(tif, offset, 0, height, 0, into.shape[1], into=into)
        data = le_bytes(into)
        bounds = np.minimum(np.arange(strips + 1) * per, height) * (data.size // height)
        self._sums.verify_strips(plane, checksums_of(data, bounds), into, per, lambda j: self._where(page, plane, j))

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
                    if page.parent is not self._tif:
                        self._versions.note(page.parent.filehandle.path)
                    where = self.path if page.parent is self._tif else Path(page.parent.filehandle.path)
                    check_extent(page, size, where, index)
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

    def _read_shaped(self, index: int, y0: int, y1: int, x0: int, x1: int, plane: int | None = None) -> np.ndarray:
        """Page ``index`` cropped to rows y0:y1 and columns x0:x1, shaped (S, D, Y, X, S)."""
        kf = self._keyframe
        raw = self._raw_location(index) if plane is None else None
        if raw is not None:
            return self._read_rows(*raw, y0, y1, x0, x1)
        page = self._page(index)
        if page is None:  # tifffile would read zeros for it
            level = f" of pyramid level {self.level}" if self.level else ""
            raise DamagedFileError(
                f"{self.path}: page {index}{level} of series {self.series_index} is missing "
                "(its IFD could not be found); the file is damaged"
            )
        if plane is not None and self._sums is not None:  # checked: decode segment by segment
            self._sums.require_segments(plane, len(page.dataoffsets), f"page {index}")
            return self._read_segments(page, y0, y1, x0, x1, self._segment_check(index, plane))
        whole = y1 - y0 == kf.imagelength and x1 - x0 == kf.imagewidth
        if whole or len(page.dataoffsets) == 1:
            if self._remote is not None:  # tifffile reads segment by segment: fetch them merged first
                self._remote.prefetch([(o, o + n) for o, n in zip(page.dataoffsets, page.databytecounts)])
            with open_for_read(page.parent.filehandle):
                arr = page.asarray(squeeze=False, lock=page.parent.filehandle.lock)
            self._count(1, len(page.dataoffsets), sum(page.databytecounts))
            return arr[:, :, y0:y1, x0:x1, :]  # type: ignore[no-any-return]
        return self._read_segments(page, y0, y1, x0, x1)

    def _read_rows(
        self,
        tif: tifffile.TiffFile,
        offset: int,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        into: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows y0:y1 of an uncompressed contiguous page at ``offset`` (one read per plane).

        ``into``, when given, is a C-contiguous array of the rows' size that receives them.
        """
        with open_for_read(tif.filehandle):
            out = read_raw_rows(tif, offset, self._keyframe.shaped, self._file_dtype, y0, y1, into)
        self._count(1, 1, out.nbytes)
        return out[:, :, :, x0:x1, :]

    def _read_segments(
        self,
        page: Any,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        check: SegmentCheck | None = None,
    ) -> np.ndarray:
        """Decode only the strips or tiles of ``page`` that intersect the crop (each one checked by ``check``)."""
        kf = page.keyframe
        geo = self._geometry.get(kf.hash)
        if geo is None:
            geo = self._geometry[kf.hash] = segment_geometry(kf)
        prefetch = None if self._remote is None else self._remote.prefetch
        with open_for_read(page.parent.filehandle):
            out, segments, nbytes = read_segments(page, geo, (y0, y1, x0, x1), self.meta.dtype, check, prefetch)
        self._count(1, segments, nbytes)
        return out

    # -- description ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``: file, TIFF flavour, pages, tiling, compression, levels, checksums."""
        tif, s, kf = self._tif, self._series, self._keyframe
        return {
            "storage": "tiff",
            "file": str(self.path),
            "file_size": self._size,
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
            "level": self.level,
            "levels": describe_levels(self._level_sizes, self._base_meta),
            "checksums": self.checksums.algorithm if self.checksums else None,
            "verified": self._sums is not None,
            "resolution (dpi)": print_resolution(kf),
        }


def _reopen(path: str | Location, series: int, level: int = 0, verify: bool | None = None) -> TiffSource:
    return TiffSource(path, series=series, level=level, verify=verify)


def _close(tif: tifffile.TiffFile, remote: RangeFile | None) -> None:
    tif.close()
    if remote is not None:
        remote.close()
