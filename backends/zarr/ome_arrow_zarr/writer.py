"""Write an image as OME-Zarr: OME-NGFF 0.5 on Zarr v3 (default) or 0.4 on Zarr v2, atomically.

The store holds one multiscale image with axes ``t c z y x`` (NGFF's order), level ``k`` at
path ``"k"``. Level 0 is the image; level ``k`` keeps every ``2**k``-th pixel along Y and X
(nearest neighbour: values are never mixed, so every dtype and label images stay exact) and
its scale is ``2**k`` times level 0's there. Chunks are ``(1, 1, z, y, x)`` from
``chunk_shape`` (default: the image's own chunk shape, else one plane up to 512x512). Chunks
are zstd-compressed; in NGFF 0.5 (Zarr v3) with zstd's content checksum, so a flipped bit
reads as an error, not as wrong pixels (Zarr v2 has no checksum other readers accept). Every
chunk is written, even one that holds only the fill value, and the XXH3-64 checksum of every
stored chunk goes into its array's attributes (``ome_arrow.chunk_checksums``, see
:mod:`.integrity`): our reader checks them, in Zarr v2 and v3, compressed or not, and refuses a
missing chunk of ours instead of reading it as the fill value. The store is
written beside ``out`` and moved into place only when complete; an existing ``out`` is never
replaced (remove it first).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ome_arrow_core.plugin_api import CHECKSUM_ALGORITHM, ArgumentError, PlaneBlocks, atomic_path, channel_to_dict

from .meta import OURS
from .ngff import unit_name

if TYPE_CHECKING:
    from ome_arrow_core import ImageMeta, OMEArrow

__all__ = ["write_ome_zarr", "ngff_attrs", "level_shape", "COMPRESSIONS"]

#: Accepted ``compression=`` values (None is "none").
COMPRESSIONS: Final[tuple[str, ...]] = ("zstd", "none")
_TILE: Final[int] = 512
_TYPES: Final[dict[str, str]] = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def level_shape(meta: ImageMeta, k: int) -> tuple[int, int, int, int, int]:
    """TCZYX shape of level ``k`` (Y and X divided by ``2**k``, rounded up)."""
    s = meta.sizes
    f = 2**k
    return (s["T"], s["C"], s["Z"], -(-s["Y"] // f), -(-s["X"] // f))


def _axes(meta: ImageMeta) -> list[dict[str, str]]:
    out = []
    for name in "tczyx":
        ax = {"name": name, "type": _TYPES[name]}
        if name in "zyx" and meta.physical_size.get(name.upper()) is not None:  # no unit: uncalibrated
            unit = unit_name(meta.physical_unit.get(name.upper()))
            if unit:
                ax["unit"] = unit
        out.append(ax)
    return out


def _omero(meta: ImageMeta, windows: Sequence[tuple[float, float]]) -> dict[str, Any]:
    chans = []
    for c, (lo, hi) in zip(meta.channels, windows, strict=True):
        color = "FFFFFF" if c.color_rgba is None else f"{(int(c.color_rgba) >> 8) & 0xFFFFFF:06X}"
        chans.append(
            {
                "label": c.name or c.id,
                "color": color,
                "active": True,
                "window": {"min": lo, "max": hi, "start": lo, "end": hi},
            }
        )
    return {"channels": chans, "rdefs": {"model": "color" if len(chans) > 1 else "greyscale"}}


def ngff_attrs(meta: ImageMeta, levels: int, version: str, windows: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """The group attributes of the store: NGFF ``multiscales`` and ``omero``, and our own metadata."""
    base = [1.0, 1.0] + [float(meta.physical_size.get(a) or 1.0) for a in "ZYX"]  # unknown: 1 without a unit
    datasets = [
        {
            "path": str(k),
            "coordinateTransformations": [{"type": "scale", "scale": [*base[:3], base[3] * 2**k, base[4] * 2**k]}],
        }
        for k in range(levels)
    ]
    ms: dict[str, Any] = {"name": meta.name, "axes": _axes(meta), "datasets": datasets}
    if levels > 1:
        ms["type"] = "nearest"
        ms["metadata"] = {"description": "every 2**k-th pixel along y and x", "method": "numpy strided slicing"}
    ours: dict[str, Any] = {
        "id": meta.id,
        "name": meta.name,
        "acquisition_datetime": meta.acquisition_datetime,
        "channels": [channel_to_dict(c) for c in meta.channels],
    }
    unnamed = {  # units NGFF has no name for (OME's "pixel"...): kept here, or they would read back as µm
        ax: meta.physical_unit[ax]
        for ax in "XYZ"
        if meta.physical_size.get(ax) is not None and unit_name(meta.physical_unit.get(ax)) is None
    }
    if unnamed:
        ours["physical_unit"] = unnamed
    body = {"multiscales": [ms], "omero": _omero(meta, windows)}
    if version == "0.4":
        ms["version"] = "0.4"
        return {**body, OURS: ours, "_creator": {"name": "ome-arrow-core"}}
    return {"ome": {"version": "0.5", **body}, OURS: ours, "_creator": {"name": "ome-arrow-core"}}


def _chunks(meta: ImageMeta, chunk_shape: Sequence[int] | None) -> tuple[int, int, int]:
    if chunk_shape is None:
        if meta.chunk_shape is not None:
            return meta.chunk_shape
        return (1, min(meta.sizes["Y"], _TILE), min(meta.sizes["X"], _TILE))
    vals = tuple(chunk_shape)
    if len(vals) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in vals):
        raise ArgumentError(f"chunk_shape={chunk_shape!r}: expected three positive ints (z, y, x)")
    return (int(vals[0]), int(vals[1]), int(vals[2]))


def _check(version: str, levels: int, compression: str | None, level: int) -> str:
    if version not in ("0.5", "0.4"):
        raise ArgumentError(f"version={version!r}: this writer writes OME-NGFF '0.5' (Zarr v3) or '0.4' (Zarr v2)")
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 16:
        raise ArgumentError(f"levels={levels!r}: expected an int from 1 (full resolution only) to 16")
    comp = "none" if compression is None else compression
    if comp not in COMPRESSIONS:
        raise ArgumentError(f"compression={compression!r}: expected one of {', '.join(COMPRESSIONS)} or None")
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 22:
        raise ArgumentError(f"compression_level={level!r}: expected an int from 1 to 22")
    return comp


def _create(
    group: Any,
    k: int,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    version: str,
    comp: str,
    level: int,
) -> Any:
    import numcodecs
    from zarr.codecs import ZstdCodec

    common: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": dtype, "fill_value": 0}  # v2 and v3 alike
    common.update(config={"write_empty_chunks": True})
    if version == "0.4":
        # No checksum in Zarr v2: numcodecs writes it as a "checksum" member other v2 readers refuse (tensorstore).
        compressor = numcodecs.Zstd(level=level) if comp == "zstd" else None
        return group.create_array(
            str(k), compressors=compressor, chunk_key_encoding={"name": "v2", "separator": "/"}, **common
        )
    compressors = [ZstdCodec(level=level, checksum=True)] if comp == "zstd" else None
    return group.create_array(str(k), compressors=compressors, dimension_names=list("tczyx"), **common)


def write_ome_zarr(
    image: OMEArrow,
    out: Path,
    *,
    version: str = "0.5",
    levels: int = 1,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "zstd",
    compression_level: int = 3,
    ome_xml: bool = True,
) -> Path:
    """Write ``image`` to directory ``out`` as OME-Zarr (NGFF ``version`` "0.5" or "0.4").

    ``levels`` resolution levels (1: full resolution only); ``chunk_shape=(z, y, x)``;
    ``compression`` "zstd" (with checksums in 0.5) or None. The image is read and written a slab of
    whole chunks at a time (``PlaneBlocks``: one time point's planes of a multiple of ``chunk_shape``'s ``z``,
    about ``plane_blocks.BLOCK_BYTES``, or one chunk depth when that is larger): the memory of a slab, not of
    the image. On failure nothing is left at ``out``; an existing ``out`` raises UnsafeOverwriteError before
    anything is written. An image with a stored OME-XML (read from an
    OME-TIFF, or any of our formats that kept it) is written in the bioformats2raw layout: the image
    at ``"0"`` and the document in ``OME/METADATA.ome.xml`` (see :mod:`.omexml`); ``ome_xml=False``
    writes the image at the root without it.
    """
    import zarr

    from .integrity import KEY, checksum_attrs, recording_store
    from .omexml import OURS_KEY, write_layout

    comp = _check(version, levels, compression, compression_level)
    meta = image.meta
    cz, cy, cx = _chunks(meta, chunk_shape)
    out = Path(out)
    document = meta.ome_xml if ome_xml else None
    with atomic_path(out, directory=True, replace=False) as tmp:
        digests: dict[str, int] = {}
        root = zarr.open_group(recording_store(tmp, digests), mode="w", zarr_format=2 if version == "0.4" else 3)
        group, prefix = (root.create_group("0"), "0/") if document is not None else (root, "")
        arrays = []
        for k in range(levels):
            shape = level_shape(meta, k)
            chunks = (1, 1, min(cz, shape[2]), min(cy, shape[3]), min(cx, shape[4]))
            arrays.append(_create(group, k, shape, chunks, meta.dtype, version, comp, compression_level))
        lo = np.full(meta.sizes["C"], np.inf)
        hi = np.full(meta.sizes["C"], -np.inf)
        for t, zs, slab_zcyx in PlaneBlocks(image, z_align=cz).blocks():  # whole chunks: not the image, not a plane
            czyx = slab_zcyx.transpose(1, 0, 2, 3)
            for k, arr in enumerate(arrays):
                f = 2**k
                arr[t, :, zs.start : zs.stop] = czyx[..., ::f, ::f]
            if slab_zcyx.size and meta.dtype != np.bool_:
                lo = np.fmin(lo, np.fmin.reduce(slab_zcyx, axis=(0, 2, 3)).astype(np.float64))
                hi = np.fmax(hi, np.fmax.reduce(slab_zcyx, axis=(0, 2, 3)).astype(np.float64))
        windows = [
            (float(a), float(b)) if np.isfinite(a) and np.isfinite(b) else (0.0, 1.0)
            for a, b in zip(lo, hi, strict=True)
        ]
        for k, arr in enumerate(arrays):  # the chunks' checksums, then the group's metadata: both before the rename
            arr.attrs.put({OURS: {KEY: checksum_attrs(arr, f"{prefix}{k}", digests, "tczyx")}})
        attrs = ngff_attrs(meta, levels, version, windows)
        attrs[OURS][KEY] = CHECKSUM_ALGORITHM
        group.attrs.put(attrs)
        if document is not None:  # the root last: until it is written, the store is no bioformats2raw root
            entry = write_layout(root, tmp, document, "0", version)
            root.attrs.update({OURS: {KEY: CHECKSUM_ALGORITHM, OURS_KEY: entry}})
    return out
