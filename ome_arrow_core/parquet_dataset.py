"""The typed-chunk Parquet dataset: the public names of its three modules.

- :mod:`.dataset_format`: file names, schemas, format version (what the layout is);
- :mod:`.dataset_writer`: writing whole images, streaming images, appending (atomic);
- :mod:`.dataset_tables`: the images and index tables (the base pair, then one per append);
- :mod:`.dataset_reader`: reading only the row groups a selection touches;
- :mod:`.dataset_compact`: merging appended files into chunks.parquet, images.parquet, index.parquet.
"""

from __future__ import annotations

from .dataset_format import (
    CHUNKS_SCHEMA,
    FORMAT_VERSION,
    IMAGES_SCHEMA,
    INDEX_SCHEMA,
    MANIFEST,
    is_dataset_dir,
)
from .dataset_compact import compact_dataset
from .dataset_reader import DatasetSource, read_index, read_many, read_rows
from .dataset_writer import FragmentWriter, stream_dataset, write_dataset

__all__ = [
    "MANIFEST",
    "FORMAT_VERSION",
    "is_dataset_dir",
    "write_dataset",
    "DatasetSource",
    "IMAGES_SCHEMA",
    "CHUNKS_SCHEMA",
    "INDEX_SCHEMA",
    "read_many",
    "read_index",
    "read_rows",
    "stream_dataset",
    "FragmentWriter",
    "compact_dataset",
]
