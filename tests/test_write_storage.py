"""Writes on a full or read-only file system, and several writers and readers at once.

Full and read-only disks are real: a 1 MiB tmpfs (``mount -t tmpfs -o size=1m``), remounted
read-only; these tests are skipped where mounting is refused (they need root).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import writes_support as ws

from ome_arrow_core import OMEArrow, OMEArrowError, cleanup_dataset
from ome_arrow_core.errors import StorageError


def _mount(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        done = _mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)])
    except FileNotFoundError:
        pytest.skip("no mount command here: full-disk and read-only tests need one (and root)")
    if done.returncode != 0:
        pytest.skip(f"mount refused ({done.stderr.strip()}): full-disk and read-only tests need root")
    try:
        yield mnt
    finally:
        _mount(["-o", "remount,rw", str(mnt)])
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            # something still holds a handle on it (freed later): detach it now rather than leave it mounted
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _big(seed: int) -> list[np.ndarray]:
    """Incompressible images of 1.5 MiB in all: more than the tmpfs holds."""
    return ws.images(seed, 6, (2, 256, 256))


def _filled(mnt: Path) -> tuple[Path, Path, dict[str, bytes]]:
    ds, record = mnt / "ds.ome.parquet", mnt / "img.parquet"
    ws.write(ds, 1)
    OMEArrow(ws.images(1, 1)[0], dim_order="CYX").export("parquet", record, layout="record")
    (mnt / ws.KEEP).write_text(ws.KEEP_TEXT)
    return ds, record, ws.tree(mnt)


def _attempts(ds: Path, record: Path) -> dict[str, object]:
    from ome_arrow_core import write_dataset

    def overwrite() -> None:
        write_dataset(_big(2), ds, mode="overwrite", dim_order="CYX", progress=False)

    def append() -> None:
        write_dataset(_big(2), ds, mode="append", dim_order="CYX", progress=False)

    def create() -> None:
        write_dataset(_big(2), ds.with_name("new.ome.parquet"), dim_order="CYX", progress=False)

    def export() -> None:
        OMEArrow(np.concatenate(_big(2)), dim_order="CYX").export("parquet", record, layout="record", compression=None)

    def export_to(how: str, name: str) -> None:
        OMEArrow(np.concatenate(_big(2)), dim_order="CYX").export(how, ds.with_name(name))

    return {
        "overwrite": overwrite,
        "append": append,
        "create": create,
        "export-record": export,
        "export-vortex": lambda: export_to("vortex", "img.vortex"),
        "export-tiff": lambda: export_to("ome-tiff", "img.ome.tiff"),
    }


def _needs(*modules: str) -> pytest.MarkDecorator:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (pip install -e backends/...)")


HOWS = [
    "overwrite",
    "append",
    "create",
    "export-record",
    pytest.param("export-vortex", marks=_needs("vortex", "ome_arrow_vortex")),
    pytest.param("export-tiff", marks=_needs("tifffile", "ome_arrow_tiff")),
]


@pytest.mark.parametrize("how", HOWS)
def test_a_full_disk_leaves_the_old_data_and_no_litter(tmpfs: Path, how: str) -> None:
    ds, record, before = _filled(tmpfs)
    with pytest.raises(StorageError, match="No space left on device") as err:
        _attempts(ds, record)[how]()  # type: ignore[operator]
    assert str(tmpfs) in str(err.value)
    assert ws.tree(tmpfs) == before
    assert ws.same(ws.read(ds), ws.images(1))


@pytest.mark.parametrize("how", HOWS)
def test_a_read_only_disk_changes_nothing(tmpfs: Path, how: str) -> None:
    ds, record, before = _filled(tmpfs)
    assert _mount(["-o", "remount,ro", str(tmpfs)]).returncode == 0
    with pytest.raises(StorageError, match="Read-only file system") as err:
        _attempts(ds, record)[how]()  # type: ignore[operator]
    assert str(tmpfs) in str(err.value)
    assert ws.tree(tmpfs) == before
    assert cleanup_dataset(ds).removed == []
    assert ws.same(ws.read(ds), ws.images(1))


_WRITER = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
import writes_support as ws
for i in range(int(sys.argv[3])):
    ws.write(Path(sys.argv[1]), int(sys.argv[2]) + (i % 2) * 100, mode=sys.argv[5], n=3)
"""


def _writer(target: Path, seed: int, times: int, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target), str(seed), str(times), str(Path(ws.__file__).parent), mode]
    )


def _key(a: np.ndarray) -> bytes:
    return a.tobytes()


def test_two_processes_appending_at_once_keep_every_image(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ws.write(ds, 1)
    procs = [_writer(ds, seed, 2, "append") for seed in (10, 20)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    want = ws.images(1) + ws.images(10) + ws.images(110) + ws.images(20) + ws.images(120)
    got = ws.read(ds)
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    assert got[:3] == got[:3] and all(np.array_equal(g, w) for g, w in zip(got[:3], ws.images(1)))
    assert os.listdir(tmp_path) == ["ds"]


def test_two_processes_overwriting_at_once_leave_one_whole(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ws.write(ds, 1)
    procs = [_writer(ds, seed, 3, "overwrite") for seed in (10, 20)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    got = ws.read(ds)
    assert ws.same(got, ws.images(10)) or ws.same(got, ws.images(20))
    assert os.listdir(tmp_path) == ["ds"]
    assert sorted(os.listdir(ds)) == [
        "THIS-IS-AN-OME-ARROW-DATASET.txt",
        "_ome_arrow_dataset.json",
        "chunks.parquet",
        "images.parquet",
        "index.parquet",
    ]


def test_a_reader_during_overwrites_gets_old_or_new_pixels(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ws.write(ds, 1)
    writer = _writer(ds, 1, 12, "overwrite")  # seeds 1 and 101 in turn, same shapes
    versions = [ws.images(1), ws.images(101)]
    reads = 0
    while writer.poll() is None or reads == 0:
        try:
            got = ws.read(ds)
        except OMEArrowError:
            continue  # ours, naming the file: allowed
        reads += 1
        assert len(got) == 3
        for i, image in enumerate(got):
            assert any(np.array_equal(image, v[i]) for v in versions), f"read {reads}: image {i} is neither"
    assert writer.wait() == 0 and reads > 0


def _free(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("mode", ["overwrite", "append"])
def test_a_disk_that_fills_while_the_tables_are_written_leaves_the_old_data(tmpfs: Path, mode: str) -> None:
    """The chunks fit, the index table (written through one buffered stream, flushed at its end) does not."""
    import traceback

    from ome_arrow_core import write_dataset

    tiny = ws.images(3, 2000, (1, 4, 4))  # 2,000 one-chunk images: the tables are large beside the chunks
    probe = tmpfs.parent / "probe.ome.parquet"
    write_dataset(tiny, probe, dim_order="CYX", progress=False)
    page = os.statvfs(tmpfs).f_frsize
    need = -(-(probe / "chunks.parquet").stat().st_size // page) * page + 4 * page  # chunks and small files
    assert (probe / "index.parquet").stat().st_size > 8 * page  # so the index cannot fit in what is left
    ds, _, _ = _filled(tmpfs)
    (tmpfs / "filler").write_bytes(b"\0" * (_free(tmpfs) - need))
    before = ws.tree(tmpfs)
    with pytest.raises(StorageError, match="No space left on device") as err:
        write_dataset(tiny, ds, mode=mode, dim_order="CYX", progress=False)
    steps = [f.name for e in (err.value, err.value.__cause__) if e for f in traceback.extract_tb(e.__traceback__)]
    assert "write_tables" in steps, " ".join(steps)  # it failed writing a table, after the chunks
    assert ws.tree(tmpfs) == before
    assert ws.same(ws.read(ds), ws.images(1))
