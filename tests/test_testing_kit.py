"""The conformance kit (ome_arrow_core.testing) passes a correct toy reader and chunk store, and fails
each deliberately broken one with the check it breaks. Toys live in a private Registry(autoload=False)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ome_arrow_core import ChunkStore, ImageMeta, Reader, Registry, Selection, hookimpl
from ome_arrow_core.plugin_api import DamagedFileError, reading
from ome_arrow_core.testing import (
    ChunkStoreTests,
    ConformanceError,
    check_chunk_store,
    check_reader,
    selections_for,
)

PIXELS = np.random.default_rng(0).integers(0, 2**16, (2, 3, 4, 19, 23), dtype=np.uint16)


class ToySource:
    """``.toyimg``: an ``.npy`` file; a correct pixel source that each broken toy changes in one way."""

    def __init__(self, path: Path) -> None:
        with reading(path, None, "opening"):
            self.data = np.load(path, mmap_mode="r", allow_pickle=False)
        if self.data.ndim != 5:
            raise DamagedFileError(f"{path}: {self.data.ndim} axes, expected TZCYX")
        self.meta = ImageMeta(sizes=dict(zip("TZCYX", self.data.shape)), dtype=self.data.dtype)

    def read(self, sel: Selection) -> np.ndarray:
        return np.array(sel.apply(self.data))

    def describe(self) -> dict[str, Any]:
        return {"storage": "toyimg", "bytes": int(self.data.nbytes)}


class SortsGathers(ToySource):
    def read(self, sel: Selection) -> np.ndarray:  # gathers channels in storage order, not the asked one
        c = sel.c if isinstance(sel.c, range) else tuple(sorted(sel.c))
        return super().read(Selection(sel.t, sel.z, c, sel.y, sel.x))


class DropsRepeats(ToySource):
    def read(self, sel: Selection) -> np.ndarray:
        c = sel.c if isinstance(sel.c, range) else tuple(dict.fromkeys(sel.c))
        return super().read(Selection(sel.t, sel.z, c, sel.y, sel.x))


class ShortAtTheEdge(ToySource):
    def read(self, sel: Selection) -> np.ndarray:  # loses the last column of the image
        out = super().read(sel)
        if sel.x.stop == self.meta.sizes["X"]:
            out[..., -1] = 0
        return out


class WidensDType(ToySource):
    def read(self, sel: Selection) -> np.ndarray:
        return super().read(sel).astype(np.int64)


class SharesItsCache(ToySource):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.cache = np.array(self.data)

    def read(self, sel: Selection) -> np.ndarray:  # hands out its writeable cache itself
        return self.cache if sel == Selection.full(self.meta.sizes) else sel.apply(self.cache)


class ReusesScratch(ToySource):
    def read(self, sel: Selection) -> np.ndarray:  # a read-only view of a buffer the next read overwrites
        out = super().read(sel)
        if not hasattr(self, "scratch") or self.scratch.size < out.size:
            self.scratch = np.empty(max(out.size, self.data.size), out.dtype)
        view = self.scratch[: out.size].reshape(out.shape)
        view[...] = out
        ro = view.view()
        ro.flags.writeable = False
        return ro


class LeaksForeignErrors(ToySource):
    def __init__(self, path: Path) -> None:
        self.data = np.load(path, mmap_mode="r", allow_pickle=False)  # ValueError / EOFError escape as they are
        self.meta = ImageMeta(sizes=dict(zip("TZCYX", self.data.shape)), dtype=self.data.dtype)


class LiesAboutT(ToySource):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.meta = ImageMeta(sizes={**self.meta.sizes, "T": 1}, dtype=self.meta.dtype)


class DescribesNumpy(ToySource):
    def describe(self) -> dict[str, Any]:
        return {"storage": "toyimg", "bytes": self.data.nbytes * np.int64(1)}


def toy_registry(source: Callable[[Path], Any]) -> Registry:
    class ToyPlugin:
        @hookimpl
        def ome_arrow_readers(self) -> Sequence[Reader]:
            return [Reader(name="toyimg", suffixes=(".toyimg",), open=lambda p, **_: source(Path(p)))]

    reg = Registry(autoload=False)
    reg.register(ToyPlugin(), name="toy")
    return reg


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "cells.toyimg"
    with open(path, "wb") as fh:
        np.save(fh, PIXELS)
    return path


def test_a_correct_reader_passes_every_check(toy_file: Path) -> None:
    done = check_reader(toy_file, PIXELS, registry=toy_registry(ToySource))
    assert done == ["metadata", "selections", "public views", "repeat", "threads", "aliasing", "bad files"]
    check_reader(toy_file, registry=toy_registry(ToySource))  # no expected pixels: consistency only


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (SortsGathers, r"read\(gathered channels, reversed"),
        (DropsRepeats, r"read\(gathered channel, repeated.*shape"),
        (ShortAtTheEdge, r"read\(full.*pixels differ, first at TZCYX index \(0, 0, 0, 0, 22\)"),
        (WidensDType, r"read\(full.*dtype int64, expected uint16"),
        (SharesItsCache, r"a read after writing into an earlier writeable output"),
        (ReusesScratch, r"an earlier output after later reads"),
        (LeaksForeignErrors, r"an empty file: raised builtins\.(EOFError|ValueError).*expected SchemaError"),
        (LiesAboutT, r"meta\.sizes: shape \(1, 3, 4, 19, 23\), expected \(2, 3, 4, 19, 23\)"),
        (DescribesNumpy, r"describe\(\): not JSON-able"),
    ],
)
def test_a_broken_reader_fails_the_check_it_breaks(toy_file: Path, broken: Callable[[Path], Any], check: str) -> None:
    with pytest.raises(ConformanceError, match=check):
        check_reader(toy_file, PIXELS, registry=toy_registry(broken))


def test_wrong_expected_pixels_fail(toy_file: Path) -> None:
    wrong = PIXELS.copy()
    wrong[1, 2, 3, 18, 22] += 1
    with pytest.raises(ConformanceError, match=r"pixels differ, first at TZCYX index \(1, 2, 3, 18, 22\)"):
        check_reader(toy_file, wrong, registry=toy_registry(ToySource))


def test_selections_cover_every_kind() -> None:
    sels = dict(selections_for({"T": 2, "Z": 3, "C": 4, "Y": 19, "X": 23}))
    assert not sels["gathered channels, reversed"].is_strided
    assert sels["gathered channel, repeated"].c == (3, 0, 3)
    assert sels["crop at the far edges"].y.stop == 19 and sels["crop at the far edges"].x.stop == 23
    assert sels["strided t, z, c"].c == range(0, 4, 2)
    assert len(sels) == 16
    one = dict(selections_for({"T": 1, "Z": 1, "C": 1, "Y": 1, "X": 1}))  # a single pixel works too
    assert all(s.shape == (1, 1, 1, 1, 1) for n, s in one.items() if "repeated" not in n)


# -- chunk stores ---------------------------------------------------------------------------------


def write_ipc(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path, *, compression: str | None = None
) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as out:
        for b in batches:
            out.write_batch(b)


class IpcChunkFile:
    def __init__(self, path: Path) -> None:
        with reading(path, None, "opening the chunks file"):
            self.table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        self.num_rows = self.table.num_rows

    def take(self, rows: np.ndarray) -> pa.ChunkedArray:
        return self.table.column("pixel_bytes").take(pa.array(rows, pa.int64()))


class KeepsLastBatch(IpcChunkFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.table = self.table.slice(30)
        self.num_rows = self.table.num_rows


class ReturnsBinary(IpcChunkFile):
    def take(self, rows: np.ndarray) -> pa.ChunkedArray:
        return super().take(rows).cast(pa.binary())


class OffByOne(IpcChunkFile):
    def take(self, rows: np.ndarray) -> pa.ChunkedArray:
        return super().take(np.minimum(np.asarray(rows) + 1, self.num_rows - 1))


class RaisesArrowErrors(IpcChunkFile):
    def __init__(self, path: Path) -> None:
        self.table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        self.num_rows = self.table.num_rows


def ipc_store(file: Callable[[Path], Any] = IpcChunkFile, **fields: Any) -> ChunkStore:
    return ChunkStore(
        **{
            "name": "ipc",
            "suffix": ".arrowchunks",
            "compressions": ("none", "zstd"),
            "write": write_ipc,
            "open": file,
            **fields,
        }
    )


def test_a_correct_chunk_store_passes(tmp_path: Path) -> None:
    assert check_chunk_store(ipc_store(), tmp_path) == ["descriptor", "round trip", "threads", "damaged files"]


@pytest.mark.parametrize(
    ("store", "check"),
    [
        (ipc_store(KeepsLastBatch), r"ChunkFile\.num_rows: 7, expected 37"),
        (ipc_store(ReturnsBinary), r"take returned binary, expected large_binary"),
        (ipc_store(OffByOne), r"bytes differ|rows differ"),
        (ipc_store(RaisesArrowErrors), r"reading an empty file: raised pyarrow\.lib\.ArrowInvalid"),
        (ipc_store(suffix="arrowchunks"), r"ChunkStore\.suffix"),
        (ipc_store(suffix=".parquet"), r"built-in chunk format"),
        (ipc_store(compressions=()), r"ChunkStore\.compressions"),
        (ipc_store(write=None), r"ChunkStore\.write: is None"),
    ],
)
def test_a_broken_chunk_store_fails_the_check_it_breaks(tmp_path: Path, store: ChunkStore, check: str) -> None:
    with pytest.raises(ConformanceError, match=check):
        check_chunk_store(store, tmp_path)


class IpcPlugin:
    @hookimpl
    def ome_arrow_chunk_stores(self) -> Sequence[ChunkStore]:
        return [ipc_store()]


class TestIpcChunkStore(ChunkStoreTests):
    """The base class, as a store's test suite uses it: with the store's own registry."""

    store_name = "ipc"

    def registry(self) -> Registry:
        reg = Registry(autoload=False)
        reg.register(IpcPlugin(), name="ipc")
        return reg


def test_importing_the_kit_loads_no_test_framework_or_backend() -> None:
    code = (
        "import sys, json, ome_arrow_core.testing; print(json.dumps([m for m in ('pytest', 'hypothesis', "
        "'pyarrow.parquet', 'vortex', 'tifffile', 'zarr', 'torch') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
