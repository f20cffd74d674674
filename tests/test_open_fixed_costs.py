"""What a new handle's ``OMEArrow.scan(path)`` + first crop does on a dataset this process opened before: the fixed
costs cut in session 19 (one ``stat`` for ``exists`` and ``is_dir``, the reader ranking kept per readers tuple,
class-based ``reading``/``blaming``) answer as before, and every check still runs on the new handle."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import flip_byte

from ome_arrow_core import DTypeError, OMEArrow, OMEArrowError, Reader, Registry, SchemaError, hookimpl
from ome_arrow_core.boundary import blaming, path_mode, reading
from ome_arrow_core.errors import ChecksumError, DamagedFileError, StorageError
from ome_arrow_core.typed_chunk import MANIFEST, is_dataset_dir

CROP = {"t": 0, "c": 1, "z": 1, "roi": (64, 64, 64, 64), "layout": "YX"}


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (1, 2, 3, 192, 192), dtype=np.uint16)


def _crop(path: Path) -> np.ndarray:
    """compare_peers' case: a new handle and one crop."""
    return OMEArrow.scan(path).tensor_view(**CROP).to_numpy()  # type: ignore[arg-type]


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, np.ndarray]:
    arr = _image()
    path = tmp_path / "img.ome.parquet"
    OMEArrow(arr).export("parquet", path, chunk_shape=(1, 64, 64))
    OMEArrow.scan(path).to_numpy()  # opened and every chunk audited: what the handles below find
    return path, arr


# -- one stat for exists and is_dir ----------------------------------------------------------------------------------
def _paths(tmp_path: Path) -> Iterator[tuple[str, str]]:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    os.symlink(tmp_path / "dir", tmp_path / "to-dir")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    for name in ("dir", "file", "to-dir", "dangling", "loop", "missing", "file/child"):
        yield name, str(tmp_path / name)
    yield "nul", str(tmp_path / "a\0b")


def test_path_mode_answers_exists_and_is_dir_as_pathlib(tmp_path: Path) -> None:
    for name, p in _paths(tmp_path):
        mode = path_mode(p)
        assert (mode is not None) == Path(p).exists(), name
        assert (mode is not None and os.path.isdir(p)) == Path(p).is_dir(), name


def test_a_path_that_cannot_be_looked_up_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    from ome_arrow_core import OMEArrow
    from ome_arrow_core.errors import StorageError

    long = str(tmp_path / ("a" * 5000 + ".ome.parquet"))  # ENAMETOOLONG: pathlib raises it, it is not "missing"
    with pytest.raises(StorageError, match="File name too long") as err:
        OMEArrow.scan(long)
    assert err.value.errno == errno.ENAMETOOLONG and str(tmp_path) in str(err.value)
    assert isinstance(err.value.__cause__, OSError)


def _is_dataset_dir_before(path: Path) -> bool:
    """638d327's definition."""
    return path.is_dir() and (
        (path / MANIFEST).exists()
        or (path / "chunks.parquet").exists()
        or ((path / "images.parquet").exists() and (path / "index.parquet").exists())
    )


@pytest.mark.parametrize(
    "members",
    [
        (),
        (MANIFEST,),
        ("chunks.parquet",),
        ("images.parquet",),
        ("images.parquet", "index.parquet"),
        ("index.parquet",),
    ],
)
def test_is_dataset_dir_as_before(tmp_path: Path, members: tuple[str, ...]) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    for m in members:
        (root / m).write_bytes(b"")
    os.symlink(root, tmp_path / "link")
    (tmp_path / "file").write_bytes(b"")
    for p in (root, tmp_path / "link", tmp_path / "file", tmp_path / "missing", root / "chunks.parquet" / "x"):
        assert is_dataset_dir(p) == _is_dataset_dir_before(p), (p, members)


def test_a_missing_path_and_a_fifo_are_still_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        OMEArrow.scan(tmp_path / "missing.ome.parquet")
    os.mkfifo(tmp_path / "pipe.ome.parquet")
    with pytest.raises(StorageError, match="not a regular file"):
        OMEArrow.scan(tmp_path / "pipe.ome.parquet")


def test_a_scan_stats_fewer_files(dataset: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm scan + crop ``stat``s the path once for ``exists`` and ``is_dir`` (638d327: 14 calls, 7 of them
    pathlib's on the directory and its members; now 11 with the tiff and zarr backends' sniffs)."""
    path, arr = dataset
    _crop(path)
    calls: list[str] = []
    real = os.stat

    def counted(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        calls.append(os.fspath(p))
        return real(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counted)
    got = _crop(path)
    monkeypatch.undo()
    np.testing.assert_array_equal(got, arr[0, 1, 1, 64:128, 64:128])
    assert calls.count(str(path)) <= 4  # 638d327: 6 (exists, is_dir, two sniffs, is_dir, is_dataset_dir)
    assert len(calls) <= 11, calls
    for name in (MANIFEST, "images.parquet", "index.parquet", "chunks.parquet"):  # the stale-file stamp: every scan
        assert f"{path}{os.sep}{name}" in calls


# -- every check still runs on a new handle ------------------------------------------------------------------------
def _same_times(path: Path, before: dict[str, os.stat_result]) -> None:
    for name, st in before.items():
        os.utime(path / name, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_replaced_dataset_with_the_same_mtimes_is_read_anew(dataset: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """Every file swapped for another dataset's (new inodes; sizes as its writer made them, a few bytes apart), the
    mtimes set back: a new handle reads the new pixels. (Same inode, size and mtime: the flipped byte below.)"""
    path, arr = dataset
    np.testing.assert_array_equal(_crop(path), arr[0, 1, 1, 64:128, 64:128])
    before = {n: os.stat(path / n) for n in os.listdir(path)}
    other = arr ^ 1  # other pixels, the same statistics' widths: files of the same sizes
    OMEArrow(other).export("parquet", tmp_path / "other.ome.parquet", chunk_shape=(1, 64, 64))
    for n in os.listdir(path):  # the same names and (below) mtimes
        os.replace(tmp_path / "other.ome.parquet" / n, path / n)
    _same_times(path, before)
    np.testing.assert_array_equal(_crop(path), other[0, 1, 1, 64:128, 64:128])


def _chunk_offset(path: Path, arr: np.ndarray) -> int:
    """Where the crop's chunk's pixels lie in chunks.parquet (uncompressed by default: found by its bytes)."""
    at = (path / "chunks.parquet").read_bytes().find(arr[0, 1, 1, 64:128, 64:128].tobytes())
    assert at > 0
    return at


def test_a_byte_flipped_in_place_with_the_mtime_set_back_is_refused(dataset: tuple[Path, np.ndarray]) -> None:
    path, arr = dataset
    _crop(path)
    before = {"chunks.parquet": os.stat(path / "chunks.parquet")}
    flip_byte(path / "chunks.parquet", _chunk_offset(path, arr) + 100)
    _same_times(path, before)  # same inode, size and mtime: only the ctime tells
    with pytest.raises((ChecksumError, DamagedFileError)):
        _crop(path)


def test_a_truncated_chunks_file_is_refused(dataset: tuple[Path, np.ndarray]) -> None:
    path, arr = dataset
    _crop(path)
    at = _chunk_offset(path, arr)
    with open(path / "chunks.parquet", "r+b") as f:
        f.truncate(at + 10)
    with pytest.raises(OMEArrowError):
        _crop(path)


# -- reader resolution: overrides still answer; the ranking follows the registry -----------------------------------
class Picky(Reader):
    """Claims ``.pky`` by suffix but accepts only names starting with ``ok``."""

    def accepts(self, path: Path) -> bool:
        return path.name.startswith("ok")


class Claimer(Reader):
    """Claims every name containing ``mine`` (no suffix)."""

    def claims_suffix(self, path: Path) -> bool:
        return "mine" in path.name


class Plugin:
    def __init__(self, readers: Callable[[], Sequence[Reader]]) -> None:
        self.readers = readers

    @hookimpl
    def ome_arrow_readers(self) -> Sequence[Reader]:
        return self.readers()


def _plain(name: str, priority: int, suffixes: tuple[str, ...] = (), sniff: Any = None) -> Reader:
    return Reader(name=name, priority=priority, suffixes=suffixes, sniff=sniff)


def test_overridden_accepts_and_claims_are_asked() -> None:
    reg = Registry(autoload=False, builtins=False)
    reg.register(Plugin(lambda: [Picky(name="picky", priority=5, suffixes=(".pky",))]), name="picky")
    reg.register(Plugin(lambda: [Claimer(name="claimer", priority=5)]), name="claimer")
    reg.register(Plugin(lambda: [_plain("fallback", 0, sniff=lambda p: True)]), name="fallback")
    assert reg.resolve_reader("ok.pky").name == "picky"
    assert reg.resolve_reader("no.pky").name == "fallback"  # claimed by suffix, refused by its own accepts
    assert reg.resolve_reader("mine.x").name == "claimer"
    assert reg.resolve_reader("mine.x").name == "claimer"  # from the kept ranking: the same answer
    assert reg.resolve_reader("other.x").name == "fallback"


def test_the_ranking_follows_registrations() -> None:
    reg = Registry(autoload=False, builtins=False)
    reg.register(Plugin(lambda: [_plain("low", 0, (".abc",))]), name="low")
    assert reg.resolve_reader("x.abc").name == "low"
    reg.register(Plugin(lambda: [_plain("high", 9, (".abc",))]), name="high")
    assert reg.resolve_reader("x.abc").name == "high"
    reg.unregister("high")
    assert reg.resolve_reader("x.abc").name == "low"
    other = Registry(autoload=False, builtins=False)  # two registries asked in turn
    other.register(Plugin(lambda: [_plain("theirs", 0, (".abc",))]), name="theirs")
    assert [other.resolve_reader("x.abc").name, reg.resolve_reader("x.abc").name] == ["theirs", "low"]


def test_a_suffix_claim_is_case_blind_and_sniffs_run_in_priority_order() -> None:
    asked: list[str] = []

    def sniff(name: str, answer: bool) -> Callable[[Path], bool]:
        return lambda p: asked.append(name) or answer

    reg = Registry(autoload=False, builtins=False)
    reg.register(
        Plugin(lambda: [_plain("a", 9, sniff=sniff("a", False)), _plain("b", 9, sniff=sniff("b", False))]), name="ab"
    )
    reg.register(Plugin(lambda: [_plain("s", 0, sniff=sniff("s", True)), _plain("c", 0, (".cc",))]), name="sc")
    assert reg.resolve_reader("X.CC").name == "c" and asked == ["a", "b"]  # c's claim before s's sniff
    assert reg.resolve_reader("x.dd").name == "s" and asked == ["a", "b", "a", "b", "s"]


# -- reading() and blaming() as classes: what escapes is as before -----------------------------------------------------
def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (OSError(errno.EIO, "I/O error"), StorageError, "f.bin \\[m\\]"),
        (OSError("undecodable"), DamagedFileError, "f.bin \\[m\\]: testing failed"),
        (ValueError("bad bytes"), DamagedFileError, "the file is damaged"),
        (MemoryError(), DamagedFileError, "needed more memory"),
    ],
)
def test_reading_makes_foreign_errors_ours(exc: Exception, kind: type[Exception], text: str) -> None:
    with pytest.raises(kind, match=text) as info:
        with reading("f.bin", "m", "testing"):
            _raise(exc)
    assert info.value.__cause__ is exc


@pytest.mark.parametrize(
    ("exc", "kind"), [(OSError(errno.EIO, "I/O error"), StorageError), (MemoryError(), DamagedFileError)]
)
def test_a_failure_is_still_ours_when_its_classifier_cannot_load(
    exc: Exception, kind: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the store/network classifier loads with the first failure; an import that fails then (shutdown, no
    # memory, a broken install) must not replace the failure being reported
    monkeypatch.setitem(sys.modules, "ome_arrow_core.remote_errors", None)  # its import now raises ImportError
    with pytest.raises(kind, match="f.bin") as info:
        with reading("f.bin", "m", "testing"):
            _raise(exc)
    assert info.value.__cause__ is exc


class Unknown(Exception):
    pass


@pytest.mark.parametrize("exc", [SchemaError("ours"), Unknown("theirs"), KeyboardInterrupt()])
def test_reading_lets_ours_and_unknown_ones_through(exc: BaseException) -> None:
    with pytest.raises(type(exc)) as info:
        with reading("f.bin"):
            _raise(exc)
    assert info.value is exc
    with reading("f.bin"):
        pass  # nothing raised: nothing to do


def test_blaming_names_the_file() -> None:
    with pytest.raises(DamagedFileError, match=r"^f.bin \[m\]: no such column") as info:
        with blaming("f.bin", "m"):
            _raise(SchemaError("no such column"))
    assert type(info.value) is DamagedFileError and isinstance(info.value.__cause__, SchemaError)
    with pytest.raises(DTypeError, match=r"^f.bin: wrong dtype"):
        with blaming("f.bin"):
            _raise(DTypeError("wrong dtype"))
    named = SchemaError("f.bin says so")
    with pytest.raises(SchemaError) as kept:
        with blaming("f.bin"):
            _raise(named)
    assert kept.value is named
    with pytest.raises(ValueError, match="other"):
        with blaming("f.bin"):
            _raise(ValueError("other"))
