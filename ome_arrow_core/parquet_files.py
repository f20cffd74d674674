"""Facts about any Parquet file, shared by both formats (typed-chunk datasets and struct-record files)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from . import parquet_lite as pq
from .boundary import reading, require_member
from .errors import DamagedFileError

__all__ = ["PARQUET_CODECS", "footer_rows", "checked_footer"]

#: Codecs Parquet chunk files take (pyarrow's names; "none" is uncompressed).
PARQUET_CODECS: Final[frozenset[str]] = frozenset({"none", "snappy", "gzip", "brotli", "lz4", "lz4_raw", "zstd"})


def footer_rows(file: Path) -> int:
    """Rows the Parquet footer of ``file`` declares, refusing a footer that claims more bytes than the file has."""
    require_member(file.parent, file.name)  # a FIFO would block the read forever
    with reading(file.parent, file.name, "reading the Parquet footer"):
        md = pq.read_metadata(file)
        return checked_footer(md, file.stat().st_size, str(file))


def checked_footer(md: pq.FileMetaData, size: int, where: str) -> int:
    """``md``'s row count, refusing negative counts and column data larger than the ``size``-byte file."""
    claimed = 0
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        if group.num_rows < 0:
            raise DamagedFileError(f"{where}: row group {g} declares {group.num_rows} rows; the footer is damaged")
        claimed += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
    if md.num_rows < 0 or claimed > size:
        raise DamagedFileError(
            f"{where}: its footer declares {md.num_rows} rows in {claimed} bytes of column data, but the file "
            f"has {size} bytes; the file is damaged or truncated"
        )
    return int(md.num_rows)
