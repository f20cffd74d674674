"""The manifest step reads each just-written images and index table back once: its digest and its row-group
segments come from that one read of the file (the bytes on disk), and measuring those bytes gives exactly what
measuring the file gives, damaged or not."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash

from ome_arrow_core import OMEArrow, write_dataset
from ome_arrow_core.typed_chunk import table_sums
from ome_arrow_core.typed_chunk.group_measure import measure, record_groups
from ome_arrow_core.typed_chunk.table_sums import file_digest, record

_OPENS: Counter[str] = Counter()
_WATCH: list[bool] = [False]


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _WATCH[0] and event == "open" and isinstance(args[0], (str, bytes, Path)):
        name = Path(str(args[0])).name
        if name.startswith(("images", "index")) and name.endswith(".parquet"):
            _OPENS[name] += 1


sys.addaudithook(_hook)  # audit hooks cannot be removed: it counts only while a test watches


@pytest.fixture
def opens() -> Iterator[Counter[str]]:
    """Python-level opens (``open``, ``os.open``) of images and index tables, by file name, during the test."""
    _OPENS.clear()
    _WATCH[0] = True
    try:
        yield _OPENS
    finally:
        _WATCH[0] = False


def _images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4000, size=(1, 1, 1, 48, 40)).astype(np.uint16) for _ in range(n)]


def test_a_write_reads_each_new_table_back_once(tmp_path: Path, opens: Counter[str]) -> None:
    """One read each for the digest and the segments (the writer opened them twice more before)."""
    OMEArrow(np.arange(2 * 3 * 64 * 96, dtype=np.float32).reshape(1, 2, 3, 64, 96)).export("parquet", tmp_path / "a")
    assert opens == {"images.parquet": 1, "index.parquet": 1}
    opens.clear()
    write_dataset(_images(6, 1), tmp_path / "p", metadata={"well": list("AABBCC")}, mode="overwrite")
    assert opens == {"images.parquet": 1, "index.parquet": 1}
    opens.clear()
    write_dataset(_images(3, 2), tmp_path / "p", metadata={"well": list("DDE")}, mode="append")
    # the append's new tables once; the base tables once (checked against their digests when the append opens the
    # dataset; the manifest step keeps their recorded digests and segments)
    assert opens == {"images.parquet": 1, "index.parquet": 1, "images-00001.parquet": 1, "index-00001.parquet": 1}


def _tables(tmp_path: Path) -> list[Path]:
    OMEArrow(np.arange(3 * 200 * 300, dtype=np.int16).reshape(1, 1, 3, 200, 300)).export("parquet", tmp_path / "a")
    write_dataset(_images(40, 3), tmp_path / "p", metadata={"well": [f"W{i % 9}" for i in range(40)]})
    return sorted([*(tmp_path / "a").glob("i*.parquet"), *(tmp_path / "p").glob("i*.parquet")])


def _damaged(data: bytes) -> Iterator[bytes]:
    """Cuts, flipped bytes (in the row groups, the footer, its length and magic) and appended bytes."""
    n = len(data)
    for cut in (n - 1, n - 8, n - 9, n // 2, 12, 4):
        yield data[:cut]
    for at in (5, n // 3, n - 200, n - 60, n - 20, n - 9, n - 8, n - 5, n - 1):
        for x in (0x01, 0x80, 0xFF):
            yield data[:at] + bytes([data[at] ^ x]) + data[at + 1 :]
    yield data + b"\0" * 7
    yield data + data[-8:]


def _outcome(file: Path, digest: str, data: bytes | None) -> Any:
    try:
        return measure(file, digest, data)
    except Exception as e:  # the same error type on both paths is what is checked
        return type(e)


def test_bytes_are_measured_as_the_file_damaged_or_not(tmp_path: Path) -> None:
    tables = _tables(tmp_path)
    assert len(tables) == 4
    for table in tables:
        good = table.read_bytes()
        digest = file_digest(table)
        whole = measure(table, digest)
        assert whole is not None and measure(table, digest, good) == whole
        variants = 0
        for data in _damaged(good):
            table.write_bytes(data)
            d = file_digest(table)
            assert d == f"{xxhash.xxh3_64_intdigest(data):016x}"
            assert _outcome(table, d, data) == _outcome(table, d, None), (table.name, len(data))
            variants += 1
        assert variants == 35
        table.write_bytes(good)


def test_record_holds_the_bytes_its_digest_is_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tables(tmp_path)[0].parent
    names = ["images.parquet", "index.parquet", "images-00001.parquet"]  # the last one absent: left out
    held: dict[str, bytes] = {}
    sums = record(root, names, {}, held)
    assert sums == record(root, names) == {n: [file_digest(root / n)] for n in names[:2]}
    assert held == {n: (root / n).read_bytes() for n in names[:2]}
    assert record_groups(root, sums, {}, held) == record_groups(root, sums)
    # kept digests are not read
    held.clear()
    assert record(root, names, {"index.parquet": ["0" * 16]}, held)["index.parquet"] == ["0" * 16]
    assert list(held) == ["images.parquet"]
    # a table over HOLD is hashed from the file, in blocks, and not held
    monkeypatch.setattr(table_sums, "HOLD", 100)
    held.clear()
    assert record(root, names, {}, held) == sums and held == {}


@pytest.mark.parametrize("size", [0, 1, (64 << 10) - 1, 64 << 10, (64 << 10) + 1, (5 << 20) + 3])
def test_file_digest_of_every_size(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == f"{xxhash.xxh3_64_intdigest(data):016x}"
