"""Keeping a tifffile file handle open for one read.

tifffile closes the other files of a multi-file OME-TIFF once it has read their IFDs (so a
series of thousands of files holds no thousands of open files). A read of a page in one of
them (``TiffPage.asarray``, rows of raw pages, strips and tiles) reopens its file for the
read through :func:`open_for_read`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["open_for_read"]


@contextmanager
def open_for_read(fh: Any) -> Iterator[None]:
    """Run a read of tifffile ``FileHandle`` ``fh``: as it is when open; when closed, reopened under its lock
    for the read and closed again after (other threads wait for the lock, so none finds it closed mid-read)."""
    with fh.lock:
        if fh.closed:
            fh.open()
            try:
                yield
            finally:
                fh.close()
            return
    yield
