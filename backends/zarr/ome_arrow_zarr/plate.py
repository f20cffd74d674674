"""OME-Zarr HCS plates: every field of every well as one image of a collection with plate metadata columns.

``open_plate(path)`` reads the plate's and each well's NGFF metadata (no pixels) and returns a
:class:`PlateDataset`: a sequence of lazily opened images (``OMEArrow.scan`` of each field's image
group) with a table of ``image_id`` (``"A/1/0"``), ``path``, ``plate``, ``row``, ``column``, ``well``,
``field`` and ``acquisition``, like :class:`~ome_arrow_core.OMEArrowDataset`'s metadata columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ome_arrow_core import OMEArrow, SchemaError, SelectionError
from ome_arrow_core.plugin_api import DamagedFileError, reading, where

from .ngff import ome_attrs
from .source import open_group
from .store import Counter

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc

__all__ = ["PlateDataset", "field_path", "open_plate", "plate_table"]

_COLUMNS = ("image_id", "path", "plate", "row", "column", "well", "field", "acquisition")


def _ngff(path: Path, member: str) -> Mapping[str, Any]:
    group = open_group(path, Counter(), "fill", "opening the plate")
    with reading(path, member, "reading the NGFF metadata"):
        attrs = group.attrs.asdict()
    return ome_attrs(attrs, group.metadata.zarr_format, where(path, member))[1]


def _named(items: Any, what: str, here: str) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items):
        raise DamagedFileError(f"{here}: plate.{what} is {items!r}, expected a list of objects with a name")
    return [str(i["name"]) for i in items]


def _wells(plate: Mapping[str, Any], here: str) -> list[tuple[str, str, str]]:
    """(path, row name, column name) of each well the plate lists."""
    rows, cols = _named(plate.get("rows"), "rows", here), _named(plate.get("columns"), "columns", here)
    wells = plate.get("wells")
    if not isinstance(wells, list):
        raise DamagedFileError(f"{here}: plate.wells is {wells!r}, expected a list")
    out, seen = [], set()
    for w in wells:
        wp = w.get("path") if isinstance(w, Mapping) else None
        if not isinstance(wp, str) or wp.count("/") != 1 or ".." in wp.split("/"):
            raise DamagedFileError(f"{here}: a well's path is {wp!r}, expected 'ROW/COLUMN'")
        if wp in seen:
            raise DamagedFileError(f"{here}: plate.wells lists well {wp!r} twice; each well is listed once")
        seen.add(wp)
        r, c = wp.split("/")
        ri, ci = w.get("rowIndex"), w.get("columnIndex")  # 0.4+: indices; 0.3: names in the path only
        if isinstance(ri, int) and isinstance(ci, int):
            if not (0 <= ri < len(rows) and 0 <= ci < len(cols)) or (rows[ri], cols[ci]) != (r, c):
                raise DamagedFileError(
                    f"{here}: well {wp!r} has rowIndex {ri} and columnIndex {ci}, which name "
                    f"another well of rows {rows} and columns {cols}"
                )
        out.append((wp, r, c))
    return out


#: Plate tables already read, by store path, with the stamps of the plate's and each well's metadata document:
#: reused while those are unchanged.
_CACHE: dict[str, tuple[tuple[int, int, int], dict[str, tuple[int, int, int]], pa.Table]] = {}
_CACHE_SIZE = 16


def _stamp(root: Path) -> tuple[int, int, int]:
    """(inode, size, mtime) of the plate's metadata document: a rewritten plate gets a new table."""
    for name in ("zarr.json", ".zattrs"):
        try:
            st = (root / name).stat()
        except OSError:
            continue
        return (st.st_ino, st.st_size, st.st_mtime_ns)
    return (0, 0, 0)


def plate_table(path: str | Path, well: str | None = None) -> pa.Table:
    """One row per field of the HCS plate at ``path`` (plate and well metadata only, no pixels):
    image_id ("A/1/0"), path, plate, row, column, well, field, acquisition.

    A table read before is reused while the plate's metadata document and every well's (only ``well``'s, when
    given) are unchanged."""
    root = Path(path)
    stamp = _stamp(root)
    hit = _CACHE.get(str(root))
    if hit is not None and hit[0] == stamp:
        wells = hit[1] if well is None else {well: hit[1].get(well, (0, 0, 0))}
        if all(_stamp(root / w) == s for w, s in wells.items()):
            return hit[2]
    table = _read_plate(root)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[str(root)] = (stamp, {w: _stamp(root / w) for w in set(table.column("well").to_pylist())}, table)
    return table


def field_path(path: str | Path, row: int) -> Path:
    """The image group of field ``row`` (in plate order) of the plate at ``path``."""
    hit = _CACHE.get(str(Path(path)))
    ok = isinstance(row, int) and not isinstance(row, bool) and hit is not None and 0 <= row < hit[2].num_rows
    # a table read before: only the plate's document and this field's well's are checked (O(1) per image)
    table = plate_table(path, hit[2].column("well")[row].as_py() if ok and hit is not None else None)
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < table.num_rows:
        raise SelectionError(
            f"row={row!r} is out of range: the plate {path} holds {table.num_rows} fields "
            f"(rows 0..{table.num_rows - 1})"
        )
    return Path(table.column("path")[row].as_py())


def _read_plate(root: Path) -> pa.Table:
    ngff = _ngff(root, "zarr.json or .zattrs")
    plate = ngff.get("plate")
    if not isinstance(plate, Mapping):
        raise SchemaError(f"{root} is not an OME-Zarr HCS plate (no plate metadata); open an image with OMEArrow")
    here = where(root, "plate")
    name = str(plate.get("name") or root.name.removesuffix(".zarr").removesuffix(".ome"))
    rows: list[dict[str, Any]] = []
    for wp, r, c in _wells(plate, here):
        if not (root / wp).is_dir():  # a well the plate lists but the store lacks: damaged, not skipped
            raise DamagedFileError(f"{where(root, wp)}: the plate lists well {wp!r} but the store has no such group")
        well = _ngff(root / wp, f"{wp}").get("well")
        images = well.get("images") if isinstance(well, Mapping) else None
        if not isinstance(images, list):
            raise DamagedFileError(f"{where(root, wp)}: well.images is missing or not a list")
        fields: set[str] = set()
        for k, im in enumerate(images):
            fp = im.get("path") if isinstance(im, Mapping) else None
            if not isinstance(fp, str) or not fp or "/" in fp or fp in (".", ".."):
                raise DamagedFileError(f"{where(root, wp)}: images[{k}].path is {fp!r}, expected a field name")
            if fp in fields:
                raise DamagedFileError(
                    f"{where(root, wp)}: images[{k}].path {fp!r} repeats a field; each is listed once"
                )
            fields.add(fp)
            acq = im.get("acquisition")
            rows.append(
                {
                    "image_id": f"{wp}/{fp}",
                    "path": str(root / wp / fp),
                    "plate": name,
                    "row": r,
                    "column": c,
                    "well": wp,
                    "field": k,
                    "acquisition": acq if isinstance(acq, int) else None,
                }
            )
    import pyarrow as pa

    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("image_id", pa.string()),
                ("path", pa.string()),
                ("plate", pa.string()),
                ("row", pa.string()),
                ("column", pa.string()),
                ("well", pa.string()),
                ("field", pa.int32()),
                ("acquisition", pa.int32()),
            ]
        ),
    )


def open_plate(path: str | Path, *, level: int = 0) -> PlateDataset:
    """Every field of the HCS plate at ``path`` (metadata only), each opened at ``level`` when read.

    ``OMEArrowDataset.scan(path)`` gives the same rows as a dataset (at level 0)."""
    return PlateDataset(plate_table(path), level)


class PlateDataset(Sequence[OMEArrow]):
    """The fields of a plate as lazily opened images, with their plate metadata in :attr:`table`."""

    def __init__(self, table: pa.Table, level: int = 0) -> None:
        self._table = table
        self._paths: list[str] = table.column("path").to_pylist()
        self.level = level

    @property
    def table(self) -> pa.Table:
        """One row per field: image_id, path, plate, row, column, well, field, acquisition."""
        return self._table

    def metadata(self, i: int) -> dict[str, Any]:
        """The table row of field ``i`` as a dict."""
        return {k: v[0] for k, v in self._table.slice(self._index(i), 1).to_pydict().items()}

    def __len__(self) -> int:
        return len(self._paths)

    def _index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, int) or not -len(self) <= i < len(self):
            raise SelectionError(f"image {i!r} is out of range: the plate holds {len(self)} fields")
        return i % len(self)

    def __getitem__(self, i: int) -> OMEArrow:  # type: ignore[override]
        """Field ``i``, opened lazily (metadata read; pixels when a view runs)."""
        return OMEArrow.scan(self._paths[self._index(i)], level=self.level)

    def __iter__(self) -> Iterator[OMEArrow]:
        for i in range(len(self)):
            yield self[i]

    def filter(self, expr: pc.Expression) -> PlateDataset:
        """The fields whose table rows match ``expr`` (e.g. ``pc.field("row") == "B"``)."""
        return PlateDataset(self._table.filter(expr), self.level)

    def __repr__(self) -> str:
        return f"PlateDataset({len(self)} fields)"
