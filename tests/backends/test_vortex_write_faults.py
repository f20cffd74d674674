"""The Vortex writer's source failing, or its process killed, after it handed Vortex its first rows.

The writer reads the image a block of planes at a time while Vortex pulls the rows (in the main thread, through
Arrow's C stream); the file is written beside the target and renamed into place last (``atomic_path``). A failure
of the source must reach the caller as itself (not as Vortex's RuntimeError around it), and whatever happens the
previous file stays byte for byte, and the next write leaves nothing beside it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

from source_faults import (
    counting_reads,
    damaged_source,
    killed_convert,
    scanned_source,
    small_budgets,
    temporaries,
)

from ome_arrow_core import OMEArrow
from ome_arrow_core.cli import main
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.safe_write.ownership import parse_temp

OLD = np.arange(3 * 20 * 24, dtype=np.uint16).reshape(3, 20, 24)


def test_a_source_damaged_mid_write_raises_its_error_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chunk of the source that fails its checksum after 16 blocks went to Vortex raises the read's
    DamagedFileError naming the source's file (it came out as Vortex's RuntimeError, 'C Data interface error');
    the previous file stays byte for byte and nothing is left beside it, from export() and the command line."""
    src, _ = damaged_source(tmp_path)
    small_budgets(monkeypatch, "vortex")
    target = tmp_path / "out.vortex"
    OMEArrow(OLD).export("vortex", target)
    before = target.read_bytes()
    reads = counting_reads(monkeypatch)
    with pytest.raises(DamagedFileError, match="source.ome.parquet/chunks.parquet") as err:
        OMEArrow.scan(src).export("vortex", target)
    assert "C Data interface" not in str(err.value)
    assert len(reads) == 17  # time point 0's 16 blocks handed to Vortex, the 17th refused
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])
    assert main(["convert", str(src), "-o", str(target), "--force", "-q"]) == 1
    line = capsys.readouterr().err
    assert "source.ome.parquet/chunks.parquet" in line and "C Data interface" not in line, line
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])


def test_an_interrupt_while_vortex_pulls_rows_is_a_keyboard_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C raised in a read of the source, after Vortex took the first blocks, reaches the caller as
    KeyboardInterrupt (it came out as Vortex's RuntimeError, which an ``except Exception`` swallows); the old
    file stays byte for byte and nothing is left beside it."""
    from ome_arrow_core.typed_chunk import DatasetSource

    src, _ = scanned_source(tmp_path)
    small_budgets(monkeypatch, "vortex")
    target = tmp_path / "out.vortex"
    OMEArrow(OLD).export("vortex", target)
    before = target.read_bytes()
    read, calls = DatasetSource.read, []

    def interrupted(self: DatasetSource, *args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DatasetSource, "read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        OMEArrow.scan(src).export("vortex", target)
    assert len(calls) == 3 and target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_conversion_killed_after_its_first_block_leaves_the_old_file(tmp_path: Path, sig: signal.Signals) -> None:
    """``convert --force`` killed once its first block of rows went to Vortex: the previous file stays byte for
    byte. SIGKILL leaves the dead writer's temporary (ours, named for the target), which the next write removes;
    Ctrl-C is reported as an interruption (exit 130) and leaves nothing. (Vortex may pull the rows in another
    thread while the main one waits inside it; Python's handler then runs only once Vortex returns, before the
    rename: the write is wasted, the old file kept.)"""
    src, arr = scanned_source(tmp_path)
    target = tmp_path / "out.vortex"
    OMEArrow(OLD).export("vortex", target)
    before = target.read_bytes()
    pid, done = killed_convert("vortex", sig, [str(src), "-o", str(target), "--force", "-q"])
    assert target.read_bytes() == before
    left = temporaries(tmp_path, target)
    if sig == signal.SIGKILL:
        assert done.returncode == -9, done.stderr[-2000:]
        assert [parse_temp(p.name).pid for p in left] == [pid]  # type: ignore[union-attr]
    else:
        assert done.returncode == 130 and "error: interrupted" in done.stderr, done.stderr[-2000:]
        assert left == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name, *(p.name for p in left)])
    OMEArrow.scan(src).export("vortex", target)  # the next write removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])
    np.testing.assert_array_equal(OMEArrow.scan(target).to_numpy(), arr)
