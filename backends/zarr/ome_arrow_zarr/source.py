"""ZarrSource: one level of one OME-NGFF image (or label image), read chunk by chunk on request.

Opening reads only metadata documents (the group's and each level array's). A read asks
zarr-python for exactly the selection, so only the chunks (or, in sharded arrays, the
inner chunks and shard indexes) it intersects are read; ``chunks_read`` counts them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ome_arrow_core import ImageMeta, OMEArrowError, SchemaError, Selection, SelectionError
from ome_arrow_core.plugin_api import (
    DamagedFileError,
    DTypeError,
    Location,
    check_dtype,
    reading,
    verify_enabled,
    where,
)

from .axes import AxisMap
from .integrity import KEY, ChunkManifest
from .meta import OURS, image_meta, level_facts
from .ngff import Multiscale, ome_attrs, parse_multiscale
from .omexml import OURS_KEY, XML_KEY, is_layout, series_path, with_document
from .store import ArrayVersion, Counter, open_store

__all__ = ["ZarrSource", "open_group"]

#: Storage cells probed to name the damaged one after a failed read.
_PROBE_LIMIT = 4096


def open_group(
    target: Path | Location,
    counter: Counter,
    missing: str,
    what: str = "opening the OME-Zarr store",
    manifest: ChunkManifest | None = None,
) -> Any:
    """The zarr group at directory (or remote location) ``target`` (read-only, counting chunk reads, checking
    ``manifest``'s chunks)."""
    import zarr

    path = target.display_path() if isinstance(target, Location) else target
    store = open_store(target, counter, missing, manifest)
    with reading(path, "zarr.json or .zattrs", what):
        node = _open_node(zarr, store)
    if not isinstance(node, zarr.Group):
        raise SchemaError(
            f"{path} is a single Zarr array, not an OME-Zarr image (no multiscales metadata); open it with "
            "zarr and pass the array: OMEArrow(zarr.open_array(path)[...], dim_order=...)"
        )
    return node


def _open_node(zarr: Any, store: Any) -> Any:
    """The root node of ``store``: a Zarr v3 group read from its ``zarr.json`` alone (one request; zarr's own
    probing would look for the v2 documents as well), else whatever zarr finds (v2, or an array)."""
    from zarr.errors import GroupNotFoundError

    for zarr_format in (3, 2):
        try:
            return zarr.open_group(store=store, mode="r", zarr_format=zarr_format)
        except (GroupNotFoundError, FileNotFoundError, KeyError, TypeError, ValueError):
            continue
    return zarr.open(store=store, mode="r")  # an array, or what zarr itself says is wrong


class ZarrSource:
    """Level ``level`` of multiscale image ``row`` of the OME-Zarr group at ``path`` (or of its
    label image ``label``), as a pixel source. ``chunks_read`` / ``bytes_read`` count I/O."""

    meta: ImageMeta

    def __init__(
        self,
        path: str | Path | Location,
        *,
        level: int = 0,
        label: str | None = None,
        row: int = 0,
        missing: str = "fill",
        verify: bool | None = None,
    ) -> None:
        self._target = path if isinstance(path, Location) else Path(path)  # what a pickled source reopens
        self.path: PurePath = path.display_path() if isinstance(path, Location) else Path(path)
        self.level = level
        self.label = label
        self.row = row
        self.missing = missing
        self.verify = verify
        self._counter = Counter()
        self._manifest = ChunkManifest(self.path, verify_enabled(verify))
        group = open_group(self._target, self._counter, missing, manifest=self._manifest)
        root_ours, self._series = self._bf2raw_root(group, row)
        if self._series is not None:  # a bioformats2raw root: row picks its image group
            with reading(self.path, self._series, "opening the image of the bioformats2raw store"):
                group = group_get(group, self._series)
            if not isinstance(group, zarr_group_type()):
                raise DamagedFileError(f"{where(self.path, self._series)}: is an array, expected an image group")
        base = f"{self._series}/" if self._series is not None else ""
        try:
            self._labels, self._labels_error = _label_names(group, self.path), ""
        except OMEArrowError as exc:  # damaged labels/ metadata blocks only the labels, not the image
            if label is not None:
                raise
            self._labels, self._labels_error = [], str(exc)
        if label is not None:
            group = self._label_group(group, label)
        self._group = group
        self._prefix = base + (f"labels/{label}/" if label is not None else "")
        self._member = "zarr.json" if group.metadata.zarr_format == 3 else ".zattrs"
        self._where = where(self.path, self._prefix + self._member)
        with reading(self.path, self._prefix + self._member, "reading the NGFF metadata"):
            attrs = group.attrs.asdict()
        declared, ngff = ome_attrs(attrs, group.metadata.zarr_format, self._where)
        if OURS in attrs:  # our writer's own metadata sits beside "ome" in NGFF 0.5
            ngff = {**ngff, OURS: attrs[OURS]}
        if "multiscales" not in ngff:
            raise _not_an_image(self.path, ngff, self._prefix)
        self._ms: Multiscale = parse_multiscale(ngff, declared, 0 if self._series is not None else row, self._where)
        self._axes = AxisMap.from_ngff(self._ms.axes, self._ms.types, self._where)
        self._arrays = [self._level_array(k) for k in range(len(self._ms.levels))]
        if not 0 <= level < len(self._arrays):
            raise SelectionError(
                f"level={level} is out of range: {self._where} has {len(self._arrays)} levels; "
                f"valid levels are 0..{len(self._arrays) - 1}"
            )
        self._array = self._arrays[level]
        member = self._prefix + self._ms.levels[level].path
        local = Path(self.path) / member if isinstance(self._target, Path) else None
        self._version = ArrayVersion(local, where(self.path, member))  # a store replaced since is not read
        ours = ngff.get(OURS)
        if isinstance(ours, Mapping) and ours.get(KEY) is not None:  # our writer recorded chunk checksums
            member = self._prefix + self._ms.levels[level].path
            with reading(self.path, member, "reading the chunk checksums"):
                entry = (self._array.attrs.get(OURS) or {}).get(KEY)
            self._manifest.load(self._array, member, entry, where(self.path, member), "".join(self._ms.axes))
        file_dtype = np.dtype(self._array.dtype)
        try:
            dtype = check_dtype(file_dtype.newbyteorder("="))
        except DTypeError as exc:
            member = self._prefix + self._ms.levels[level].path
            raise DTypeError(f"{where(self.path, member)}: {exc}{self._convert_hint(member, file_dtype)}") from exc
        self._dtype = dtype
        self.meta = image_meta(self._ms, ngff, self._axes, self._array, level, dtype, self.path, label)
        if self._series is not None and level == 0 and label is None:  # the document describes level 0
            entry = root_ours.get(OURS_KEY) if isinstance(root_ours, Mapping) else None
            self.meta = with_document(self.meta, self._group.store, row, entry, self.path, verify_enabled(verify))

    def _convert_hint(self, member: str, dtype: np.dtype) -> str:
        """How to read array ``member`` (of unsupported ``dtype``) converted by hand; none when its axes are not
        named by the letters ``dim_order`` takes."""
        dims = "".join(self._ms.axes).upper()
        if len(dims) != len(self._ms.axes) or len(set(dims)) != len(dims) or not set(dims) <= set("TCZYX"):
            return ""
        want = "float32" if dtype.itemsize <= 2 else "float64"
        return (
            f" To read this array, convert its pixels yourself (whole, in memory): OMEArrow(zarr.open_array("
            f"{str(self.path)!r}, path={member!r})[...].astype({want!r}), dim_order={dims!r})"
        )

    def _bf2raw_root(self, group: Any, row: int) -> tuple[Any, str | None]:
        """(the root's ``ome_arrow`` attributes, the path of image ``row``) of a bioformats2raw root; (None, None)
        for any other group."""
        member = "zarr.json" if group.metadata.zarr_format == 3 else ".zattrs"
        with reading(self.path, member, "reading the NGFF metadata"):
            attrs = group.attrs.asdict()
        _, ngff = ome_attrs(attrs, group.metadata.zarr_format, where(self.path, member))
        if not is_layout(ngff):
            return None, None
        return attrs.get(OURS), series_path(group, row, self.path)

    def _label_group(self, group: Any, label: str) -> Any:
        if not isinstance(label, str) or not label or "/" in label:
            raise SelectionError(f"label={label!r}: expected the name of one label image")
        if label not in self._labels:
            have = ", ".join(self._labels) or "none"
            raise SelectionError(f"label={label!r} is not a label image of {self.path}; its labels: {have}")
        import zarr

        with reading(self.path, f"labels/{label}", "opening the label image"):
            sub = group[f"labels/{label}"]
        if not isinstance(sub, zarr.Group):
            raise DamagedFileError(f"{where(self.path, f'labels/{label}')}: is an array, expected an image group")
        return sub

    def _level_array(self, k: int) -> Any:
        import zarr

        member = self._prefix + self._ms.levels[k].path
        with reading(self.path, member, "opening a resolution level"):
            arr = group_get(self._group, self._ms.levels[k].path)
        if not isinstance(arr, zarr.Array):
            raise DamagedFileError(f"{where(self.path, member)}: is a group, expected the level's array")
        if arr.ndim != len(self._ms.axes):
            raise DamagedFileError(
                f"{where(self.path, member)}: the array has {arr.ndim} dimensions {arr.shape} but the NGFF "
                f"metadata declares {len(self._ms.axes)} axes {list(self._ms.axes)}"
            )
        if any(n < 1 for n in arr.shape):
            raise DamagedFileError(f"{where(self.path, member)}: the array's shape {arr.shape} has an empty axis")
        return arr

    # -- lifetime ---------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the arguments it was opened with: a worker process reopens the store."""
        target = self._target if isinstance(self._target, Location) else str(self.path)
        return (_reopen, (target, self.level, self.label, self.row, self.missing, self.verify))

    def __repr__(self) -> str:
        return f"ZarrSource({str(self.path)!r}, level={self.level}, label={self.label!r})"

    @property
    def chunks_read(self) -> int:
        """Chunk (and shard index) reads made so far."""
        return self._counter.chunks

    @property
    def bytes_read(self) -> int:
        """Bytes of chunks read so far."""
        return self._counter.bytes

    # -- reading ----------------------------------------------------------------------------
    def read(self, sel: Selection) -> np.ndarray:
        """Pixels of ``sel`` as a TZCYX array, reading only the chunks it intersects."""
        index, basic = self._axes.index(sel)
        member = self._prefix + self._ms.levels[self.level].path
        try:
            with reading(self.path, member, "reading pixels"):
                data = self._array[index] if basic else self._array.get_orthogonal_selection(index)
        except OMEArrowError as exc:
            self._version.check()  # a store replaced since: that is the error, not what reading it raised
            if not isinstance(exc, DamagedFileError):
                raise
            if exc.__cause__ is None:  # ours (a missing chunk under missing="error"): it names the chunk
                raise
            bad = self._find_damaged(index)
            if bad is None:
                raise
            raise DamagedFileError(
                f"{where(self.path, member + '/' + bad)}: reading the chunk failed "
                f"({exc.__cause__ or exc}); the chunk is damaged"
            ) from exc
        self._version.check()
        out = self._axes.repeat_absent(self._axes.to_canonical(np.asarray(data)), sel)
        if out.shape != sel.shape:  # pragma: no cover - zarr returned another shape than asked
            raise OMEArrowError(f"{self.path}: read {out.shape}, expected {sel.shape}")
        return np.ascontiguousarray(out, dtype=self._dtype)

    def _find_damaged(self, index: tuple[Any, ...]) -> str | None:
        """The key of the first storage cell (chunk or shard) under ``index`` that fails to read."""
        arr = self._array
        grid = arr.shards or arr.chunks
        spans = []
        for ix, n, g in zip(index, arr.shape, grid, strict=True):
            if isinstance(ix, slice):
                lo, hi, _ = ix.indices(n)
            else:
                lo, hi = int(ix.min()), int(ix.max()) + 1
            spans.append(range(lo // g, (max(hi, lo + 1) - 1) // g + 1))
        if math.prod(len(s) for s in spans) > _PROBE_LIMIT:
            return None
        for cell in itertools.product(*spans):
            region = tuple(slice(c * g, min((c + 1) * g, n)) for c, g, n in zip(cell, grid, arr.shape, strict=True))
            try:
                arr[region]
            except OMEArrowError:
                return str(arr.metadata.encode_chunk_key(cell))
            except Exception:
                return str(arr.metadata.encode_chunk_key(cell))
        return None

    # -- description ------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Storage facts for ``info()``: store, NGFF and Zarr versions, axes, levels, labels, I/O."""
        arr = self._array
        return {
            "storage": "ome-zarr",
            "store": str(self.path),
            "ngff_version": self._ms.version,
            "zarr_format": int(self._group.metadata.zarr_format),
            "multiscale": self.row,
            "axes": "".join(self._ms.axes),
            "axes_mapping": f"{''.join(self._ms.axes)}->{self._axes.targets}",
            "level": self.level,
            "levels": [level_facts(lv, a, self._axes) for lv, a in zip(self._ms.levels, self._arrays, strict=True)],
            "downscaling": self._ms.downscaling,
            "chunks": list(arr.chunks),
            "shards": list(arr.shards) if arr.shards else None,
            "file_dtype": str(np.dtype(arr.dtype)),
            "fill_value": _plain(arr.fill_value),
            "missing_chunks": self.missing,
            "chunk_checksums": bool(self._manifest.expected),
            **({"series": self._series, "ome_xml_file": XML_KEY} if self._series is not None else {}),
            "label": self.label,
            "labels": list(self._labels),
            **({"labels_error": self._labels_error} if self._labels_error else {}),
            "chunks_read": self.chunks_read,
            "bytes_read": self.bytes_read,
        }


def zarr_group_type() -> type:
    """``zarr.Group`` (zarr imported on first use)."""
    import zarr

    return zarr.Group


def group_get(group: Any, path: str) -> Any:
    """``group[path]``, with a KeyError for an absent member turned into DamagedFileError by the caller."""
    try:
        return group[path]
    except KeyError as exc:
        raise KeyError(f"no array at {path!r} (the NGFF metadata lists it)") from exc


def _label_names(group: Any, path: PurePath) -> list[str]:
    """Names listed in ``labels/``'s NGFF metadata ([] when the store has no labels)."""
    try:
        sub = group["labels"]
    except KeyError:
        return []
    with reading(path, "labels", "reading the labels list"):
        attrs = sub.attrs.asdict()
    _, ngff = ome_attrs(attrs, sub.metadata.zarr_format, where(path, "labels"))
    names = ngff.get("labels")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DamagedFileError(f"{where(path, 'labels')}: labels is {names!r}, expected a list of names")
    return list(names)


def _not_an_image(path: PurePath, ngff: Mapping[str, Any], prefix: str) -> OMEArrowError:
    if "plate" in ngff:
        return SchemaError(
            f"{path} is an OME-Zarr HCS plate, not one image; open its fields with "
            "OMEArrowDataset.scan(path), or one field with OMEArrow.scan(path, row=i)"
        )
    if "well" in ngff:
        return SchemaError(f"{path} is an OME-Zarr well; open one field by its path ({path}/0)")
    if "labels" in ngff:
        return SchemaError(
            f"{path} is the labels group of an OME-Zarr image; open a label with label=NAME on "
            "the image, or the path of one label image"
        )
    return SchemaError(
        f"{where(path, prefix or None)} is a Zarr group without OME-NGFF multiscales metadata; "
        "it is not an OME-Zarr image"
    )


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _reopen(
    path: str | Location, level: int, label: str | None, row: int, missing: str, verify: bool | None
) -> ZarrSource:
    return ZarrSource(path, level=level, label=label, row=row, missing=missing, verify=verify)
