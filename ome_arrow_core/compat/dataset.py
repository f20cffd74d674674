"""Typed-chunk datasets under the reference's names (``ome_arrow.dataset``).

The on-disk layout is the one ome-arrow 0.1.0 writes and reads (images.parquet,
chunks.parquet, index.parquet, _ome_arrow_dataset.json); writing and pixel reads go through
ome-arrow-core (atomic, checksummed, dtype kept), ``read_chunk_rows`` reads raw rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import ImageMeta, write_dataset
from .. import OMEArrow as CoreImage
from .. import OMEArrowDataset as CoreDataset
from ..errors import ArgumentError
from ..plugin_api import atomic_path, reading
from ..safe_write import lock
from .choice import AccessPattern, ChunkChoice, Layout, choose_chunking
from .export import convert_pixels
from .ingest import to_tczyx
from .records import decode_record

__all__ = [
    "AccessPattern",
    "ArrayReturn",
    "ChunkChoice",
    "Layout",
    "OMEArrowDataset",
    "OMEArrowPixels",
    "choose_chunking",
    "write_ome_arrow_dataset",
]

ArrayReturn = Literal["numpy", "torch", "jax"]
_MANIFEST = "_ome_arrow_dataset.json"
_ORDER = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TCZYX"}


def _as_tczyx(image: Any) -> tuple[np.ndarray, str | None, dict[str, Any]]:
    """(TCZYX pixels, record id or None, record header) of an array, record or OMEArrow."""
    if hasattr(image, "core_image") and hasattr(image, "data"):  # the compat OMEArrow (core imports this module)
        image = image.data
    if isinstance(image, (dict, pa.StructScalar)):
        row = image.as_py() if isinstance(image, pa.StructScalar) else image
        return decode_record(image), row.get("id"), row
    arr = np.asarray(image)
    if arr.ndim not in _ORDER:
        raise ArgumentError(f"dataset images are 2-5-D arrays (YX, ZYX, TZYX, TCZYX), got {arr.ndim} axes")
    return to_tczyx(arr, _ORDER[arr.ndim]), None, {}


def _meta(pixels: np.ndarray, image_id: str, header: dict[str, Any]) -> ImageMeta:
    T, C, Z, Y, X = pixels.shape
    pm = header.get("pixels_meta") or {}
    phys = {ax: pm.get(f"physical_size_{ax.lower()}") for ax in "XYZ"}
    return ImageMeta(
        sizes={"T": T, "C": C, "Z": Z, "Y": Y, "X": X},
        dtype=pixels.dtype,
        id=image_id,
        name=str(header.get("name") or image_id),
        image_type=str(header.get("image_type") or "image"),
        physical_size=phys,
        physical_unit={ax: str(pm.get(f"physical_size_{ax.lower()}_unit") or "µm") for ax in "XYZ"},
    )


def write_ome_arrow_dataset(
    images: Sequence[Any],
    output_path: str | os.PathLike[str],
    *,
    layout: Layout = "auto",
    access_pattern: AccessPattern = "balanced",
    target_chunk_mb: float = 4.0,
    chunk_shape: Sequence[int] | None = None,
    compression: str | None = "zstd",
    build_physical_index: bool = True,
    chunk_rows_per_row_group: int = 1,
    pixel_dtype: Any = None,
    clamp: bool = True,
) -> ChunkChoice:
    """Write images (arrays, records or OMEArrow objects) as a typed-chunk dataset; returns the first choice.

    Written atomically by ome-arrow-core; an existing dataset at ``output_path`` is replaced,
    anything else there is refused. The physical index is always written
    (``build_physical_index=False`` is refused). ``pixel_dtype`` converts explicitly
    (``clamp`` clips out-of-range values first; without it they raise).
    """
    if not images:
        raise ArgumentError("images must contain at least one image")
    if chunk_rows_per_row_group <= 0:
        raise ArgumentError("chunk_rows_per_row_group must be > 0")
    if not build_physical_index:
        raise ArgumentError(
            "build_physical_index=False is not supported: ome-arrow-core always writes "
            "index.parquet (its readers and verify use it)"
        )
    prepared, choices, seen = [], [], set()
    for i, image in enumerate(images):
        pixels, rid, header = _as_tczyx(image)
        pixels = convert_pixels(pixels, pixel_dtype, clamp)
        image_id = str(rid) if rid and rid != "unnamed" else f"image-{i:05d}"
        if image_id in seen:
            raise ArgumentError(f"Duplicate image_id in OME-Arrow dataset write: {image_id!r}")
        seen.add(image_id)
        choices.append(
            choose_chunking(
                pixels.shape,
                pixels.dtype,
                layout=layout,
                access_pattern=access_pattern,
                target_chunk_mb=target_chunk_mb,
                compression=compression,
                chunk_shape=chunk_shape,
            )
        )
        prepared.append((_meta(pixels, image_id, header), pixels))  # TCZYX, named below
    out = Path(output_path)
    mode: Literal["create", "overwrite"] = "overwrite" if (out / _MANIFEST).exists() else "create"
    write_dataset(
        prepared,
        out,
        mode=mode,
        image_ids=[m.id for m, _ in prepared],
        chunk_shape=choices[0].chunk_shape,
        compression=compression,
        rows_per_group=chunk_rows_per_row_group,
        dim_order="TCZYX",
        progress=False,
    )
    _record_versions(out / _MANIFEST)
    return choices[0]


def _record_versions(manifest: Path) -> None:
    """Add ``package_versions`` (as the reference's manifest has) to a freshly written manifest, atomically, under
    the dataset's lock (a read-modify-write: unlocked, an append committing between its read and its rename lost
    its images from the manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    def known(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    names = ("ome-arrow-core", "pyarrow", "numpy")
    versions = {n: v for n in names if (v := known(n)) is not None}
    with lock(manifest.parent):  # as writers hold it: an append committed meanwhile is read here, not lost
        with reading(manifest, None, "reading the manifest"):
            content = json.loads(manifest.read_text(encoding="utf-8"))
        content["package_versions"] = versions
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(content, indent=2), encoding="utf-8")


def _slice(value: int | slice | None, size: int) -> slice:
    if value is None:
        return slice(0, size)
    if isinstance(value, slice):
        start, stop, step = value.indices(size)
        if step != 1:
            raise ArgumentError("dataset regions take contiguous slices (step 1)")
        return slice(start, stop)
    v = int(value)
    if not 0 <= v < size:
        raise ArgumentError(f"index {v} is out of range 0..{size - 1}")
    return slice(v, v + 1)


def _convert_return(arr: np.ndarray, return_type: str) -> Any:
    if return_type == "numpy":
        return arr
    if return_type == "torch":
        import torch

        return torch.from_numpy(np.array(arr))
    if return_type == "jax":
        import jax.numpy as jnp

        return jnp.asarray(arr)
    raise ArgumentError(f"return_type must be 'numpy', 'torch' or 'jax', got {return_type!r}")


class OMEArrowDataset:
    """A typed-chunk dataset directory (written by ome-arrow 0.1.0 or ome-arrow-core)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"No such dataset: {self.path}")
        self._core = CoreDataset.scan(self.path)
        with reading(self.path, "images.parquet", "reading the images table"):
            self.images = pq.read_table(self.path / "images.parquet")
        index = self.path / "index.parquet"
        with reading(self.path, "index.parquet", "reading the index"):
            self.index = pq.read_table(index) if index.exists() else None
        self.pixels = OMEArrowPixels(self)

    @property
    def image_ids(self) -> list[str]:
        """Image ids, in order."""
        return [str(v) for v in self.images["image_id"].to_pylist()]

    def image_metadata(self, image_id: str) -> dict[str, Any]:
        """The images-table row of ``image_id``."""
        ids = self.image_ids
        if str(image_id) not in ids:
            raise KeyError(f"image_id not found: {image_id}")
        return dict(self.images.slice(ids.index(str(image_id)), 1).to_pylist()[0])

    def _resolve(self, image_id: str | None) -> str:
        if image_id is not None:
            return str(image_id)
        if not self.image_ids:
            raise ArgumentError("Dataset contains no image IDs.")
        return self.image_ids[0]

    def _image(self, image_id: str | None) -> CoreImage:
        key = self._resolve(image_id)
        if key not in self.image_ids:
            raise KeyError(f"image_id not found: {key}")
        return self._core[self.image_ids.index(key)]

    def read_region(
        self,
        image_id: str | None = None,
        *,
        t: int | slice | None = None,
        c: int | slice | None = None,
        z: int | slice | None = None,
        y: slice | None = None,
        x: slice | None = None,
        return_type: ArrayReturn = "numpy",
    ) -> Any:
        """Pixels of a TCZYX region (ints keep their axis, of length 1), in the stored dtype."""
        img = self._image(image_id)
        s = img.sizes
        st, sc, sz = _slice(t, s["T"]), _slice(c, s["C"]), _slice(z, s["Z"])
        sy, sx = _slice(y, s["Y"]), _slice(x, s["X"])
        view = img.tensor_view(
            t=st, z=sz, c=sc, roi=(sx.start, sy.start, sx.stop - sx.start, sy.stop - sy.start), layout="TCZYX"
        )
        return _convert_return(np.ascontiguousarray(view.to_numpy()), return_type)

    def read_image(self, image_id: str | None = None, *, return_type: ArrayReturn = "numpy") -> Any:
        """A whole image as TCZYX."""
        return self.read_region(image_id, return_type=return_type)

    def read_many(self, image_ids: Iterable[str], *, return_type: ArrayReturn = "numpy") -> list[Any]:
        """Several whole images."""
        return [self.read_image(i, return_type=return_type) for i in image_ids]

    def read_channel(self, image_id: str | None = None, channel: int = 0, *, return_type: ArrayReturn = "numpy") -> Any:
        """One channel as TZYX."""
        return _convert_return(self.read_region(image_id, c=channel)[:, 0], return_type)

    def read_plane(
        self, image_id: str | None = None, *, t: int = 0, c: int = 0, z: int = 0, return_type: ArrayReturn = "numpy"
    ) -> Any:
        """One (t, c, z) plane as YX."""
        return _convert_return(self.read_region(image_id, t=t, c=c, z=z)[0, 0, 0], return_type)

    def read_chunk_rows(
        self,
        image_id: str | None = None,
        *,
        y: slice | None = None,
        x: slice | None = None,
        t: int | slice | None = None,
        c: int | slice | None = None,
        z: int | slice | None = None,
    ) -> pa.Table:
        """The raw chunk rows (coordinates, dtype, pixel_bytes) overlapping a region; nothing is decoded."""
        key = self._resolve(image_id)
        sizes = self.image_metadata(key)
        region = {a: _slice(v, int(sizes[f"size_{a}"])) for a, v in zip("tczyx", (t, c, z, y, x))}
        source = (
            self.index
            if self.index is not None
            else pq.read_table(
                self.path / "chunks.parquet",
                columns=["image_id", "chunk_id", *[f"{p}{a}" for p in ("", "shape_") for a in "tczyx"]],
            )
        )
        mask = pc.equal(source["image_id"], key)
        for a, r in region.items():
            stop = pc.add(source[a], source[f"shape_{a}"])
            mask = pc.and_(mask, pc.and_(pc.less(source[a], r.stop), pc.greater(stop, r.start)))
        wanted = source.filter(mask)
        ids = pa.array(wanted["chunk_id"].to_pylist(), pa.int64())
        files = (
            wanted["fragment_path"].to_pylist()
            if "fragment_path" in wanted.column_names
            else ["chunks.parquet"] * wanted.num_rows
        )
        parts = []
        for frag in sorted(set(files)):
            with reading(self.path, frag, "reading chunk rows"):
                pf = pq.ParquetFile(self.path / frag)
                groups = (
                    sorted({int(g) for g, f in zip(wanted["row_group_id"].to_pylist(), files) if f == frag})
                    if "row_group_id" in wanted.column_names
                    else list(range(pf.num_row_groups))
                )
                table = pf.read_row_groups(groups)
            parts.append(table.filter(pc.is_in(table["chunk_id"], value_set=ids)))
        return pa.concat_tables(parts) if parts else pq.read_schema(self.path / "chunks.parquet").empty_table()


@dataclass
class OMEArrowPixels:
    """Pixel reads of a dataset by image id (``dataset.pixels``)."""

    dataset: OMEArrowDataset

    def read_image(self, image_id: str) -> np.ndarray:
        """A whole image as TCZYX."""
        return self.dataset.read_image(image_id)  # type: ignore[no-any-return]

    def read_many(self, image_ids: Iterable[str]) -> list[np.ndarray]:
        """Several whole images."""
        return self.dataset.read_many(image_ids)

    def read_channel(self, image_id: str, channel: int) -> np.ndarray:
        """One channel as TZYX."""
        return self.dataset.read_channel(image_id, channel)  # type: ignore[no-any-return]

    def read_plane(self, image_id: str, *, t: int = 0, c: int = 0, z: int = 0) -> np.ndarray:
        """One plane as YX."""
        return self.dataset.read_plane(image_id, t=t, c=c, z=z)  # type: ignore[no-any-return]

    def read_region(self, image_id: str, **region: Any) -> np.ndarray:
        """A TCZYX region."""
        return self.dataset.read_region(image_id, **region)  # type: ignore[no-any-return]

    def read_chunk_rows(self, image_id: str, **region: Any) -> pa.Table:
        """Raw chunk rows of a region."""
        return self.dataset.read_chunk_rows(image_id, **region)
