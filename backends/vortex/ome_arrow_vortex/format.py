"""The ``ome-arrow-core.vortex/1`` layout: columns, chunk grid arithmetic and metadata JSON.

Nothing here imports vortex.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from ome_arrow_core import FormatVersionError, ImageMeta, LayoutError, SchemaError
from ome_arrow_core.plugin_api import (
    DamagedFileError,
    attach_ome_xml,
    channel_from_dict,
    channel_to_dict,
    physical_size_value,
)

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_NAME",
    "INDEX_COLUMNS",
    "PIXELS",
    "META",
    "CHECKSUM",
    "COLUMNS",
    "DEFAULT_TILE",
    "Grid",
    "chunk_shape_for",
    "meta_to_json",
    "meta_from_json",
]

#: Format name written to and required in the metadata JSON.
FORMAT_VERSION: Final[str] = "ome-arrow-core.vortex/1"
FORMAT_NAME: Final[str] = FORMAT_VERSION.rsplit("/", 1)[0]
#: Integer columns, in row order significance (t slowest).
INDEX_COLUMNS: Final[tuple[str, ...]] = ("t", "z", "c", "y", "x", "h", "w")
PIXELS: Final[str] = "pixels"
META: Final[str] = "meta"
COLUMNS: Final[tuple[str, ...]] = (*INDEX_COLUMNS, PIXELS, META)
#: Optional column: the checksum (algorithm ``checksum`` of the metadata JSON) of each row's pixel bytes.
#: Files written before it have none (nothing to check); readers that do not know it ignore it.
CHECKSUM: Final[str] = "checksum"
#: Planes larger than this (either side) are stored as tiles of this size.
DEFAULT_TILE: Final[int] = 512


def chunk_shape_for(ny: int, nx: int, chunk_shape: Sequence[int] | None = None) -> tuple[int, int]:
    """The (h, w) chunk for a ``ny x nx`` plane: the plane up to 512x512, else 512x512 tiles.

    A given ``chunk_shape`` is ``(h, w)``, ``(1, h, w)`` (z, y, x) or ``(1, 1, 1, h, w)``
    (t, c, z, y, x), clipped to the plane: chunks are 2-D.
    """
    if chunk_shape is None:
        if ny <= DEFAULT_TILE and nx <= DEFAULT_TILE:
            return ny, nx
        return min(ny, DEFAULT_TILE), min(nx, DEFAULT_TILE)
    try:
        vals = [int(v) for v in chunk_shape]
        ok = all(float(a) == int(a) for a in chunk_shape) and len(vals) in (2, 3, 5)
    except (TypeError, ValueError):
        vals, ok = [], False
    if not ok or min(vals) < 1 or any(v != 1 for v in vals[:-2]):
        raise LayoutError(
            f"chunk_shape must be (h, w) of positive ints (or (1, h, w), (1, 1, 1, h, w): Vortex "
            f"chunks are 2-D), got {chunk_shape!r}; e.g. chunk_shape=(256, 256), or None for the "
            "default (the plane up to 512x512, else 512x512 tiles)"
        )
    return min(vals[-2], ny), min(vals[-1], nx)


@dataclass(frozen=True)
class Grid:
    """The dense chunk grid of an image: sizes T, Z, C and (GY, GX) chunks of (h0, w0) per plane."""

    sizes: Mapping[str, int]
    chunk: tuple[int, int]

    @property
    def gy(self) -> int:
        """Chunks along Y."""
        return -(-self.sizes["Y"] // self.chunk[0])

    @property
    def gx(self) -> int:
        """Chunks along X."""
        return -(-self.sizes["X"] // self.chunk[1])

    @property
    def n_rows(self) -> int:
        """Rows of a file holding this grid."""
        s = self.sizes
        return s["T"] * s["Z"] * s["C"] * self.gy * self.gx

    def rows(
        self, t: Sequence[int], z: Sequence[int], c: Sequence[int], ty: Sequence[int], tx: Sequence[int]
    ) -> np.ndarray:
        """Row index of every (t, z, c, ty, tx) combination, in nested order (int64, 1-D).

        Ascending when each argument is.
        """
        s = self.sizes
        T, Z, C, TY, TX = np.ix_(*(np.asarray(v, dtype=np.int64) for v in (t, z, c, ty, tx)))
        rows = (((T * s["Z"] + Z) * s["C"] + C) * self.gy + TY) * self.gx + TX
        return rows.ravel()

    def chunks(self, rows: np.ndarray) -> np.ndarray:
        """(t, z, c, y, x, h, w) of the chunk stored at each of ``rows``, as an (n, 7) int32 array."""
        s = self.sizes
        t, z, c, ty, tx = np.unravel_index(np.asarray(rows, dtype=np.int64), (s["T"], s["Z"], s["C"], self.gy, self.gx))
        h0, w0 = self.chunk
        y, x = ty * h0, tx * w0
        h, w = np.minimum(h0, s["Y"] - y), np.minimum(w0, s["X"] - x)
        return np.stack([t, z, c, y, x, h, w], axis=1).astype(np.int32)


def meta_to_json(meta: ImageMeta, chunk: tuple[int, int]) -> str:
    """The metadata JSON of a file storing ``meta`` in chunks of ``chunk`` = (h, w)."""
    image = {
        "id": meta.id,
        "name": meta.name,
        "image_type": meta.image_type,
        "acquisition_datetime": meta.acquisition_datetime,
        "sizes": dict(meta.sizes),
        "dtype": meta.dtype.name,
        "physical_size": dict(meta.physical_size),
        "physical_unit": dict(meta.physical_unit),
        "channels": [channel_to_dict(ch) for ch in meta.channels],
        "ome_xml": meta.ome_xml,  # the image's source OME-XML (see ome_arrow_core.ome_xml), null without
    }
    from ome_arrow_core.plugin_api import CHECKSUM_ALGORITHM as ALGORITHM

    # the dtype the checksums were taken under: bytes read as another dtype are other pixels
    return json.dumps(
        {
            "format": FORMAT_VERSION,
            "chunk_shape": list(chunk),
            "image": image,
            "checksum": ALGORITHM,
            "checksum_dtype": meta.dtype.name,
        }
    )


def _json_field(text: str | None, key: str) -> str | None:
    """Top-level ``key`` of a file's metadata JSON as a string (None when absent or unreadable)."""
    try:
        value = json.loads(text or "{}").get(key)
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None


def checksum_algorithm(text: str | None) -> str | None:
    """The ``checksum`` algorithm named by a file's metadata JSON (None when absent)."""
    return _json_field(text, "checksum")


def checksum_dtype(text: str | None) -> str | None:
    """The dtype name the checksums of a file were taken under (None when absent)."""
    return _json_field(text, "checksum_dtype")


def meta_from_json(text: str | None, where: str) -> tuple[ImageMeta, tuple[int, int]]:
    """Parse the metadata JSON of the file at ``where``; SchemaError if it is not ours."""
    hint = "expected a file written by OMEArrow.export(how='vortex')"
    if not text:
        raise SchemaError(f"{where}: the 'meta' column is empty in row 0; {hint}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{where}: the 'meta' column is not JSON ({exc}); {hint}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), str):
        raise SchemaError(f"{where}: the metadata has no 'format' field; {hint}")
    fmt = doc["format"]
    if fmt != FORMAT_VERSION:
        if fmt.startswith(FORMAT_NAME + "/"):
            raise FormatVersionError(
                f"{where} was written in format {fmt!r}; this reader knows {FORMAT_VERSION!r}. "
                "Upgrade ome-arrow-vortex to read it."
            )
        raise SchemaError(f"{where}: metadata format is {fmt!r}, not {FORMAT_VERSION!r}; {hint}")
    try:
        img = doc["image"]
        h, w = (int(v) for v in doc["chunk_shape"])
        channels = tuple(channel_from_dict(ch, i, "image.channels") for i, ch in enumerate(img["channels"]))
        stored = img["physical_size"]
        if not isinstance(stored, Mapping):
            raise SchemaError(f"image.physical_size is {type(stored).__name__}; expected an object")
        physical = {ax: physical_size_value(stored.get(ax), f"image.physical_size.{ax}") for ax in "XYZ"}
        meta = ImageMeta(
            sizes={k: int(v) for k, v in img["sizes"].items()},
            dtype=np.dtype(img["dtype"]),
            id=img["id"],
            name=img["name"],
            image_type=img.get("image_type", "image"),
            acquisition_datetime=img.get("acquisition_datetime"),
            physical_size=physical,
            physical_unit=dict(img["physical_unit"]),
            channels=channels,
            chunk_shape=(1, h, w),
        )
        meta = attach_ome_xml(meta, img.get("ome_xml"))
    except SchemaError as exc:
        raise DamagedFileError(f"{where}: the metadata JSON is invalid: {exc}; {hint}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(
            f"{where}: the metadata JSON is incomplete or invalid ({type(exc).__name__}: {exc}); {hint}"
        ) from None
    if h < 1 or w < 1:
        raise SchemaError(f"{where}: chunk_shape {[h, w]} must be positive; {hint}")
    return meta, (h, w)
