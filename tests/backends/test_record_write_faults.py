"""The record writers (ome-arrow 0.1.0's one-record layout) killed at each step: SIGKILL and SIGINT.

``export("vortex", layout="record")`` and ``ome-arrow-core convert IN -o OUT --record`` (to .parquet and .vortex)
replace an existing record file. A child process makes the write and signals itself just before its k-th step: the
writing of the table (Parquet: before ``pq.write_table``; Vortex: after vortex wrote it, before its seal) and each
file-system step (``os.replace`` of the commit, the removal of the temporary...). Before the commit the previous file
stays byte for byte; from the commit on it is the new one, whole (SIGINT at the commit is held back until the
rename is done: the new one). Whatever the step, the next write leaves nothing beside the target.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

from ome_arrow_core import OMEArrow

OLD = np.arange(2 * 3 * 20 * 24, dtype=np.uint16).reshape(2, 3, 20, 24)  # ZCYX
NEW = (OLD[::-1] * 7 + 5).astype(np.uint16)

#: The writer run in a child: it counts its steps (printed on stderr with kill_at 0) and raises ``sig`` just
#: before step ``kill_at``.
_CHILD = r"""
import os, shutil, signal, sys
import numpy as np
import pyarrow.parquet as pq
from ome_arrow_core.safe_write import fsops
import ome_arrow_vortex.records as records

op, target, src, kill_at, sig = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background pytest ignores it)
count = 0

def wrap(mod, name):
    real = getattr(mod, name)
    def step(*a, **k):
        global count
        count += 1
        if kill_at == 0:
            print("STEP", count, name, file=sys.stderr)
        if count == kill_at:
            signal.raise_signal(getattr(signal, sig))  # to this thread (os.kill may land on another)
        return real(*a, **k)
    setattr(mod, name, step)

for name in ("rename", "replace", "unlink", "rmdir"):
    wrap(os, name)
wrap(shutil, "rmtree")
wrap(fsops, "renameat2")
wrap(pq, "write_table")
wrap(records, "seal")
if op == "export-vortex":
    from ome_arrow_core import OMEArrow
    OMEArrow(np.load(src), "ZCYX").export("vortex", target, layout="record")
else:
    from ome_arrow_core.cli import main
    code = main(["convert", src, "-o", target, "--record", "--force", "-q"])
    if code:
        sys.exit(code)
print(count)
"""

OPS = {"export-vortex": ".vortex", "convert-parquet": ".parquet", "convert-vortex": ".vortex"}


def _child(op: str, target: Path, src: Path, kill_at: int, sig: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, op, str(target), str(src), str(kill_at), sig],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pixels(path: Path) -> np.ndarray:
    return OMEArrow.scan(path).to_numpy(layout="TZCYX")


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_a_record_write_killed_at_each_step_leaves_the_old_file_or_the_new(tmp_path: Path, op: str, sig: str) -> None:
    src = tmp_path / "new.npy"
    np.save(src, NEW)
    counting, old = tmp_path / "count", tmp_path / "old"
    counting.mkdir()
    old.mkdir()
    OMEArrow(OLD, "ZCYX").export("vortex", old / "img.vortex", layout="record")
    OMEArrow(OLD, "ZCYX").export(OPS[op].lstrip("."), counting / f"img{OPS[op]}", layout="record")
    done = _child(op, counting / f"img{OPS[op]}", src, 0, sig)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [line.split()[2] for line in done.stderr.splitlines() if line.startswith("STEP ")]
    want_old, want_new = _pixels(tmp_path / "old" / "img.vortex"), _pixels(counting / f"img{OPS[op]}")
    commit = steps.index("replace") + 1  # the rename of the new file onto the target
    assert steps[0] in ("write_table", "seal") and commit > 1, steps
    for k in range(1, len(steps) + 1):
        parent = tmp_path / f"k{k}"
        parent.mkdir()
        target = parent / f"img{OPS[op]}"
        OMEArrow(OLD, "ZCYX").export(OPS[op].lstrip("."), target, layout="record")
        before = target.read_bytes()
        done = _child(op, target, src, k, sig)
        where = f"{sig} before step {k} ({steps[k - 1]}) of {steps}"
        if sig == "SIGKILL":
            assert done.returncode == -9, f"{where}: {done.returncode} {done.stderr[-2000:]}"
        elif op.startswith("convert"):
            assert done.returncode == 130 and "error: interrupted" in done.stderr, f"{where}: {done.stderr[-2000:]}"
        else:
            # (an uncaught KeyboardInterrupt ends Python by SIGINT)
            assert done.returncode == -2 and "KeyboardInterrupt" in done.stderr, f"{where}: {done.stderr[-2000:]}"
        new = k > commit or (k == commit and sig == "SIGINT")  # SIGINT at the rename: held back until it is done
        if new:  # (the .npy converted is read as TCYX: compared with the uninterrupted run's output)
            assert np.array_equal(_pixels(target), want_new), where
        else:
            assert target.read_bytes() == before, where
            assert np.array_equal(_pixels(target), want_old), where
        OMEArrow(NEW, "ZCYX").export(OPS[op].lstrip("."), target, layout="record")  # the next write
        assert sorted(p.name for p in parent.iterdir()) == [target.name], f"{where}: litter after the next write"
        assert np.array_equal(_pixels(target), NEW[None]), where


def test_a_killed_record_write_s_temporary_is_never_read_as_the_file(tmp_path: Path) -> None:
    """SIGKILL after vortex wrote the temporary, before its seal: the unsealed temporary is left beside the target
    (ours, named for it), the target reads as before, and the next write removes the temporary."""
    src = tmp_path / "new.npy"
    np.save(src, NEW)
    target = tmp_path / "img.vortex"
    OMEArrow(OLD, "ZCYX").export("vortex", target, layout="record")
    before = target.read_bytes()
    done = _child("export-vortex", target, src, 1, "SIGKILL")  # step 1: the seal
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in (src.name, target.name))
    assert len(left) == 1, left
    assert target.read_bytes() == before and np.array_equal(_pixels(target), OLD[None])
    OMEArrow(NEW, "ZCYX").export("vortex", target, layout="record")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, target.name])
