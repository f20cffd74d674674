"""The typed-chunk dataset format: a directory of Parquet tables (images, index) and chunk files.

The public OME-Arrow dataset (``layout: typed-chunk-dataset``) that ``ome-arrow`` 0.1.0 reads,
plus appends, checksums and page ranges of ome-arrow-core's own (docs/format.md). This module
is the package's one door; the modules inside are its implementation:

- :mod:`.spec`: file names, schemas, format version, the manifest;
- :mod:`.tables`: the images and index tables (the base pair, then one per append);
- :mod:`.image_rows`: one images-table row <-> one image's ImageMeta;
- :mod:`.fragments`: chunk files (Parquet, or a chunk store's format such as ``.vortex``);
- :mod:`.parquet_pages`, :mod:`.page_index`, :mod:`.page_columns`, :mod:`.page_reads`: reading chunk rows by page ranges;
- :mod:`.checks`, :mod:`.bounds`, :mod:`.readcheck`, :mod:`.audit`: what is checked before and while reading
  (:mod:`.dataset_checks`: an opened dataset's checks, run once each;
  :mod:`.row_heads`: a first read's audit of each chunk's row group, by the shape of heads seen before);
- :mod:`.table_sums`, :mod:`.group_sums`, :mod:`.footers`: the tables' digests (whole, per row group) and footers;
- :mod:`.remote_mirror`, :mod:`.remote_writes`: a dataset on object storage (tables mirrored on open; data
  written first, the manifest last), over :mod:`ome_arrow_core.remote`; :mod:`.dataset_paths`: a path or URI's
  local directory and whether a write target is remote (loads the mirror or the uploads only for a remote one);
- :mod:`.opened`, :mod:`.source`, :mod:`.rows`: reading (one image as a pixel source; many image rows at once);
  :mod:`.kept_plans`: the box plans a source keeps (:mod:`.box_plans`);
- :mod:`.packing`, :mod:`.write_steps`, :mod:`.writer`, :mod:`.append`: writing (atomic; appends);
  :mod:`.packed_pieces`: an image's chunks cut into one buffer, checksummed;
- :mod:`.compact`: merging appended files into chunks.parquet, images.parquet, index.parquet;
- :mod:`.cleanup`: removing what killed writes left (``cleanup_dataset``);
- :mod:`.verify`: ``verify()`` of a whole dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..doors import lazy_names

if TYPE_CHECKING:
    from .bounds import check_image_rows
    from .cleanup import cleanup_dataset
    from .compact import compact_dataset
    from .dataset_paths import dataset_path, remote_target
    from .footers import footer as table_footer
    from .footers import footer_rows as table_rows
    from .group_sums import check_footers as check_table_footers
    from .group_sums import check_groups as check_table_groups
    from .group_sums import check_whole as check_whole_tables
    from .group_sums import recorded_rows
    from .group_sums import statistics_trusted as footer_statistics_trusted
    from .manifest_cache import shared_manifest
    from .opening import open_dataset, open_files
    from .record_reads import records_uniform
    from .remote_mirror import is_dataset_name, mirror_dataset
    from .remote_writes import write_remote_dataset
    from .rows import read_rows
    from .source import DatasetSource, image_meta
    from .spec import (
        BASE_CHUNKS,
        CHUNKS_SCHEMA,
        FORMAT_VERSION,
        IMAGES_SCHEMA,
        INDEX_SCHEMA,
        LOCATOR_COLUMNS,
        MANIFEST,
        has_dataset_files,
        is_dataset_dir,
        read_manifest,
    )
    from .tables import BASE, Part, appends_of, images_schema, parts_of
    from .value_index import value_rows as value_index_rows
    from .verify import verify_dataset
    from .writer import stream_dataset, write_images

__all__ = [
    "value_index_rows",
    "dataset_path",
    "is_dataset_name",
    "mirror_dataset",
    "remote_target",
    "write_remote_dataset",
    "MANIFEST",
    "FORMAT_VERSION",
    "IMAGES_SCHEMA",
    "CHUNKS_SCHEMA",
    "INDEX_SCHEMA",
    "LOCATOR_COLUMNS",
    "BASE_CHUNKS",
    "is_dataset_dir",
    "has_dataset_files",
    "read_manifest",
    "shared_manifest",
    "Part",
    "BASE",
    "parts_of",
    "appends_of",
    "images_schema",
    "check_image_rows",
    "table_footer",
    "recorded_rows",
    "records_uniform",
    "check_whole_tables",
    "check_table_footers",
    "check_table_groups",
    "footer_statistics_trusted",
    "table_rows",
    "DatasetSource",
    "image_meta",
    "read_rows",
    "open_files",
    "open_dataset",
    "write_images",
    "stream_dataset",
    "compact_dataset",
    "cleanup_dataset",
    "verify_dataset",
]

#: Each name of the door: (module, name in it). Loaded on first use, so that reading loads neither the
#: writers nor compaction, cleanup and verification.
_WHERE: Final[dict[str, tuple[str, str]]] = {
    "check_image_rows": (".bounds", "check_image_rows"),
    "cleanup_dataset": (".cleanup", "cleanup_dataset"),
    "compact_dataset": (".compact", "compact_dataset"),
    "table_footer": (".footers", "footer"),
    "table_rows": (".footers", "footer_rows"),
    "check_whole_tables": (".group_sums", "check_whole"),
    "check_table_footers": (".group_sums", "check_footers"),
    "check_table_groups": (".group_sums", "check_groups"),
    "footer_statistics_trusted": (".group_sums", "statistics_trusted"),
    "recorded_rows": (".group_sums", "recorded_rows"),
    "dataset_path": (".dataset_paths", "dataset_path"),
    "is_dataset_name": (".remote_mirror", "is_dataset_name"),
    "mirror_dataset": (".remote_mirror", "mirror_dataset"),
    "remote_target": (".dataset_paths", "remote_target"),
    "write_remote_dataset": (".remote_writes", "write_remote_dataset"),
    "read_rows": (".rows", "read_rows"),
    "records_uniform": (".record_reads", "records_uniform"),
    "open_files": (".opening", "open_files"),
    "open_dataset": (".opening", "open_dataset"),
    "shared_manifest": (".manifest_cache", "shared_manifest"),
    "DatasetSource": (".source", "DatasetSource"),
    "image_meta": (".source", "image_meta"),
    "BASE_CHUNKS": (".spec", "BASE_CHUNKS"),
    "CHUNKS_SCHEMA": (".spec", "CHUNKS_SCHEMA"),
    "FORMAT_VERSION": (".spec", "FORMAT_VERSION"),
    "IMAGES_SCHEMA": (".spec", "IMAGES_SCHEMA"),
    "INDEX_SCHEMA": (".spec", "INDEX_SCHEMA"),
    "LOCATOR_COLUMNS": (".spec", "LOCATOR_COLUMNS"),
    "MANIFEST": (".spec", "MANIFEST"),
    "is_dataset_dir": (".spec", "is_dataset_dir"),
    "has_dataset_files": (".spec", "has_dataset_files"),
    "read_manifest": (".spec", "read_manifest"),
    "BASE": (".tables", "BASE"),
    "Part": (".tables", "Part"),
    "appends_of": (".tables", "appends_of"),
    "images_schema": (".tables", "images_schema"),
    "parts_of": (".tables", "parts_of"),
    "value_index_rows": (".value_index", "value_rows"),
    "verify_dataset": (".verify", "verify_dataset"),
    "stream_dataset": (".writer", "stream_dataset"),
    "write_images": (".writer", "write_images"),
}


__getattr__ = lazy_names(__name__, _WHERE)
