"""``cleanup_dataset``: what killed writes left in and beside a typed-chunk dataset, removed.

The generic part (stale temporaries, an old copy moved aside, the dataset's lock) is
:func:`ome_arrow_core.safe_write.clean_up`'s; this module adds the format's rule for
numbered files (``chunks-``/``images-``/``index-NNNNN``) that no manifest entry lists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..safe_write import PENDING, Cleanup, clean_up, list_entries, remove_entry
from .image_records import records_name
from .spec import MANIFEST, read_manifest
from .tables import BASE, appends_of

__all__ = ["cleanup_dataset"]

_NUMBERED = re.compile(r"^(?P<kind>chunks|images|index)-(?P<k>\d{5})\.")


def cleanup_dataset(path: str | os.PathLike[str]) -> Cleanup:
    """Remove what killed writes left at ``path`` (a dataset directory or an output file): put back an old
    copy a killed overwrite moved aside, remove stale temporaries beside and inside it, and files an
    interrupted append left inside a dataset (while no writer holds it). Never touches a live writer's
    files or a name that is not ours."""
    return clean_up(path, _unlisted)


def _fragments_of(file: Path) -> set[str]:
    import pyarrow.parquet as pq

    if "fragment_path" not in pq.read_schema(file).names:
        return {"chunks.parquet"}
    column = pq.read_table(file, columns=["fragment_path"]).column("fragment_path")
    return {str(v or "chunks.parquet") for v in column.unique().to_pylist()}


def _unlisted(root: Path, report: Cleanup) -> None:
    """Remove numbered files no manifest entry lists and that cannot hold images the dataset lacks."""
    if not (root / MANIFEST).is_file():
        return  # ome-arrow 0.1.0's layout has no appends: nothing to judge by
    try:
        manifest: dict[str, Any] = read_manifest(root)
        parts = [BASE, *appends_of(manifest)]
        listed = {MANIFEST, *(n for p in parts for n in (p.images, p.index, records_name(p.images)))}
        listed |= {str(f) for f in (manifest.get("ome_arrow_core") or {}).get("fragments") or []}
        for p in parts:
            if (root / p.index).is_file():
                listed |= _fragments_of(root / p.index)
    except Exception as exc:
        report.kept.append(f"{root}: its tables could not be read ({exc}); unlisted files were left")
        return
    entries = [e.name for e in list_entries(root)]
    numbered = {n for n in entries if _NUMBERED.match(n) and n not in listed}
    pending = {n: int(m["k"]) for n in entries if (m := PENDING.match(n))}  # appends that never finished
    killed = set(pending.values())
    keep: set[str] = set()
    for name in sorted(numbered):
        m = _NUMBERED.match(name)
        if m is None or m["kind"] != "images" or int(m["k"]) in killed:
            continue
        index = "index-" + name[len("images-") :]
        try:
            fragments = _fragments_of(root / index) if (root / index).is_file() else set()
        except Exception:
            fragments = set(numbered)
        keep |= {name, index, *fragments}
        report.kept.append(
            f"{root / name}: an append the manifest does not list, and no marker says it was killed; left in "
            "place (the manifest may have lost it: run `ome-arrow-core verify`)"
        )
    for name in sorted(numbered - keep) + sorted(pending):
        remove_entry(root / name)
        report.removed.append(str(root / name))
