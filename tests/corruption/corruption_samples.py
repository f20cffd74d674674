"""The samples the corruption harness mutates: one small file of every storage kind we write (corruption_harness.py).

Each kind is built three times: ``main`` (the file mutated), ``twin`` (the same shapes, other pixels) and
``other`` (other shapes and dtype), the partners ``swap_twin`` and ``swap_other`` take members from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from corruption_cases import KINDS, SUFFIX, member_path
from corruption_vortex import VORTEX_RECORD_KINDS, build_vortex_record

from ome_arrow_core.safe_write import SENTINEL

__all__ = ["build", "build_samples"]


def _arrays(seed: int, n: int, dtype: str = "uint16", shape: tuple[int, ...] = (2, 2, 16, 16)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 60000, shape).astype(dtype) for _ in range(n)]


def build(kind: str, out: Path, variant: str = "main") -> list[np.ndarray]:
    """Write sample ``kind`` at ``out``; returns its images' pixels (TZCYX), in order.

    ``variant`` "twin" has the same shapes and other pixels; "other" other shapes and dtype.
    """
    import tifffile

    from ome_arrow_core import OMEArrow, write_dataset

    seed = {"main": 1, "twin": 2, "other": 3}[variant]
    shape, dtype = ((2, 2, 16, 16), "uint16") if variant != "other" else ((3, 1, 12, 20), "int32")
    arrs = _arrays(seed, 3, dtype, shape)
    opts: dict[str, Any] = {"dim_order": "ZCYX", "chunk_shape": (8, 8), "progress": False}
    if kind == "ds_lz4":
        write_dataset(arrs, out, rows_per_group=2, metadata={"well": ["A01", "B02", "C03"]}, **opts)
    elif kind == "ds_none":
        write_dataset(arrs, out, compression=None, **opts)
    elif kind == "ds_planes":  # ZCYX images of 1 plane x 2 channels of 96x96: a chunk (18 KiB page) per plane
        if variant != "other":
            arrs = _arrays(seed, 3, dtype, (1, 2, 96, 96))
        write_dataset(arrs, out, compression=None, dim_order="ZCYX", chunk_shape=arrs[0].shape[-2:], progress=False)
    elif kind == "ds_records":  # images of one chunk each (default chunks): read by their records and locators
        arrs = _arrays(seed, 3, dtype, (1, 1, *shape[2:]))
        meta = {"well": ["A01", "B02", "C03"]}
        write_dataset(arrs, out, compression=None, metadata=meta, dim_order="ZCYX", progress=False)
    elif kind == "ds_groups":  # one images row group an image: the row-group lists in a sidecar
        arrs = _arrays(seed, 40, dtype, (1, 1, *shape[2:]))
        opts = {"images_per_group": 1, "rows_per_group": 2, "dim_order": "ZCYX", "progress": False}
        write_dataset(arrs, out, compression=None, **opts)
    elif kind == "ds_vortex":
        write_dataset(arrs, out, chunk_format="vortex", **opts)
    elif kind in VORTEX_RECORD_KINDS:
        arrs = build_vortex_record(kind, out, arrs)
    elif kind == "ds_append":
        write_dataset(arrs[:2], out, **opts)
        write_dataset(arrs[2:], out, mode="append", **opts)
    else:
        arrs = arrs[:1]
        img = OMEArrow(arrs[0], "ZCYX")
        if kind == "record":
            img.export("parquet", out, layout="record")
        elif kind == "vortex":
            img.export("vortex", out, chunk_shape=(8, 8))
        elif kind == "tiff_ours":
            img.export("ome-tiff", out)
        elif kind == "tiff_tifffile":
            tifffile.imwrite(out, arrs[0], ome=True, metadata={"axes": "ZCYX"}, tile=(16, 16), compression="zlib")
        elif kind == "zarr_ours":
            img.export("ome-zarr", out, chunk_shape=(1, 8, 8))
        elif kind == "zarr_v2raw":
            img.export("ome-zarr", out, chunk_shape=(1, 8, 8), version="0.4", compression=None)
        elif kind == "zarr_foreign":
            _zarr_python(out, arrs[0])
        elif kind == "zarr_omexml":  # an OME-TIFF's image: its OME-XML goes along (bioformats2raw layout)
            tif = out.with_name(f"{out.name}.source.ome.tif")
            ome: dict[str, Any] = {"axes": "ZCYX", "PhysicalSizeX": 0.5, "Channel": {"Name": ["a", "b"]}}
            tifffile.imwrite(tif, arrs[0], ome=True, metadata=ome, photometric="minisblack")
            OMEArrow(tif).export("ome-zarr", out, chunk_shape=(1, 8, 8))
            tif.unlink()
        else:
            raise ValueError(kind)
    return [a.reshape(1, *a.shape) for a in arrs]


def _zarr_python(out: Path, zcyx: np.ndarray) -> None:
    """An OME-NGFF 0.5 image written with zarr-python's own API (its default zstd codec, no checksums)."""
    import zarr

    g = zarr.open_group(out, mode="w", zarr_format=3)
    data = zcyx.transpose(1, 0, 2, 3)  # CZYX
    g.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 1, 8, 8))[...] = data
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space"} for a in "zyx"]
    g.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * 4}]}],
            }
        ],
    }


def build_samples(where: Path) -> dict[tuple[str, str], tuple[Path, list[np.ndarray]]]:
    """Every kind's sample (and twin and other for datasets) under ``where``."""
    out = {}
    for kind in KINDS:
        # (the record Vortex kinds have no members to swap: their main sample alone)
        for variant in ("main",) if kind in VORTEX_RECORD_KINDS else ("main", "twin", "other"):
            d = where / variant
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"{kind}{SUFFIX[kind]}"
            out[(kind, variant)] = (path, build(kind, path, variant))
        members = KINDS[kind]
        root = out[(kind, "main")][0]
        if kind.startswith("zarr_"):
            assert all((root / m).is_file() for m in members), f"{kind} lacks one of {members}"
        elif members != ("",):
            # the dataset's note for plain Parquet readers holds no data of ours: not a member we damage
            have = tuple(sorted(p.name for p in root.iterdir() if p.name != SENTINEL))
            named = tuple(sorted(member_path(root, m).name for m in members))
            assert have == named, f"{kind} has members {have}, the harness expects {members}"
    return out
