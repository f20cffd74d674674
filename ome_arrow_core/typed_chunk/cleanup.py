"""``cleanup_dataset``: what killed writes left in and beside a typed-chunk dataset, removed.

The generic part (stale temporaries, an old copy moved aside, the dataset's lock) is
:func:`ome_arrow_core.safe_write.clean_up`'s; this module adds the format's rule for
numbered files (``chunks-``/``images-``/``index-NNNNN``) that no manifest entry lists, and for the files made
from the tables (image records ``images*.records``, value indexes ``_ome_arrow_values.images*.<digest>.bin``,
the row-group lists' sidecar ``_ome_arrow_groups.<digest>.json``) that no manifest entry names: a killed write's, or those of tables an append or compaction replaced. Names are
matched exactly: a file that only looks like ours stays.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..safe_write import PENDING, Cleanup, clean_up, list_entries, remove_entry
from ..uris import local_path
from .group_lists import LISTS_FILE, LISTS_KEY, lists_file
from .image_records import RECORDS_FILE, RECORDS_KEY
from .spec import MANIFEST, read_manifest
from .tables import BASE, appends_of
from .value_index import VALUES_FILE, VALUES_KEY

__all__ = ["cleanup_dataset"]

_NUMBERED = re.compile(r"^(?P<kind>chunks|images|index)-(?P<k>\d{5,})(?P<ext>\.[A-Za-z0-9]+)$")


def cleanup_dataset(path: str | os.PathLike[str]) -> Cleanup:
    """Remove what killed writes left at ``path`` (a dataset directory or an output file): put back an old
    copy a killed overwrite moved aside, remove stale temporaries beside and inside it, and files an
    interrupted append left inside a dataset (while no writer holds it). Never touches a live writer's
    files or a name that is not ours. ``path`` is local (a URI is refused: nothing is looked at there)."""
    return clean_up(local_path(path, "cleanup"), _unlisted)


def _fragments_of(file: Path) -> set[str]:
    import pyarrow.parquet as pq

    if "fragment_path" not in pq.read_schema(file).names:
        return {"chunks.parquet"}
    column = pq.read_table(file, columns=["fragment_path"]).column("fragment_path")
    return {str(v or "chunks.parquet") for v in column.unique().to_pylist()}


def _numbered(name: str) -> re.Match[str] | None:
    """``name`` as a numbered table or chunks file of ours (chunks: any one suffix, a chunk store's), else None."""
    m = _NUMBERED.match(name)
    if m is None or m["kind"] == "chunks" or m["ext"] == ".parquet" or RECORDS_FILE.match(name):
        return m
    return None


def _named(ours: Any, key: str) -> set[str]:
    """The files the entries of manifest section ``key`` name; ValueError when the section is malformed."""
    section = ours.get(key)
    if section is None:
        return set()
    if not isinstance(section, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("file"), str) for e in section.values()
    ):
        raise ValueError(f"ome_arrow_core.{key} is malformed")
    return {str(e["file"]) for e in section.values()}


def _unlisted(root: Path, report: Cleanup) -> None:
    """Remove numbered files no manifest entry lists and that cannot hold images the dataset lacks, and records,
    value index and row-group lists files no manifest entry names."""
    if not (root / MANIFEST).is_file():
        return  # ome-arrow 0.1.0's layout has no appends: nothing to judge by
    try:
        manifest: dict[str, Any] = read_manifest(root)
        parts = [BASE, *appends_of(manifest)]
        ours = manifest.get("ome_arrow_core") or {}
        listed = {MANIFEST, *(n for p in parts for n in (p.images, p.index))}
        listed |= {str(f) for f in ours.get("fragments") or []}
        derived = _named(ours, RECORDS_KEY) | _named(ours, VALUES_KEY)  # made from the tables: no data of their own
        if ours.get(LISTS_KEY) is not None and lists_file(ours) is None:
            raise ValueError(f"ome_arrow_core.{LISTS_KEY} is malformed")
        derived |= {n for n in [lists_file(ours)] if n is not None}
        for p in parts:
            if (root / p.index).is_file():
                listed |= _fragments_of(root / p.index)
    except Exception as exc:
        report.kept.append(f"{root}: its tables could not be read ({exc}); unlisted files were left")
        return
    entries = [e.name for e in list_entries(root)]
    numbered = {n for n in entries if _numbered(n) and n not in listed and n not in derived}
    unnamed = {
        n
        for n in entries
        if (RECORDS_FILE.match(n) or VALUES_FILE.match(n) or LISTS_FILE.match(n)) and n not in derived
    }
    pending = {n: int(m["k"]) for n in entries if (m := PENDING.match(n))}  # appends that never finished
    killed = set(pending.values())
    keep: set[str] = set()
    for name in sorted(numbered):
        m = _numbered(name)
        if m is None or m["kind"] != "images" or m["ext"] != ".parquet" or int(m["k"]) in killed:
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
    for name in sorted((numbered - keep) | unnamed) + sorted(pending):
        remove_entry(root / name)
        report.removed.append(str(root / name))
