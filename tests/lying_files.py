"""Builders of files whose metadata claims far more than their bytes hold (for the bounded-memory tests).

Each is cheap to write: constant columns compress to almost nothing, so a few hundred KB of
Parquet can declare millions of rows or gigapixel images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from table_digests import without_table_digests

from ome_arrow_core import OMEArrow


def small_dataset(path: Path, planes: int = 1) -> Path:
    """A real one-image dataset (``planes`` 16x16 uint16 planes along Z, one chunk each)."""
    pixels = np.arange(planes * 256, dtype=np.uint16).reshape(1, planes, 1, 16, 16)
    OMEArrow(pixels, dim_order="TZCYX").export("parquet", path)
    return path


def lying_index(path: Path, rows: int = 8_000_000) -> Path:
    """A one-chunk dataset whose index.parquet lists ``rows`` chunks (all copies of the real one)."""
    small_dataset(path)
    real = pq.read_table(path / "index.parquet")
    cols = {name: pa.repeat(real.column(name)[0], rows) for name in real.column_names}
    pq.write_table(
        pa.table(cols, schema=real.schema), path / "index.parquet", compression="zstd", row_group_size=1 << 21
    )
    without_table_digests(path)  # a lie the table checksums would refuse first
    return path


def images_table(path: Path, rows: int, chunks: int) -> Path:
    """A dataset of ``rows`` 1x1-pixel images stored in ``chunks`` chunk rows (legitimate when equal).

    The chunks, index and images tables are written directly with pyarrow (one row group
    of ``chunks`` rows), as fast as a million rows can be.
    """
    small_dataset(path)
    real_images = pq.read_table(path / "images.parquet")
    ids = pa.array([f"img-{k}" for k in range(rows)])
    cols = {}
    for name in real_images.column_names:
        field = real_images.schema.field(name)
        if name == "image_id":
            cols[name] = ids
        elif name.startswith("size_") or name.startswith("chunk_"):
            cols[name] = pa.array(np.ones(rows, dtype=np.int32), field.type)
        else:
            cols[name] = pa.repeat(real_images.column(name)[0], rows).cast(field.type)
    pq.write_table(pa.table(cols, schema=real_images.schema), path / "images.parquet")
    without_table_digests(path)  # a lie the table checksums would refuse first
    n = chunks
    chunk_ids = ids.slice(0, n) if n <= rows else pa.array([f"img-{k % rows}" for k in range(n)])
    zeros = np.zeros(n, dtype=np.int32)
    ones = np.ones(n, dtype=np.int32)
    real_chunks = pq.read_schema(path / "chunks.parquet")
    chunk_cols = {
        "image_id": chunk_ids,
        "chunk_id": np.arange(n, dtype=np.int64),
        **{a: zeros for a in "tczyx"},
        **{f"shape_{a}": ones for a in "tczyx"},
        "dtype": pa.repeat(pa.scalar("uint16"), n),
        "pixel_bytes": pa.repeat(pa.scalar(b"\x07\x00", pa.large_binary()), n),
    }
    pq.write_table(
        pa.table({f.name: chunk_cols.get(f.name, pa.nulls(n, f.type)) for f in real_chunks}, schema=real_chunks),
        path / "chunks.parquet",
        row_group_size=n,
    )
    real_index = pq.read_schema(path / "index.parquet")
    index_cols = {
        "image_id": chunk_ids,
        "chunk_id": np.arange(n, dtype=np.int64),
        "row_group_id": zeros,
        "row_index_in_group": np.arange(n, dtype=np.int32),
        "fragment_path": pa.repeat(pa.scalar("chunks.parquet"), n),
        **{a: zeros for a in "tczyx"},
        **{f"shape_{a}": ones for a in "tczyx"},
    }
    pq.write_table(
        pa.table(
            {f.name: index_cols.get(f.name, pa.nulls(n, f.type)) for f in real_index},  # checksum
            schema=real_index,
        ),
        path / "index.parquet",
    )
    without_table_digests(path)  # a lie the table checksums would refuse first
    return path


def copy_dataset(src: Path, dst: Path) -> Path:
    """A copy of dataset ``src`` at ``dst``."""
    shutil.copytree(src, dst)
    return dst
