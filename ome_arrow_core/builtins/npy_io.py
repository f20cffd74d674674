"""Built-in reader of numpy ``.npy`` files, lazily: a read takes only the rows its selection needs.

Axes follow the ingest rule by rank (YX, ZYX, TCYX, TCZYX). The header is checked against the
file's size (``np.save`` writes exactly header plus pixels), so a truncated or padded file, or
a header whose shape or dtype was changed, is refused as damaged. ``.npy`` stores no checksum:
changed pixel bytes cannot be detected. Files are read with plain reads, not memory maps (a file
truncated under a memory map would kill the process), reopened for each read: a file written or
replaced since it was opened (its header read then) raises StorageError (errno ESTALE) instead of
being read under the old header.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..boundary import reading, require_regular_file
from ..dtypes import check_dtype
from ..errors import DamagedFileError, SchemaError, StorageError
from ..handlers import Reader
from ..hookspecs import hookimpl
from ..layout import default_dim_order, to_canonical
from ..meta import ImageMeta
from ..selection import Selection

__all__ = ["NpySource", "open_npy"]


def _header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset from ``path``'s header."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
        except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError...
            raise DamagedFileError(
                f"{path}: its .npy header cannot be read ({type(exc).__name__}: {exc}); the file "
                "is damaged or not a .npy file"
            ) from exc
        return tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype), f.tell()


class NpySource:
    """The ``.npy`` file at ``path`` as a pixel source. ``rows_read`` counts leading-axis rows read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._version = _version(require_regular_file(self.path))  # before the header: a change since is seen
        with reading(self.path, None, "opening the .npy file"):
            shape, self._fortran, dtype, self._offset = _header(self.path)
        if not 2 <= len(shape) <= 5:
            raise SchemaError(
                f"{self.path} holds a {len(shape)}-D array {shape}; .npy files of 2 to 5 dims "
                "(YX, ZYX, TCYX, TCZYX) are read as images: load it with np.load and pass dim_order="
            )
        self._shape = shape
        self._file_dtype = dtype
        self._order = default_dim_order(len(shape))
        self.meta = ImageMeta(
            sizes=self._sizes(), dtype=check_dtype(dtype.newbyteorder("=")), id=self.path.stem, name=self.path.stem
        )
        self.rows_read = 0
        self._check_size(os.stat(self.path).st_size)

    def _sizes(self) -> dict[str, int]:
        return dict(zip(self._order, self._shape))

    @property
    def _nbytes(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64)) * self._file_dtype.itemsize

    def _check_size(self, size: int) -> None:
        want = self._offset + self._nbytes
        if size != want:
            cut = "truncated" if size < want else "longer than its header says"
            raise DamagedFileError(
                f"{self.path}: its header declares {self._shape} {self._file_dtype} ({want} bytes "
                f"with the header) but the file has {size} bytes; it is {cut} (damaged)"
            )

    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel``: the leading-axis rows it spans are read, then indexed."""
        lead = self._order[0]
        idx = sel.axis(lead)
        lo, hi = (0, self._shape[0]) if self._fortran else (min(idx), max(idx) + 1)
        rows = (hi - lo, *self._shape[1:])
        count = int(np.prod(rows, dtype=np.int64))
        with reading(self.path, None, "reading the .npy file"), open(self.path, "rb") as f:
            self._unchanged(os.fstat(f.fileno()))
            self._check_size(os.fstat(f.fileno()).st_size)
            step = int(np.prod(self._shape[1:], dtype=np.int64)) * self._file_dtype.itemsize
            f.seek(self._offset + lo * step)
            data = f.read(count * self._file_dtype.itemsize)
            self._unchanged(os.fstat(f.fileno()))  # written while read: the bytes may be the new file's
        if len(data) != count * self._file_dtype.itemsize:
            raise DamagedFileError(
                f"{self.path}: reading rows {lo}..{hi} returned {len(data)} bytes, not "
                f"{count * self._file_dtype.itemsize}; the file was truncated while open"
            )
        self.rows_read += hi - lo
        arr = np.frombuffer(data, self._file_dtype).reshape(rows, order="F" if self._fortran else "C")
        part = to_canonical(arr, self._order)
        shifted = idx if lo == 0 else _shift(idx, lo)
        out = sel.with_axis(lead, shifted).apply(part)
        return np.ascontiguousarray(out, dtype=self.meta.dtype)

    def _unchanged(self, st: os.stat_result) -> None:
        """Raise StorageError (ESTALE) when the file read (``st``) is not the version opened."""
        now = _version(st)
        if now == self._version:
            return
        how = "replaced by another file" if now[0] != self._version[0] else "written in place"
        err = StorageError(
            f"{self.path} was {how} after it was opened: its header (shape {self._shape}, {self._file_dtype}) was "
            "read then and may not describe its bytes now, so nothing more is read from it. Open it again"
        )
        err.errno = errno.ESTALE
        raise err

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``."""
        return {"storage": f"npy file {self.path.name}", "rows_read": self.rows_read}


def _version(st: os.stat_result) -> tuple[int, int, int]:
    """Inode, size and modification time: what tells one version of a file from another (not the device number,
    which another host mounting the same file system may give otherwise: a pickled source is read there)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _shift(idx: range | tuple[int, ...], by: int) -> range | tuple[int, ...]:
    if isinstance(idx, range):
        return range(idx.start - by, idx.stop - by, idx.step)
    return tuple(i - by for i in idx)


def open_npy(path: Path, column: str | None = None, row: int = 0, **_: Any) -> NpySource:
    """Open a ``.npy`` file (metadata now, pixels on ``read``); ``column`` and ``row`` do not apply."""
    if column is not None or row not in (0, None):
        raise SchemaError(f"{path}: a .npy file holds one array, with no columns or rows; drop column= and row=")
    return NpySource(path)


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [Reader(name="npy", suffixes=(".npy",), open=open_npy, description="numpy .npy files (2-D to 5-D)")]
