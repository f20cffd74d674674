"""StackSource: one lazy image whose planes live in many files, each read by its own reader.

Opening reads the first file's metadata only (its reader opens it lazily); every other file is
opened the first time a read needs it, and its dtype and sizes are checked against the first
file's then. A read opens only the files its t/c/z selection lands in and asks each for the
Y/X crop. An opened file is kept while its ``stat`` (inode, size, mtime) stays the same; a file
changed since it was opened is opened and checked again, so a member replaced by one of
another shape or dtype is refused, naming it, and a deleted member is named.
"""

from __future__ import annotations

import itertools
import os
import stat
import threading
from collections import OrderedDict, deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..boundary import blaming, reading, require_regular_file
from ..errors import ArgumentError, DamagedFileError, SchemaError
from ..layout import AXES
from ..meta import Channel, ImageMeta
from ..selection import Selection
from .files import FileGrid

if TYPE_CHECKING:
    from ..handlers import PixelSource
    from ..registry import Registry

__all__ = ["StackSource"]

#: Opened member files kept at once (each may hold a file handle).
KEEP_OPEN = 32


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _sizes_text(sizes: dict[str, int]) -> str:
    return f"TZCYX {tuple(sizes[a] for a in AXES)}"


class StackSource:
    """The files of ``grid`` as one image, opened through ``registry`` (``format`` and ``options`` go
    to each file's reader).

    Counters: ``files_opened`` (member files opened, the first included) and ``files_read``
    (member reads); ``opened`` lists the member files opened, in order (the last 4096).
    """

    def __init__(
        self, grid: FileGrid, registry: Registry, *, format: str | None = None, name: str | None = None, **options: Any
    ) -> None:
        self.grid = grid
        self._registry = registry
        self._format = format
        self._options = options
        self._lock = threading.Lock()
        self._open: OrderedDict[int, tuple[tuple[int, int, int, int], PixelSource]] = OrderedDict()
        self.files_opened = 0
        self.files_read = 0
        self.opened: deque[Path] = deque(maxlen=4096)
        first = self._member(0, check=False)
        self.member_meta = first.meta
        self.meta = self._stack_meta(first.meta, name)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its files and metadata; the receiving process opens files with its shared registry, checking
        each against the metadata taken here when a read first needs it."""
        return (_restore, (self.grid, self._format, self._options, self.member_meta, self.meta))

    # -- metadata -------------------------------------------------------------------------
    def _stack_meta(self, member: ImageMeta, name: str | None) -> ImageMeta:
        grid = self.grid
        tall = [ax for ax in grid.axes if member.sizes[ax] != 1]
        if tall:
            ax = tall[0]
            others = "".join(a for a in "TCZ" if member.sizes[a] == 1 and a not in grid.axes) or "none"
            raise ArgumentError(
                f"{grid.files[0]} holds {member.sizes[ax]} {ax} planes ({_sizes_text(dict(member.sizes))}), so its "
                f"files cannot be stacked along {ax}; stack along an axis each file has once (free: {others})"
            )
        sizes = {**member.sizes, **dict(zip(grid.axes, grid.shape))}
        channels: tuple[Channel, ...] = tuple(member.channels) if "C" not in grid.axes else ()
        if grid.channel_names:
            channels = tuple(Channel(id=f"ch-{i}", name=n) for i, n in enumerate(grid.channel_names))
        chunk = member.chunk_shape
        return replace(
            member,
            sizes=sizes,
            channels=channels,
            id=grid.files[0].stem,
            name=name or grid.label,
            chunk_shape=None if chunk is None else (1 if "Z" in grid.axes else chunk[0], chunk[1], chunk[2]),
        )

    def _check(self, number: int, meta: ImageMeta) -> None:
        expect = self.member_meta
        if meta.dtype != expect.dtype or dict(meta.sizes) != dict(expect.sizes):
            file = self.grid.files[number]
            at = ", ".join(f"{a}={i}" for a, i in self.grid.position(number).items())
            raise SchemaError(
                f"{file} ({at} of the stack {self.grid.label!r}) holds {_sizes_text(dict(meta.sizes))} {meta.dtype}, "
                f"but the stack's files hold {_sizes_text(dict(expect.sizes))} {expect.dtype} (as its first file "
                f"{self.grid.files[0]} does); every file of a stack needs the same shape and dtype: replace or "
                "drop that file"
            )

    # -- members --------------------------------------------------------------------------
    def _member(self, number: int, *, check: bool = True) -> PixelSource:
        """Member ``number``, opened (again, when its file changed since) and checked."""
        from ..opening import open_path

        file = self.grid.files[number]
        with reading(file, None, "opening a stack file"):
            st = os.stat(file)
        key = _stat_key(st if stat.S_ISDIR(st.st_mode) else require_regular_file(file))
        with self._lock:
            held = self._open.get(number)
            if held is not None and held[0] == key:
                self._open.move_to_end(number)
                return held[1]
        src = open_path(file, self._registry, format=self._format, **self._options)
        if check:
            self._check(number, src.meta)
        with self._lock:
            self.files_opened += 1
            self.opened.append(file)
            self._open[number] = (key, src)
            while len(self._open) > KEEP_OPEN:
                self._open.popitem(last=False)
        return src

    def _read_member(self, number: int, sel: Selection) -> np.ndarray:
        file = self.grid.files[number]
        src = self._member(number)
        with reading(file, None, "reading a stack file"), blaming(file):
            piece = np.asarray(src.read(sel))
        if piece.shape != sel.shape or piece.dtype != self.meta.dtype:
            raise DamagedFileError(
                f"{file}: its reader returned {piece.shape} {piece.dtype} for a selection of "
                f"{sel.shape} {self.meta.dtype}; the file's metadata and pixels disagree"
            )
        with self._lock:
            self.files_read += 1
        return piece

    def check_files(self) -> None:
        """Open every file's metadata now (no pixels) and check its shape and dtype; the first odd one is named."""
        for number in range(len(self.grid.files)):
            self._member(number)

    # -- pixels ---------------------------------------------------------------------------
    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel``, reading only the files it lands in (each once)."""
        axes = self.grid.axes
        out = np.empty(sel.shape, dtype=self.meta.dtype)
        inner = sel.with_axis(axes[0], range(1))
        for ax in axes[1:]:
            inner = inner.with_axis(ax, range(1))
        picks = [list(enumerate(sel.axis(ax))) for ax in axes]
        done: dict[int, np.ndarray] = {}
        for combo in itertools.product(*picks):
            number = self.grid.index([i for _, i in combo])
            piece = done.get(number)
            if piece is None:
                piece = done[number] = self._read_member(number, inner)
            where: list[int | slice] = [slice(None)] * 5
            for ax, (pos, _) in zip(axes, combo):
                where[AXES.index(ax)] = slice(pos, pos + 1)
            out[tuple(where)] = piece
        return out

    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``."""
        return {
            "storage": f"stack of {len(self.grid.files)} files",
            "stack": self.grid.label,
            "stack_axes": self.grid.axes,
            "stack_shape": list(self.grid.shape),
            "first_file": str(self.grid.files[0]),
            "files_opened": self.files_opened,
            "files_read": self.files_read,
        }

    def close(self) -> None:
        """Let go of every opened member file."""
        with self._lock:
            held = list(self._open.values())
            self._open.clear()
        for _, src in held:
            closer = getattr(src, "close", None)
            if callable(closer):
                closer()


def _restore(
    grid: FileGrid, format: str | None, options: dict[str, Any], member: ImageMeta, meta: ImageMeta
) -> StackSource:
    """A StackSource unpickled: nothing is opened until a read."""
    from ..registry import default_registry

    src = StackSource.__new__(StackSource)
    src.grid, src._registry, src._format, src._options = grid, default_registry(), format, options
    src._lock, src._open = threading.Lock(), OrderedDict()
    src.files_opened = src.files_read = 0
    src.opened = deque(maxlen=4096)
    src.member_meta, src.meta = member, meta
    return src
