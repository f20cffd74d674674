"""Checks a forked process's reads passed are shared with the processes forked after it (:mod:`.ledger`), for the
same version of the files only: a later fork skips them and still reads the file's pixels; a changed file (a lie
planted, a chunk file touched) is checked again, and a lie is refused."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_digests import without_table_digests

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk.ledger import Ledger, ledger_for
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.page_reads import PageFragment

pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")  # JAX, if imported

SHAPE = (2, 96, 96)  # pages large enough to be audited by their heads alone


def _plate(root: Path, n: int = 12) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(0).integers(0, 65535, (n, *SHAPE), dtype=np.uint16)
    return write_dataset(list(arrs), root, dim_order="CYX", progress=False), arrs


def _forked(fn: Callable[[], Any]) -> Any:
    """``fn()`` run in a forked child: its result, or the exception it raised (returned, not raised)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def run() -> None:
        try:
            queue.put(fn())
        except Exception as exc:
            queue.put(exc)

    proc = ctx.Process(target=run)
    proc.start()
    got = queue.get(timeout=120)
    proc.join(timeout=60)
    return got


@pytest.fixture
def audits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the audits of chunk row groups (by heads, or by a one-pass read) of the process it is read in."""
    calls: list[int] = []
    read, heads = PageFragment.read, PageFragment.heads

    def counted_read(self: PageFragment, groups: Any, audit: bool = False) -> pa.Table:
        calls.extend([1] * (len(groups) if audit else 0))
        return read(self, groups, audit)

    def counted_heads(self: PageFragment, groups: Any) -> pa.Table:
        calls.extend([1] * len(groups))
        return heads(self, groups)

    monkeypatch.setattr(PageFragment, "read", counted_read)
    monkeypatch.setattr(PageFragment, "heads", counted_heads)
    return calls


def _read(ds: OMEArrowDataset, calls: list[int]) -> tuple[bytes, int]:
    calls.clear()
    got = b"".join(np.asarray(ds.read(range(i, min(len(ds), i + 5)))).tobytes() for i in range(0, len(ds), 5))
    return got, len(calls)


def test_a_later_fork_skips_the_checks_an_earlier_one_passed(tmp_path: Path, audits: list[int]) -> None:
    clear_cache()
    path, arrs = _plate(tmp_path / "p")
    ds = OMEArrowDataset.scan(path)
    ds.open_files()  # before forking, as the torch datasets do
    ledger = open_dataset(path).ledger
    assert ledger is not None and not ledger.checked(range(len(ds))).any()
    first, audited = _forked(lambda: _read(ds, audits))
    assert first == arrs.tobytes() and audited > 0
    assert ledger.checked(range(len(ds))).all()  # marked by the child, seen here
    again, audited = _forked(lambda: _read(ds, audits))
    assert again == arrs.tobytes() and audited == 0


def test_a_changed_chunk_file_is_audited_again(tmp_path: Path, audits: list[int]) -> None:
    clear_cache()
    path, arrs = _plate(tmp_path / "p")
    ds = OMEArrowDataset.scan(path)
    ds.open_files()
    assert _forked(lambda: _read(ds, audits))[1] > 0
    st = os.stat(path / "chunks.parquet")
    os.utime(path / "chunks.parquet", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # another version
    got, audited = _forked(lambda: _read(ds, audits))
    assert got == arrs.tobytes() and audited > 0


def test_a_lie_planted_after_the_checks_passed_is_refused(tmp_path: Path, audits: list[int]) -> None:
    clear_cache()
    path, _ = _plate(tmp_path / "p", n=4)
    ds = OMEArrowDataset.scan(path)
    ds.open_files()
    assert _forked(lambda: _read(ds, audits))[1] > 0
    table = pq.read_table(path / "index.parquet")
    values = table.column("c").to_pylist()
    values[2], values[3] = values[3], values[2]  # image 1's channels swapped: they cover it, their rows disagree
    at = table.schema.get_field_index("c")
    pq.write_table(table.set_column(at, "c", pa.array(values, table.schema.field("c").type)), path / "index.parquet")
    without_table_digests(path)
    got = _forked(lambda: _read(ds, audits))
    assert isinstance(got, DamagedFileError) and "lies at" in str(got)


def test_a_ledger_is_the_same_only_for_the_same_versions_of_the_chunk_files(tmp_path: Path) -> None:
    (tmp_path / "a.parquet").write_bytes(b"x")
    key = ("root", 1, 2, True)
    one = ledger_for(key, str(tmp_path), ["a.parquet"], 3, 5)
    assert ledger_for(key, str(tmp_path), ["a.parquet"], 3, 5) is one
    (tmp_path / "a.parquet").write_bytes(b"yy")
    assert ledger_for(key, str(tmp_path), ["a.parquet"], 3, 5) is not one
    assert ledger_for((*key[:-1], False), str(tmp_path), ["a.parquet"], 3, 5) is not one


def test_a_ledger_marks_only_what_it_holds() -> None:
    ledger = Ledger(3, 4)
    ledger.mark_checked([0, 2])
    assert ledger.checked([0, 1, 2]).tolist() == [True, False, True]
    assert not ledger.checked([3]).any() and not ledger.checked([-1]).any()
    ledger.mark_checked([5])  # out of range: not marked, nothing else either
    assert ledger.checked([0, 1, 2]).tolist() == [True, False, True]
    assert not ledger.audited(np.array([0, 1]))
    ledger.mark_audited(np.array([0, 1, 3]))
    assert ledger.audited(np.array([0, 1])) and ledger.audited(np.array([3]))
    assert not ledger.audited(np.array([2])) and not ledger.audited(np.array([4]))
    assert not ledger.audited(np.array([], dtype=np.int64))


def test_a_touched_chunk_file_of_an_append_is_audited_again(tmp_path: Path, audits: list[int]) -> None:
    clear_cache()
    path, _ = _plate(tmp_path / "p", n=6)
    more = np.random.default_rng(1).integers(0, 65535, (6, *SHAPE), dtype=np.uint16)
    write_dataset(list(more), path, dim_order="CYX", progress=False, mode="append")
    ds = OMEArrowDataset.scan(path).select(range(6, 12))  # the appended images only
    ds.open_files()
    got, audited = _forked(lambda: _read(ds, audits))
    assert got == more.tobytes() and audited > 0
    assert _forked(lambda: _read(ds, audits)) == (more.tobytes(), 0)
    names = open_dataset(path).fragment_names
    appended = [n for n in names if n != "chunks.parquet"]
    assert appended  # the append wrote a chunk file of its own, which no table's version stamps
    st = os.stat(path / appended[0])
    os.utime(path / appended[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    got, audited = _forked(lambda: _read(ds, audits))
    assert got == more.tobytes() and audited > 0
