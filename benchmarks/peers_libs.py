"""Adapters for compare_peers.py: one way per library to write the image and to read a TCZYX selection.

Every reader returns a numpy array of the selection, so each result can be checked against numpy's slice of
the source. Peers are optional: ``available()`` says which import.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ome_arrow_core import OMEArrow

Index = tuple[Any, ...]  # a TCZYX index of ints and slices
Reader = Callable[[Index], np.ndarray]
CONFIGS: list[tuple[int, str]] = [(c, k) for c in (256, 512) for k in ("raw", "zstd", "blosc-lz4")]


def available(name: str) -> bool:
    """Whether ``name`` imports (without importing it)."""
    return importlib.util.find_spec(name) is not None


def camera_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """12-bit camera-like uint16 pixels: offset + shot noise (Gaussian approximation) on smooth blobs + read noise."""
    rng = np.random.default_rng(seed)
    *lead, ny, nx = shape
    yy, xx = (np.arange(n, dtype=np.float32) / np.float32(max(ny, nx)) for n in (ny, nx))
    out = np.empty(shape, np.uint16)
    for k in np.ndindex(*lead):
        signal = np.full((ny, nx), 150.0, np.float32)
        for _ in range(6):
            cy, cx, r = rng.random(3).astype(np.float32)
            width = np.float32(0.02 + 0.05 * r)
            signal += np.float32(rng.uniform(500, 2500)) * np.outer(
                np.exp(-((yy - cy) ** 2) / width), np.exp(-((xx - cx) ** 2) / width)
            )
        noise = rng.standard_normal((ny, nx), dtype=np.float32)
        noise *= np.sqrt(signal + np.float32(9.0))  # shot noise sqrt(signal) and read noise 3 e-, in quadrature
        signal += noise + np.float32(100.0)
        out[k] = np.clip(signal, 0, 4095)
    return out


# -- ours -------------------------------------------------------------------------------------------------
def ours_read(img: OMEArrow, idx: Index) -> np.ndarray:
    """A TCZYX index (t, c ints; z int or slice; y, x slices) through tensor_view."""
    t, c, z, ys, xs = idx
    if (
        isinstance(ys, slice)
        and ys == slice(None)
        and xs == slice(None)
        and all(isinstance(v, slice) and v == slice(None) for v in (t, c, z))
    ):
        whole: np.ndarray = img.to_numpy(layout="TCZYX")  # named: the benchmark indexes TCZYX
        return whole
    roi = None
    if not (ys == slice(None) and xs == slice(None)):
        roi = (xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
    layout = "YX" if isinstance(z, int) else "ZYX"
    return img.tensor_view(t=t, c=c, z=z, roi=roi, layout=layout).to_numpy()


def ours_tiles(img: OMEArrow, planes: list[tuple[int, int, int]], tile: int) -> Iterator[np.ndarray]:
    """256x256 (``tile``) tiles of every plane through iter_dlpack(prefetch=2), consumed with from_dlpack."""
    for t, c, z in planes:
        view = img.tensor_view(t=t, c=c, z=z, layout="YX")
        for cap in view.iter_dlpack(tile_size=(tile, tile), prefetch=2):
            yield np.from_dlpack(cap)


# -- raw pyarrow on our chunk file ------------------------------------------------------------------------
class RawParquet:
    """Reads our dataset's chunks with ``ParquetFile.read_row_groups`` and places them with numpy slicing."""

    def __init__(self, root: Path) -> None:
        import pyarrow.parquet as pq

        idx = pq.read_table(root / "index.parquet")
        self.cols = {
            n: idx.column(n).to_numpy()
            for n in ("t", "c", "z", "y", "x", "shape_y", "shape_x", "row_group_id", "row_index_in_group")
        }
        assert set(idx.column("fragment_path").to_pylist()) == {"chunks.parquet"}, "one chunk file expected"
        self.file = pq.ParquetFile(root / "chunks.parquet")
        self.dtype = np.dtype(self.file.read_row_group(0, columns=["dtype"]).column(0)[0].as_py())

    def read(self, idx: Index, shape: tuple[int, ...]) -> np.ndarray:
        ts, cs, zs, ys, xs = (
            range(v, v + 1) if isinstance(v, int) else range(*v.indices(n)) for v, n in zip(idx, shape)
        )
        k = self.cols
        hit = np.flatnonzero(
            (k["t"] >= ts.start)
            & (k["t"] < ts.stop)
            & (k["c"] >= cs.start)
            & (k["c"] < cs.stop)
            & (k["z"] >= zs.start)
            & (k["z"] < zs.stop)
            & (k["y"] < ys.stop)
            & (k["y"] + k["shape_y"] > ys.start)
            & (k["x"] < xs.stop)
            & (k["x"] + k["shape_x"] > xs.start)
        )
        groups = sorted(set(int(g) for g in k["row_group_id"][hit]))
        table = self.file.read_row_groups(groups, columns=["pixel_bytes"])
        first = np.cumsum([0] + [self.file.metadata.row_group(g).num_rows for g in groups])
        start = {g: int(first[i]) for i, g in enumerate(groups)}
        pixels = table.column(0)
        out = np.empty((len(ts), len(cs), len(zs), len(ys), len(xs)), self.dtype)
        for r in hit:
            row = start[int(k["row_group_id"][r])] + int(k["row_index_in_group"][r])
            h, w, y0, x0 = (int(k[n][r]) for n in ("shape_y", "shape_x", "y", "x"))
            chunk = np.frombuffer(pixels[row].as_buffer(), self.dtype).reshape(h, w)
            sy0, sy1 = max(ys.start, y0), min(ys.stop, y0 + h)
            sx0, sx1 = max(xs.start, x0), min(xs.stop, x0 + w)
            out[
                int(k["t"][r]) - ts.start,
                int(k["c"][r]) - cs.start,
                int(k["z"][r]) - zs.start,
                sy0 - ys.start : sy1 - ys.start,
                sx0 - xs.start : sx1 - xs.start,
            ] = chunk[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
        return out[tuple(0 if isinstance(v, int) else slice(None) for v in idx)]


# -- tensorstore and zarr-python 3 (same zarr v3 stores) ----------------------------------------------------
def _ts_codecs(codec: str) -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if codec == "zstd":
        base.append({"name": "zstd", "configuration": {"level": 3, "checksum": False}})
    elif codec == "blosc-lz4":
        base.append(
            {
                "name": "blosc",
                "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 2, "blocksize": 0},
            }
        )
    return base


def ts_write(arr: np.ndarray, path: Path, chunk: int, codec: str) -> None:
    """Create a zarr v3 array with tensorstore (chunks 1x1x1xchunkxchunk) and write ``arr``."""
    import tensorstore as ts

    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(arr.shape),
            "data_type": str(arr.dtype),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1] * (arr.ndim - 2) + [chunk, chunk]}},
            "codecs": _ts_codecs(codec),
        },
    }
    store = ts.open(spec, create=True, delete_existing=True).result()
    store.write(arr).result()


def ts_open(path: Path) -> Any:
    import tensorstore as ts

    return ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}, read=True).result()


def ts_reader(handle: Any) -> Reader:
    return lambda idx: handle[idx].read().result()


def zarr_write(arr: np.ndarray, path: Path, chunk: int, codec: str) -> None:
    """Create a zarr v3 array with zarr-python (same chunks and codecs as ts_write) and write ``arr``."""
    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    shutil.rmtree(path, ignore_errors=True)
    compressors: Any = {
        "raw": None,
        "zstd": ZstdCodec(level=3),
        "blosc-lz4": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=2),
    }[codec]
    a = zarr.create_array(
        store=str(path),
        shape=arr.shape,
        dtype=arr.dtype,
        compressors=compressors,
        chunks=(1,) * (arr.ndim - 2) + (chunk, chunk),
        overwrite=True,
    )
    a[...] = arr


def zarr_open(path: Path) -> Any:
    import zarr

    return zarr.open_array(str(path), mode="r")


def zarr_reader(handle: Any) -> Reader:
    return lambda idx: handle[idx]


def peer_tiles(read: Reader, planes: list[tuple[int, int, int]], ny: int, nx: int, tile: int) -> Iterator[np.ndarray]:
    """Every ``tile`` x ``tile`` tile of every plane, one read each."""
    for t, c, z in planes:
        for y in range(0, ny, tile):
            for x in range(0, nx, tile):
                yield read((t, c, z, slice(y, y + tile), slice(x, x + tile)))


# -- tifffile ------------------------------------------------------------------------------------------------
def tiff_write(arr: np.ndarray, path: Path) -> None:
    """Uncompressed, contiguous OME-TIFF (so tifffile can memory-map it)."""
    import tifffile

    tifffile.imwrite(path, arr, ome=True, metadata={"axes": "TCZYX"}, photometric="minisblack")


def tiff_reader(path: Path, shape: tuple[int, ...]) -> Reader:
    """Slices of ``tifffile.memmap`` (axes of size 1 put back), copied into memory (a read, not a lazy view)."""
    import tifffile

    mm = tifffile.memmap(path, mode="r").reshape(shape)
    return lambda idx: np.array(mm[idx])
