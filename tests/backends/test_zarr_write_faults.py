"""The OME-Zarr writer killed at each step of export("ome-zarr"): the target is absent or complete, never partial.

The store is written into a temporary beside the target (group, chunks, chunk checksums, group
metadata) and renamed into place last; a kill (SIGKILL) before the rename leaves no store at the
target, one after leaves the complete store, and the next write removes what the dead one left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_zarr", reason="needs ome-arrow-zarr (pip install -e backends/zarr)")

from ome_arrow_core import OMEArrow
from ome_arrow_core.plugin_api import UnsafeOverwriteError
from ome_arrow_core.safe_write.ownership import parse_temp

CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import zarr
    import ome_arrow_core.safe_write.fsops as fsops
    import ome_arrow_zarr.integrity as integrity
    import ome_arrow_zarr.writer as writer
    from ome_arrow_core import OMEArrow

    target, point = sys.argv[1], sys.argv[2]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def after(fn):
        def run(*args, **kwargs):
            fn(*args, **kwargs)
            die()
        return run

    if point == "group":  # the group's zarr.json written, no array yet
        zarr.open_group = after(zarr.open_group)
    elif point == "chunks":  # the fifth chunk being stored
        digest, calls = integrity.digest, []
        def fifth(data):
            calls.append(1)
            if len(calls) == 5:
                die()
            return digest(data)
        integrity.digest = fifth
    elif point == "checksums":  # every chunk written, the checksums not
        integrity.checksum_attrs = die
    elif point == "metadata":  # the checksums written, the group's NGFF metadata not
        writer.ngff_attrs = die
    elif point == "rename":  # the store complete in its temporary, not renamed into place
        fsops.rename_noreplace = die
    elif point == "renamed":  # renamed into place, the writer not yet returned
        fsops.rename_noreplace = after(fsops.rename_noreplace)
    data = np.arange(3 * 2 * 32 * 32, dtype=np.uint16).reshape(3, 2, 32, 32)
    OMEArrow(data, "ZCYX").export("ome-zarr", target, chunk_shape=(1, 16, 16), levels=2)
""")
NEW = np.arange(3 * 2 * 32 * 32, dtype=np.uint16).reshape(1, 3, 2, 32, 32)  # TZCYX


@pytest.mark.parametrize("point", ["group", "chunks", "checksums", "metadata", "rename", "renamed"])
def test_a_killed_export_leaves_no_store_or_a_complete_one(tmp_path: Path, point: str) -> None:
    target = tmp_path / "x.ome.zarr"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), point], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    if point == "renamed":
        img = OMEArrow.scan(target)
        assert img.info()["chunk_checksums"]
        np.testing.assert_array_equal(img.to_numpy(layout="TZCYX"), NEW)
        assert OMEArrow(target, level=1).shape == (1, 2, 3, 16, 16)  # TCZYX
        import shutil

        shutil.rmtree(target)
    else:
        assert not target.exists()
        assert [p for p in tmp_path.iterdir() if p.name != target.name]  # the dead writer's temporary
    new = np.ones((2, 8, 8), np.uint8)
    OMEArrow(new).export("ome-zarr", target)  # the next write removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ome.zarr"]
    np.testing.assert_array_equal(OMEArrow(target).to_numpy()[0, 0], new)


def test_an_existing_store_is_left_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "x.ome.zarr"
    old = np.full((2, 8, 8), 7, np.uint8)
    OMEArrow(old).export("ome-zarr", target)
    files = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    with pytest.raises(UnsafeOverwriteError, match="x.ome.zarr exists"):
        OMEArrow(np.zeros((2, 8, 8), np.uint8)).export("ome-zarr", target)
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ome.zarr"]


def test_an_interrupt_after_the_chunks_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (in the main thread, as signals arrive) once the chunks are stored, before the checksums."""
    import ome_arrow_zarr.integrity as integrity

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(integrity, "checksum_attrs", interrupt)
    with pytest.raises(KeyboardInterrupt):
        OMEArrow(np.zeros((4, 32, 32), np.uint16)).export("ome-zarr", tmp_path / "x.ome.zarr", chunk_shape=(1, 16, 16))
    assert list(tmp_path.iterdir()) == []


def test_a_source_damaged_mid_write_raises_and_leaves_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The writer reads the source a slab at a time: a chunk of it that fails its checksum after 16 slabs were
    written raises the read's DamagedFileError naming the source's file, and nothing is left at or beside the
    target, from export() and from the command line."""
    from source_faults import counting_reads, damaged_source, small_budgets

    from ome_arrow_core.cli import main
    from ome_arrow_core.errors import DamagedFileError

    src, _ = damaged_source(tmp_path)
    small_budgets(monkeypatch, "ome-zarr")
    reads = counting_reads(monkeypatch)
    target = tmp_path / "x.ome.zarr"
    with pytest.raises(DamagedFileError, match="source.ome.parquet/chunks.parquet"):
        OMEArrow.scan(src).export("ome-zarr", target, chunk_shape=(1, 128, 128))
    assert len(reads) == 17  # time point 0's 16 slabs written, the 17th refused
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]
    assert main(["convert", str(src), "-o", str(target), "-q"]) == 1
    assert "source.ome.parquet/chunks.parquet" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_conversion_killed_after_its_first_slab_leaves_no_store(tmp_path: Path, sig: signal.Signals) -> None:
    """``convert`` killed once its first slab of chunks is stored: no store at the target; SIGKILL leaves the dead
    writer's temporary (ours, named for the target), which the next write removes; Ctrl-C leaves nothing."""
    from source_faults import killed_convert, reads_of, scanned_source, temporaries

    src, arr = scanned_source(tmp_path)
    target = tmp_path / "x.ome.zarr"
    pid, done = killed_convert("ome-zarr", sig, [str(src), "-o", str(target), "-q"])
    assert not target.exists()
    left = temporaries(tmp_path, target)
    if sig == signal.SIGKILL:
        assert done.returncode == -9, done.stderr[-2000:]
        assert [parse_temp(p.name).pid for p in left] == [pid]  # type: ignore[union-attr]
        assert any(p.is_file() for p in left[0].rglob("*"))  # chunks written before the kill
    else:
        assert done.returncode == 130 and "error: interrupted" in done.stderr, done.stderr[-2000:]
        assert reads_of(done) == 2  # stopped in the read it was in, not once the whole image was read
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, *(p.name for p in left)])
    OMEArrow.scan(src).export("ome-zarr", target)  # the next write removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])
    np.testing.assert_array_equal(OMEArrow.scan(target).to_numpy(), arr)
