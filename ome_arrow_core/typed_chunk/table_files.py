"""Writing a small Parquet table of a dataset (its images and index tables) through one buffer.

pyarrow's Parquet writer, given a path, makes a ``write`` call for each page header and each page: about 100 for
the index table of one image, each through the kernel's page-cache write path (0.1-0.2 ms of a write's CPU per
table). Given a buffered stream it writes the same bytes in a call or a few.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BUFFER", "table_sink"]

#: Bytes gathered before each write (a plate's larger tables go out this much at a time).
BUFFER: Final[int] = 1 << 20


@contextlib.contextmanager
def table_sink(out: Path) -> Iterator[pa.NativeFile]:
    """A buffered stream writing file ``out`` (made, or emptied first), flushed and closed on leaving.

    A failed write leaves ``out`` partly written (``pq.write_table`` given a path would remove it): ``out`` must be a
    temporary of :func:`~..safe_write.atomic_path` or lie in a directory no reader sees yet."""
    import pyarrow as pa

    with pa.output_stream(str(out), compression=None, buffer_size=BUFFER) as sink:
        yield sink
