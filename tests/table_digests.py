"""Test helper: make a dataset's manifest record no table checksums, as versions before them wrote it.

Tests that rewrite a table with pyarrow (to plant a lie the deeper checks must catch, or to
imitate an older writer) call this; otherwise the table checksum refuses the table first.
"""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "_ome_arrow_dataset.json"


def without_table_digests(root: Path) -> Path:
    """Drop ``ome_arrow_core.tables`` from the manifest of the dataset at ``root`` (if it has one); returns ``root``."""
    file = Path(root) / MANIFEST
    if file.exists():
        manifest = json.loads(file.read_text())
        (manifest.get("ome_arrow_core") or {}).pop("tables", None)
        file.write_text(json.dumps(manifest, indent=2))
    return Path(root)


def without_image_records(root: Path) -> Path:
    """Drop ``ome_arrow_core.image_records`` from the manifest of the dataset at ``root`` (its images are then read
    from their images row groups, as before records: tests of that path); returns ``root``."""
    file = Path(root) / MANIFEST
    manifest = json.loads(file.read_text())
    (manifest.get("ome_arrow_core") or {}).pop("image_records", None)
    file.write_text(json.dumps(manifest, indent=2))
    return Path(root)


def with_unaligned_index(root: Path) -> Path:
    """Rewrite the base index of the dataset at ``root`` as writers before the aligned layout did (one table, no
    ``ome_arrow_core.index_groups`` key: read whole, with the whole index's checks) and drop the table checksums
    (they would refuse it first); returns ``root``."""
    import pyarrow.parquet as pq

    from ome_arrow_core.typed_chunk.spec import FILE_METADATA

    file = Path(root) / "index.parquet"
    pq.write_table(pq.read_table(file).replace_schema_metadata(FILE_METADATA), file)
    return without_table_digests(root)
