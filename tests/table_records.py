"""The manifest's row-group records of the images and index tables as tests read and edit them: their integer lists
as JSON lists (writers record them packed, see ome_arrow_core.typed_chunk.group_records), edited, then packed
again, so that an edit reaches readers through the key writers write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ome_arrow_core.typed_chunk.group_records import group_records, set_group_records, unpacked_entry


def groups_of(ours: Any) -> dict[str, dict[str, Any]]:
    """Each table's record in manifest section ``ours`` (either key), its lists as lists of ints."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in group_records(ours).items():
        fields = dict(unpacked_entry(entry))
        out[name] = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in fields.items()}
    return out


def edit_groups(ours: dict[str, Any], edit: Callable[[dict[str, dict[str, Any]]], Any]) -> None:
    """Apply ``edit`` to the records of manifest section ``ours`` (as :func:`groups_of` has them), then record them
    packed, as writers do."""
    entries = groups_of(ours)
    edit(entries)
    set_group_records(ours, entries)


def without_value_index(root: Any) -> None:
    """Drop the value index from the manifest of the dataset at ``root`` (as written before it): a mapping filter
    then reads the images tables' footers and row groups."""
    import json

    from ome_arrow_core.typed_chunk.spec import MANIFEST
    from ome_arrow_core.typed_chunk.value_index import VALUES_KEY

    manifest = json.loads((root / MANIFEST).read_text())
    manifest["ome_arrow_core"].pop(VALUES_KEY, None)
    (root / MANIFEST).write_text(json.dumps(manifest))


def value_files(root: Any) -> list[str]:
    """The value index files the manifest of the dataset at ``root`` names (see
    ome_arrow_core.typed_chunk.value_index), one per images table with text metadata columns."""
    import json

    from ome_arrow_core.typed_chunk.spec import MANIFEST
    from ome_arrow_core.typed_chunk.value_index import VALUES_KEY

    listed = json.loads((root / MANIFEST).read_text())["ome_arrow_core"].get(VALUES_KEY) or {}
    return [str(e["file"]) for e in listed.values()]


def read_lists(root: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the manifest of the dataset at ``root``, the object holding its row-group lists: the manifest's
    ``ome_arrow_core`` section, or the sidecar's object when the manifest names one; see
    ome_arrow_core.typed_chunk.group_lists)."""
    import json

    from ome_arrow_core.typed_chunk.group_lists import LISTS_KEY
    from ome_arrow_core.typed_chunk.spec import MANIFEST

    manifest = json.loads((root / MANIFEST).read_text())
    side = manifest["ome_arrow_core"].get(LISTS_KEY)
    lists = json.loads((root / side["file"]).read_text()) if side else manifest["ome_arrow_core"]
    return manifest, lists


def save_lists(root: Any, manifest: dict[str, Any], lists: dict[str, Any]) -> None:
    """Write back what :func:`read_lists` gave (edited): a sidecar with its new size and digest recorded in the
    manifest (a lie the manifest vouches for), then the manifest."""
    import json

    import xxhash

    from ome_arrow_core.typed_chunk.group_lists import LISTS_KEY
    from ome_arrow_core.typed_chunk.spec import MANIFEST

    side = manifest["ome_arrow_core"].get(LISTS_KEY)
    if side:
        blob = json.dumps(lists).encode()
        (root / side["file"]).write_bytes(blob)
        side.update(size=len(blob), digest=xxhash.xxh3_64_hexdigest(blob))
    (root / MANIFEST).write_text(json.dumps(manifest))
