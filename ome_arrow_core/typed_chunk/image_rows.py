"""One images-table row <-> one image's metadata (ImageMeta): the two directions side by side."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from ..errors import SchemaError
from ..fork_locks import fork_safe_lock
from ..meta import Channel, ImageMeta, channel_from_dict, channel_to_dict, physical_size_value

__all__ = ["META_COLUMNS", "image_row", "meta_from_row"]

#: The images-table columns :func:`meta_from_row` reads (a row of these alone makes the same metadata).
META_COLUMNS: tuple[str, ...] = (
    "image_id",
    "name",
    "image_type",
    "dtype",
    "channels_json",
    "acquisition_datetime",
    "ome_xml",
    *(f"size_{a}" for a in "tczyx"),
    *(f"chunk_{a}" for a in "zyx"),
    *(f"physical_size_{a}" for a in "xyz"),
    *(f"physical_size_{a}_unit" for a in "xyz"),
)


def image_row(meta: ImageMeta, image_id: str, chunk: Sequence[int], compression: str | None) -> dict[str, Any]:
    """The images-table row (IMAGES_SCHEMA columns) of one image written in chunks of ``chunk`` (TCZYX)."""
    chans = [channel_to_dict(c) for c in meta.channels]
    row: dict[str, Any] = {
        "image_id": image_id,
        "name": meta.name,
        "image_type": meta.image_type,
        "dtype": meta.dtype.name,
        "layout": "tile",
        "compression": compression or "none",
        "channels_json": json.dumps(chans),
        "acquisition_datetime": meta.acquisition_datetime,
        "ome_xml": meta.ome_xml,
    }
    row.update({f"size_{a.lower()}": meta.sizes[a] for a in "TCZYX"})
    row.update({f"chunk_{a}": int(v) for a, v in zip("tczyx", chunk)})
    row.update({f"physical_size_{a.lower()}": meta.physical_size.get(a) for a in "XYZ"})
    row.update({f"physical_size_{a.lower()}_unit": meta.physical_unit.get(a, "µm") for a in "XYZ"})
    return row


#: Parsed ``channels_json`` texts (a plate's images share a few): text -> its channels (frozen, shared), the oldest
#: dropped past :data:`_CHANNELS_KEPT`; texts longer than :data:`_CHANNELS_TEXT` are parsed each time.
_channels: dict[str, tuple[Channel, ...]] = {}
_CHANNELS_KEPT: Final[int] = 64
_CHANNELS_TEXT: Final[int] = 16384
_lock = fork_safe_lock(globals(), "_lock")


def _parse_channels(text: Any, at: str) -> tuple[Channel, ...]:
    """The channels of ``channels_json`` text ``text`` (SchemaError naming ``at`` when it is not a list of them)."""
    try:
        chans_raw = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"{at} channels_json is not JSON ({exc})") from None
    if not isinstance(chans_raw, list):
        raise SchemaError(f"{at} channels_json holds {type(chans_raw).__name__}; expected a list of channels")
    return tuple(channel_from_dict(c, i, f"{at} channels_json") for i, c in enumerate(chans_raw))


def meta_from_row(row: dict[str, Any]) -> ImageMeta:
    """The ImageMeta of one images-table row (the inverse of :func:`image_row`)."""
    at = f"images table, image {row.get('image_id')!r}:"
    text = row.get("channels_json") or "[]"
    chans = _channels.get(text) if isinstance(text, str) else None
    if chans is None:
        chans = _parse_channels(text, at)
        if isinstance(text, str) and len(text) <= _CHANNELS_TEXT:
            with _lock:
                _channels[text] = chans
                while len(_channels) > _CHANNELS_KEPT:
                    del _channels[next(iter(_channels))]
    sizes = {a: int(row[f"size_{a.lower()}"]) for a in "TCZYX"}
    meta = ImageMeta(
        sizes=sizes,
        dtype=np.dtype(row["dtype"]),
        id=str(row["image_id"]),
        name=str(row.get("name") or row["image_id"]),
        image_type=str(row.get("image_type") or "image"),
        acquisition_datetime=row.get("acquisition_datetime"),
        physical_size={
            a: physical_size_value(row.get(f"physical_size_{a.lower()}"), f"{at} physical_size_{a.lower()}")
            for a in "XYZ"
        },
        physical_unit={a: str(row.get(f"physical_size_{a.lower()}_unit") or "µm") for a in "XYZ"},
        channels=chans if len(chans) == sizes["C"] else (),
        chunk_shape=tuple(int(row.get(f"chunk_{a}") or 1) for a in "zyx"),  # type: ignore[arg-type]
    )
    xml = row.get("ome_xml")
    if xml is None:  # no stored OME-XML: its parser (xml.etree) is not loaded
        return meta
    from ..ome_xml import attach_ome_xml

    try:
        return attach_ome_xml(meta, xml)
    except SchemaError as exc:
        raise SchemaError(f"{at} {exc}") from None
