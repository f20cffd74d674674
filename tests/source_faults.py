"""A conversion of a scanned OME-Arrow dataset that goes wrong after its writer has written its first slab: the source
damaged further on, or the converting process killed by a signal (tests/backends/test_*_write_faults.py,
tests/test_dataset_writes.py).

The source is :func:`conversion_memory.scanned_source`'s 2 x 2 x 16 x 256 x 256 uint16 image (one-plane chunks) and
each writer's read and write budgets are made small (:data:`SMALL`), so it is read and written in many slabs (one Z,
or one plane), each written before the next is read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conversion_memory import scanned_source

from ome_arrow_core.safe_write.ownership import parse_temp

#: Per output format, the (module, name, value) budgets that make the scanned image go in many slabs.
SMALL: dict[str, list[tuple[str, str, int]]] = {
    "ome-zarr": [("ome_arrow_core.plane_blocks", "BLOCK_BYTES", 1 << 18)],  # one Z (2 planes of 128 KiB) a slab
    "vortex": [
        ("ome_arrow_core.plane_blocks", "BLOCK_BYTES", 1 << 18),  # one Z a block...
        ("ome_arrow_vortex.writer", "BATCH_BYTES", 1 << 17),  # ...handed to Vortex one plane's rows a batch
    ],
    "parquet": [
        ("ome_arrow_core.typed_chunk.packing", "BAND_BYTES", 1 << 18),  # a band of planes (here one plane)...
        ("ome_arrow_core.typed_chunk.packing", "BATCH_BYTES", 1 << 17),  # ...written before the next is read
    ],
}

_CHILD = textwrap.dedent("""
    import atexit, importlib, pathlib, signal, sys, time
    from ome_arrow_core.cli import main
    from ome_arrow_core.typed_chunk import DatasetSource

    # Ctrl-C as a terminal delivers it: a pytest started in the background (`... &` in a script) hands its
    # children SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    marker, budgets, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    for item in filter(None, budgets.split(",")):
        module, name, value = item.split(":")
        setattr(importlib.import_module(module), name, int(value))
    read, calls = DatasetSource.read, []
    atexit.register(lambda: print(f"reads={len(calls)}", file=sys.stderr))  # not after SIGKILL

    def held(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first slab written, the second not read yet: wait here until the signal is sent
            pathlib.Path(marker).touch()
            sent = pathlib.Path(marker + ".sent")
            for _ in range(1200):  # short sleeps: the handler runs here even if another thread took the signal
                if sent.exists():  # read on: this thread may not be the main one (Vortex's), where it is handled
                    break
                time.sleep(0.1)
        return read(self, *args, **kwargs)

    DatasetSource.read = held
    sys.exit(main(argv))
""")


def small_budgets(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """Make ``fmt``'s writer go in many slabs, in this process."""
    for module, name, value in SMALL[fmt]:
        monkeypatch.setattr(f"{module}.{name}", value)


def damaged_source(tmp: Path) -> tuple[Path, np.ndarray]:
    """The scanned source with one byte flipped in the middle of its chunks file (chunk 32 of 64: the first plane of
    time point 1, read after all of time point 0 was written), and its pixels."""
    src, arr = scanned_source(tmp)
    chunks = src / "chunks.parquet"
    data = bytearray(chunks.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunks.write_bytes(bytes(data))
    return src, arr


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each read of a scanned dataset (the real read runs)."""
    from ome_arrow_core.typed_chunk import DatasetSource

    read, calls = DatasetSource.read, []

    def counted(self: DatasetSource, *args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DatasetSource, "read", counted)
    return calls


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file of ``path`` (a file or a directory tree) by its path relative to ``path``'s parent, with its bytes."""
    if not path.exists():
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): p.read_bytes() for p in files}


def killed_convert(fmt: str, sig: signal.Signals, argv: list[str]) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Run ``ome-arrow-core convert`` with ``argv`` in a child (``fmt``'s budgets small) and send it ``sig`` once it
    has written its first slab (it waits there until the signal is sent, then reads on: Python runs a SIGINT
    handler in the main thread only, which may be inside Vortex while another thread reads); the child's process
    id, and its exit status and output."""
    budgets = ",".join(f"{m}:{n}:{v}" for m, n, v in SMALL[fmt])
    with tempfile.TemporaryDirectory() as scratch:
        marker = Path(scratch) / "marker"
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(marker), budgets, "convert", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        reached = marker.exists()
        if reached:
            os.kill(proc.pid, sig)
            Path(f"{marker}.sent").touch()
        else:
            proc.kill()
        out, err = proc.communicate(timeout=120)
    assert reached, f"the child never reached its second read: {err[-2000:]}"
    return proc.pid, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def reads_of(done: subprocess.CompletedProcess[str]) -> int:
    """How many reads of the source a :func:`killed_convert` child made before it exited (Ctrl-C handled in the
    main thread: 2, the one it was stopped in; Vortex may read on in its own thread until it returns)."""
    return int(done.stderr.rsplit("reads=", 1)[1].split()[0])


def temporaries(parent: Path, target: Path) -> list[Path]:
    """The entries of ``parent`` that are our temporaries of writes to ``target``."""
    return [p for p in parent.iterdir() if (tn := parse_temp(p.name)) is not None and tn.name == target.name]
