"""Read ``ome-arrow-core.vortex/1`` files: metadata at open, chunks on request with row pushdown."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from ome_arrow_core import ImageMeta, SchemaError, Selection, SelectionError
from ome_arrow_core.plugin_api import (
    ChunkChecksums,
    DamagedFileError,
    PixelSource,
    arrow_empty,
    reading,
    require_regular_file,
    verify_enabled,
    view_buffer,
    where,
)

from .format import (
    CHECKSUM,
    COLUMNS,
    FORMAT_VERSION,
    INDEX_COLUMNS,
    META,
    PIXELS,
    Grid,
    checksum_algorithm,
    checksum_dtype,
    meta_from_json,
)
from .seal import Sealed, guard, not_written_since, opened_version, sniff_vortex, unchanged

__all__ = ["VortexSource", "open_vortex", "sniff_vortex", "arrow_schema"]

_HINT = "expected a file written by OMEArrow.export(how='vortex')"
#: Vortex's view types and the plain Arrow types they are read as.
VIEW_TYPES = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def first_line(exc: BaseException) -> str:
    """An exception's message without the Rust backtrace vortex appends."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def vortex_reading(path: str | Path, member: str | None = None, what: str = "reading") -> Iterator[None]:
    """:func:`ome_arrow_core.boundary.reading` for vortex calls, which may also panic.

    vortex raises pyo3's ``PanicException`` (a BaseException, not an Exception) for some
    damaged files; it is matched by name, so KeyboardInterrupt and SystemExit pass.
    """
    try:
        with reading(path, member, what):
            yield
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise DamagedFileError(
            f"{where(path, member)}: {what} failed (vortex panicked: {first_line(exc)}); the file is damaged"
        ) from None


def arrow_schema(dtype: Any, columns: Sequence[str]) -> pa.Schema:
    """The Arrow schema of ``columns`` of a Vortex dtype, view types made plain.

    ``string_view``/``binary_view`` become ``string``/``binary``; ``pixels`` becomes
    ``large_binary`` so that one read may exceed 2 GiB.
    """
    full = dtype.to_arrow_schema()
    fields = []
    for name in columns:
        f = full.field(name)
        typ = pa.large_binary() if name == PIXELS else VIEW_TYPES.get(f.type, f.type)
        fields.append(f.with_type(typ))
    return pa.schema(fields)


def _axis_plan(sel: Sequence[int], chunk: int) -> dict[int, tuple[Any, Any]]:
    """For each chunk index an axis selection touches: (output positions, in-chunk positions).

    Positions are slices when they are evenly spaced, else index arrays.
    """
    vals = np.asarray(sel, dtype=np.int64)
    tiles = vals // chunk
    plan: dict[int, tuple[Any, Any]] = {}
    for j in np.unique(tiles).tolist():
        pos = np.flatnonzero(tiles == j)
        local = vals[pos] - j * chunk
        plan[j] = (_as_slice(pos), _as_slice(local))
    return plan


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    if len(idx) == 1:
        return slice(int(idx[0]), int(idx[0]) + 1)
    step = int(idx[1] - idx[0])
    if step != 0 and np.all(np.diff(idx) == step):
        stop = int(idx[-1]) + step
        return slice(int(idx[0]), stop if stop >= 0 else None, step)
    return idx


class Opened(NamedTuple):
    """A Vortex file checked (:func:`~.seal.guard`: what ``checked`` found) and opened by vortex (``file``)."""

    file: Any
    checked: Sealed | None


def open_checked(path: Path, memory_map: bool, verify: bool | None) -> Opened:
    """``path`` checked before vortex parses a byte (it may abort the process on a damaged file), then opened."""
    import vortex as vx

    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    require_regular_file(path)
    with reading(path, None, "checking the whole-file checksum"):
        checked = guard(path, None, verify)
    with vortex_reading(path, None, "opening"):
        try:
            file = vx.open(str(path), memory_map=memory_map)
        except Exception as exc:  # vortex raises RuntimeError for every failure
            raise DamagedFileError(f"{path} is not a readable Vortex file ({first_line(exc)}); {_HINT}") from None
    return Opened(file, checked)


class VortexSource:
    """An opened Vortex image: ``meta`` from the metadata column, pixels read per selection.

    ``rows_read`` counts the chunk rows fetched from the file so far (metadata excluded). Each
    row's checksum (column ``checksum``, where the file has one) is checked as it is read unless
    ``verify=False`` (None: unless the environment sets ``OME_ARROW_CORE_VERIFY=0``).
    """

    def __init__(
        self, path: str | Path, *, memory_map: bool = True, verify: bool | None = None, opened: Opened | None = None
    ) -> None:
        self.path = Path(path)
        self.verify = verify
        self.memory_map = memory_map
        where = str(self.path)
        if opened is None:  # (open_vortex opens it first, to see its layout)
            opened = open_checked(self.path, memory_map, verify)
        self._file = opened.file
        with vortex_reading(self.path, None, "opening"):
            self._setup(where)
        unchanged(opened.checked, self.path)
        self._version = opened_version(opened.checked, self.path)
        #: False for a file written without a whole-file seal, None when the checks were off.
        self.sealed = None if opened.checked is None else opened.checked.sealed

    def _setup(self, where: str) -> None:
        """Check the file's columns and read its metadata."""
        names = list(getattr(self._file.dtype, "names", lambda: [])())
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise SchemaError(
                f"{where} is a Vortex file but not an OME-Arrow image: it lacks column(s) "
                f"{', '.join(missing)} (has {', '.join(names) or 'none'}); {_HINT} "
                f"(format {FORMAT_VERSION!r})"
            )
        self.has_checksums = CHECKSUM in names
        columns = [*INDEX_COLUMNS, PIXELS, *([CHECKSUM] if self.has_checksums else [])]
        self._schema = arrow_schema(self._file.dtype, columns)
        for name in INDEX_COLUMNS:
            if not pa.types.is_integer(self._schema.field(name).type):
                raise SchemaError(f"{where}: column {name!r} must be an integer column; {_HINT}")
        stored = self._file.dtype.to_arrow_schema().field(PIXELS).type
        if stored not in (pa.binary(), pa.binary_view(), pa.large_binary()):
            raise SchemaError(f"{where}: column 'pixels' must be binary, not {stored}; {_HINT}")
        self.meta, self.chunk = self._read_meta(where)
        self.grid = Grid(self.meta.sizes, self.chunk)
        self.n_rows = len(self._file)
        if self.n_rows != self.grid.n_rows:
            raise SchemaError(
                f"{where} has {self.n_rows} rows but its metadata (sizes {dict(self.meta.sizes)}, "
                f"chunk {self.chunk}) needs {self.grid.n_rows}: the file is truncated or not dense; {_HINT}"
            )
        self.rows_read = 0
        self.scans = 0
        self._lock = threading.Lock()

    def _read_meta(self, where: str) -> tuple[ImageMeta, tuple[int, int]]:
        """Row 0 of the ``meta`` column: a one-row, one-column scan."""
        import vortex as vx

        if len(self._file) == 0:
            raise SchemaError(f"{where} has no rows; {_HINT}")
        try:
            table = self._file.to_arrow(
                [META],
                indices=vx.array(pa.array([0], pa.uint64())),
                schema=arrow_schema(self._file.dtype, [META]),
            ).read_all()
        except Exception as exc:
            raise DamagedFileError(f"{where}: cannot read the 'meta' column ({first_line(exc)}); {_HINT}") from None
        text = table.column(0)[0].as_py() if table.num_rows else None
        if text is not None and not isinstance(text, str):
            raise SchemaError(f"{where}: the 'meta' column must be utf8 JSON; {_HINT}")
        self._algorithm = checksum_algorithm(text)
        meta, chunk = meta_from_json(text, where)
        written = checksum_dtype(text)
        if written is not None and written != meta.dtype.name and verify_enabled(self.verify):
            raise DamagedFileError(
                f"{where}: the metadata says the pixels are {meta.dtype.name}, but they were "
                f"written (and checksummed) as {written}; the file is damaged or edited"
            )
        return meta, chunk

    # -- reading -------------------------------------------------------------------------
    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel`` (TZCYX); only the chunks it intersects are read from the file."""
        meta = self.meta
        for ax, n in meta.sizes.items():
            idx = sel.axis(ax)
            if len(idx) and (min(idx) < 0 or max(idx) >= n):
                raise SelectionError(f"{ax.lower()} indices {idx} fall outside 0..{n - 1} of {self.path}")
        dtype = meta.dtype
        out, buf = arrow_empty(sel.shape, dtype)
        planes: list[dict[int, list[int]]] = [
            defaultdict(list) for _ in range(3)
        ]  # value -> output positions, for T, Z, C
        for axis, idx in enumerate((sel.t, sel.z, sel.c)):
            for pos, v in enumerate(idx):
                planes[axis][v].append(pos)
        ys, xs = _axis_plan(sel.y, self.chunk[0]), _axis_plan(sel.x, self.chunk[1])
        keys = [sorted(p) for p in planes] + [sorted(ys), sorted(xs)]
        rows = self.grid.rows(*keys)
        if len(rows):
            not_written_since(self._version, self.path)  # before vortex touches the mapped bytes, and after
            with vortex_reading(self.path, None, "reading chunks"):
                self._fill(out, rows, planes, ys, xs)
            not_written_since(self._version, self.path)
        return view_buffer(buf, dtype, sel.shape)

    def _fill(
        self,
        out: np.ndarray,
        rows: np.ndarray,
        planes: list[dict[int, list[int]]],
        ys: dict[int, tuple[Any, Any]],
        xs: dict[int, tuple[Any, Any]],
    ) -> None:
        """Scan ``rows`` (ascending) and copy each chunk's selected part into ``out``."""
        import vortex as vx

        le = self.meta.dtype.newbyteorder("<")
        expected = self.grid.chunks(rows)
        whole = len(rows) == self.n_rows  # every row, in file order: no take needed
        indices = None if whole else vx.array(pa.array(rows, pa.uint64()))
        check = self.has_checksums and verify_enabled(self.verify)
        reader = self._file.to_arrow(self._schema.names, indices=indices, schema=self._schema)
        h0, w0 = self.chunk
        k = 0
        for batch in reader:
            n = batch.num_rows
            got = np.stack([batch.column(j).to_numpy(zero_copy_only=False) for j in range(7)], axis=1)
            if not np.array_equal(got, expected[k : k + n]):
                bad = int(np.flatnonzero(np.any(got != expected[k : k + n], axis=1))[0])
                raise SchemaError(
                    f"{self.path}: row {int(rows[k + bad])} holds chunk {got[bad].tolist()} (t, z, c, y, x, h, w) "
                    f"but the dense (t, z, c, y, x) layout puts {expected[k + bad].tolist()} there; {_HINT}"
                )
            blobs = batch.column(7)
            offsets = np.frombuffer(blobs.buffers()[1], dtype=np.int64, count=n + 1, offset=blobs.offset * 8)
            data = blobs.buffers()[2]
            sums = ChunkChecksums(batch.column(8), self._algorithm, str(self.path)) if check else None
            for i in range(n):
                t, z, c, y, x, h, w = got[i].tolist()
                nbytes = h * w * le.itemsize
                if int(offsets[i + 1] - offsets[i]) != nbytes:
                    raise SchemaError(
                        f"{self.path}: chunk at row {int(rows[k + i])} has {int(offsets[i + 1] - offsets[i])} "
                        f"bytes, expected {h}x{w}x{le.itemsize} = {nbytes}; {_HINT}"
                    )
                if sums is not None:
                    at = int(rows[k + i])
                    sums.check(
                        i,
                        data,
                        int(offsets[i]),
                        nbytes,
                        lambda: (str(self.path), f"the chunk at row {at} (t={t}, z={z}, c={c}, y={y}, x={x})"),  # noqa: B023 - called within this iteration
                    )
                tile = np.frombuffer(data, dtype=le, count=h * w, offset=int(offsets[i])).reshape(h, w)
                oy, iy = ys[y // h0]
                ox, ix = xs[x // w0]
                if all(isinstance(s, slice) for s in (oy, iy, ox, ix)):
                    part = tile[iy, ix]
                    for pt in planes[0][t]:
                        for pz in planes[1][z]:
                            for pc in planes[2][c]:
                                out[pt, pz, pc, oy, ox] = part
                else:
                    src = tile[np.ix_(np.arange(h)[iy], np.arange(w)[ix])]
                    dst_y, dst_x = np.arange(out.shape[3])[oy], np.arange(out.shape[4])[ox]
                    for pt in planes[0][t]:
                        for pz in planes[1][z]:
                            for pc in planes[2][c]:
                                out[pt, pz, pc][np.ix_(dst_y, dst_x)] = src
            k += n
        with self._lock:
            self.rows_read += k
            self.scans += 1
        if k != len(rows):
            raise SchemaError(f"{self.path}: asked Vortex for {len(rows)} rows, got {k}; {_HINT}")

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``."""
        import vortex as vx

        return {
            "storage": "vortex",
            "path": str(self.path),
            "format": FORMAT_VERSION,
            "vortex_version": vx.__version__,
            "file_bytes": self.path.stat().st_size if self.path.exists() else None,
            "rows": self.n_rows,
            "chunk_grid": [self.grid.gy, self.grid.gx],
            "memory_map": self.memory_map,
            "rows_read": self.rows_read,
        }

    def __repr__(self) -> str:
        return f"VortexSource({str(self.path)!r}, shape={self.meta.shape}, dtype={self.meta.dtype})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as its path and options: a worker process (dask's processes scheduler, a spawned DataLoader
        worker) opens and checks the file again (it held a lock and vortex's open file, which do not pickle)."""
        return (_reopen, (str(self.path), self.memory_map, self.verify))


def _reopen(path: str, memory_map: bool, verify: bool | None) -> VortexSource:
    return VortexSource(path, memory_map=memory_map, verify=verify)


def open_vortex(
    path: str | Path, column: str | None = None, row: int = 0, *, memory_map: bool = True, verify: bool | None = None
) -> PixelSource:
    """Open a Vortex image file: ours (one image; ``column``/``row`` must be None/0), or a table of OME-Arrow
    records as ome-arrow 0.1.0 writes them (``column``: None for the only one; ``row``: which record)."""
    from .records import is_record_layout, open_records

    path = Path(path)
    opened = open_checked(path, memory_map, verify)
    with vortex_reading(path, None, "reading the schema"):
        records = is_record_layout(opened.file.dtype.to_arrow_schema())
    if records:
        return open_records(path, opened, column, row)
    if column not in (None, PIXELS):
        raise SchemaError(f"a Vortex image file has one image; column={column!r} is not supported (pass column=None)")
    if row != 0:
        raise SelectionError(f"a Vortex image file holds one image; row={row} is out of range (use row=0)")
    return VortexSource(path, memory_map=memory_map, verify=verify, opened=opened)
