"""``check_chunk_store`` and ``ChunkStoreTests``: a chunk store against the core's contract.

The core writes a dataset's chunk rows with ``store.write(batches, CHUNKS_SCHEMA, path,
compression=None | name)`` and reads them back with ``store.open(path).take(rows)``: the
``pixel_bytes`` (large_binary) of strictly increasing row numbers, in that order.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..handlers import ChunkFile, ChunkStore
from ..registry import Registry, default_registry
from .conformance import ConformanceError, expect, expect_our_error

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ChunkStoreTests", "check_chunk_store"]

#: Rows per written file: several record batches, so a store must not keep only the last one.
ROWS = 37


def chunk_rows(seed: int = 0) -> list[bytes]:
    """``pixel_bytes`` of test rows: 1 byte to 64 KiB, zero runs, random bytes, repeats."""
    rng = np.random.default_rng(seed)
    sizes = [1, 2, 3, 8, 65536, 4096, *rng.integers(1, 3000, ROWS - 6).tolist()]
    rows = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    rows[3] = bytes(8)  # all zero
    rows[7] = rows[6]  # a repeat (dictionary or dedup encodings)
    return rows


def _batches(rows: list[bytes], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    for start in range(0, len(rows), 10):
        part = rows[start : start + 10]
        n = len(part)
        cols: dict[str, pa.Array] = {}
        for field in schema:
            if field.name == "pixel_bytes":
                cols[field.name] = pa.array(part, pa.large_binary())
            elif field.name == "image_id":
                cols[field.name] = pa.array(["img-0"] * n, field.type)
            elif field.name == "dtype":
                cols[field.name] = pa.array(["uint8"] * n, field.type)
            elif field.name == "chunk_id":
                cols[field.name] = pa.array(range(start, start + n), field.type)
            elif field.name == "shape_x":
                cols[field.name] = pa.array([len(b) for b in part], field.type)
            else:  # coordinates 0, other shapes 1
                cols[field.name] = pa.array([int(field.name.startswith("shape"))] * n, field.type)
        yield pa.RecordBatch.from_pydict(cols, schema=schema)


def _taken(file: ChunkFile, rows: np.ndarray, check: str) -> list[bytes]:
    import pyarrow as pa

    col = file.take(np.asarray(rows, dtype=np.int64))
    expect(isinstance(col, (pa.ChunkedArray, pa.Array)), check, f"take returned {type(col).__name__}")
    expect(col.type == pa.large_binary(), check, f"take returned {col.type}, expected large_binary")
    expect(len(col) == len(rows), check, f"take({len(rows)} rows) returned {len(col)} values")
    return [bytes(v) for v in col.to_pylist()]


def write_file(store: ChunkStore, path: Path, compression: str, seed: int = 0) -> list[bytes]:
    """Write the test rows to ``path`` with ``store`` as the core does; return them."""
    from ..typed_chunk import CHUNKS_SCHEMA

    expect(store.write is not None, "ChunkStore.write", "is None; the core cannot write this store's files")
    assert store.write is not None
    rows = chunk_rows(seed)
    store.write(
        _batches(rows, CHUNKS_SCHEMA), CHUNKS_SCHEMA, path, compression=None if compression == "none" else compression
    )
    expect(path.is_file(), "ChunkStore.write", f"left no file at {path}")
    return rows


def _open(store: ChunkStore, path: Path) -> ChunkFile:
    expect(store.open is not None, "ChunkStore.open", "is None; the core cannot read this store's files")
    assert store.open is not None
    return store.open(path)


def check_descriptor(store: ChunkStore) -> None:
    """Suffix, compressions and availability as the core resolves them."""
    expect(
        store.suffix.startswith(".") and len(store.suffix) > 1,
        "ChunkStore.suffix",
        f"{store.suffix!r}; expected a file suffix such as '.vortex'",
    )
    expect(store.suffix.lower() != ".parquet", "ChunkStore.suffix", "'.parquet' is the built-in chunk format's")
    expect(
        store.accepts("chunks" + store.suffix) and store.accepts("chunks-0003" + store.suffix.upper()),
        "ChunkStore.accepts",
        f"refuses its own suffix {store.suffix!r}",
    )
    expect(
        bool(store.compressions) and all(isinstance(c, str) for c in store.compressions),
        "ChunkStore.compressions",
        f"{store.compressions!r}; expected names, the default first",
    )
    expect(
        store.max_file_bytes is None or store.max_file_bytes > 0,
        "ChunkStore.max_file_bytes",
        f"{store.max_file_bytes!r}; expected None or a positive byte count",
    )
    store.ensure_available()


def check_round_trip(store: ChunkStore, directory: Path) -> None:
    """Every compression: write, reopen, read all rows, any subset and single rows, bytes exact."""
    for compression in store.compressions:
        path = directory / f"chunks-{compression}{store.suffix}"
        rows = write_file(store, path, compression)
        file = _open(store, path)
        expect(int(file.num_rows) == len(rows), "ChunkFile.num_rows", f"{file.num_rows}, expected {len(rows)}")
        check = f"take with compression={compression!r}"
        expect(_taken(file, np.arange(len(rows)), check + " (all rows)") == rows, check, "all rows differ from written")
        expect(_taken(file, np.array([], np.int64), check + " (no rows)") == [], check, "no rows gave values")
        rng = np.random.default_rng(1)
        for picks in (
            [len(rows) - 1],
            [0],
            [0, len(rows) - 1],
            [4, 5, 6, 7],
            *(sorted(rng.choice(len(rows), int(rng.integers(1, len(rows))), replace=False).tolist()) for _ in range(5)),
        ):
            got = _taken(file, np.array(picks), f"{check} of rows {picks}")
            expect(got == [rows[i] for i in picks], f"{check} of rows {picks}", "bytes differ from those written")
        again = _open(store, path)
        expect(
            _taken(again, np.array([1, 2]), "take after reopening") == rows[1:3], "take after reopening", "bytes differ"
        )


def check_threads(store: ChunkStore, directory: Path) -> None:
    """One opened file read from 8 threads at once returns each thread's rows exactly."""
    path = directory / f"chunks-threads{store.suffix}"
    rows = write_file(store, path, store.compressions[0], seed=2)
    file = _open(store, path)
    picks = [np.arange(i % 5, len(rows), 1 + i % 4) for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: _taken(file, p, "take from 8 threads"), picks))
    for p, values in zip(picks, got):
        expect(values == [rows[i] for i in p], "take from 8 threads", f"rows {p.tolist()} differ")


def check_damaged_files(store: ChunkStore, directory: Path) -> None:
    """Empty, truncated and garbage files raise our errors (SchemaError, DamagedFileError...)."""
    good = directory / f"chunks-good{store.suffix}"
    write_file(store, good, store.compressions[0], seed=3)
    data = good.read_bytes()
    rng = np.random.default_rng(4)
    cases = {
        "an empty file": b"",
        "a truncated file (first half)": data[: len(data) // 2],
        "a truncated file (last byte cut)": data[:-1],
        "a file of garbage bytes": rng.integers(0, 256, len(data), dtype=np.uint8).tobytes(),
    }
    for i, (what, content) in enumerate(cases.items()):
        bad = directory / f"chunks-bad{i}{store.suffix}"
        bad.write_bytes(content)
        expect_our_error(f"{store.name}: reading {what}", partial(_read_every_row, store, bad))


def _read_every_row(store: ChunkStore, path: Path) -> None:
    file = _open(store, path)
    file.take(np.arange(int(file.num_rows), dtype=np.int64))


def check_chunk_store(store: ChunkStore, directory: str | Path) -> list[str]:
    """Run every chunk-store check on ``store``, writing files under ``directory`` (e.g. pytest's
    ``tmp_path``). Raises ConformanceError naming the first broken check; returns the checks run."""
    root = Path(directory) / f"chunk-store-kit-{store.name}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    check_descriptor(store)
    check_round_trip(store, root)
    check_threads(store, root)
    check_damaged_files(store, root)
    return ["descriptor", "round trip", "threads", "damaged files"]


class ChunkStoreTests:
    """Chunk-store conformance as pytest tests: subclass as ``TestMyStore`` and set ``store_name``
    (or override :meth:`store`). Loads no test framework: the tests use pytest's ``tmp_path``."""

    #: The chunk store's name (``ChunkStore.name``) in :meth:`registry`.
    store_name: str = ""

    def registry(self) -> Registry:
        """The registry the store comes from (default: the shared one)."""
        return default_registry()

    def store(self) -> ChunkStore:
        """The chunk store under test."""
        if not self.store_name:
            raise ConformanceError(f"{type(self).__name__}: set store_name or override store()")
        return self.registry().resolve_chunk_store(self.store_name)

    def test_descriptor(self) -> None:
        check_descriptor(self.store())

    def test_round_trip(self, tmp_path: Path) -> None:
        check_round_trip(self.store(), tmp_path)

    def test_threads(self, tmp_path: Path) -> None:
        check_threads(self.store(), tmp_path)

    def test_damaged_files(self, tmp_path: Path) -> None:
        check_damaged_files(self.store(), tmp_path)
