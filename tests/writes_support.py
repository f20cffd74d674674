"""Helpers of the write-safety tests: sample datasets, what a target reads as, litter, a killable writer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ome_arrow_core import OMEArrowDataset, write_dataset

#: Names a foreign file beside the target has; it must never change.
KEEP = "keep.txt"
KEEP_TEXT = "the user's notes\n"


def images(seed: int, n: int = 3, shape: tuple[int, int, int] = (2, 24, 40)) -> list[np.ndarray]:
    """``n`` CYX uint16 images, distinct for each seed."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 65535, shape, dtype=np.uint16) for _ in range(n)]


def write(target: Path, seed: int, mode: str = "create", n: int = 3, **opts: object) -> None:
    write_dataset(
        images(seed, n),
        target,
        mode=mode,
        dim_order="CYX",
        chunk_shape=(16, 16),  # type: ignore[arg-type]
        progress=False,
        **opts,
    )


def plate(seed: int, n: int) -> list[np.ndarray]:
    """``n`` distinct 8 x 8 uint16 YX images, distinct for each seed: small images whose chunks share row groups."""
    return [((np.arange(64) + 7 * (seed * 100 + i)) % 4096).astype(np.uint16).reshape(8, 8) for i in range(n)]


def write_packed(target: Path, images: list[np.ndarray], mode: str = "create") -> None:
    """Write YX ``images`` packed at most three to a chunks row group, in images row groups of four."""
    from ome_arrow_core.typed_chunk import packing

    old = packing.GROUP_IMAGES
    packing.GROUP_IMAGES = 3
    try:
        cyx = [a[None] for a in images]
        write_dataset(cyx, target, mode=mode, dim_order="CYX", progress=False, images_per_group=4)
    finally:
        packing.GROUP_IMAGES = old


def read(target: Path) -> list[np.ndarray]:
    """Every image of the dataset at ``target``, as CYX arrays."""
    ds = OMEArrowDataset.scan(target)
    return [ds[i].to_numpy()[0, :, 0] for i in range(len(ds))]


def same(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    return len(got) == len(want) and all(g.shape == w.shape and np.array_equal(g, w) for g, w in zip(got, want))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), directories as ``b"<dir>"``."""
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = b"<dir>"
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def litter(parent: Path, target: Path, allowed_inside: list[set[str]]) -> list[str]:
    """Names beside ``target`` other than it and KEEP, and inside it when its names are none of ``allowed_inside``."""
    bad = sorted(set(os.listdir(parent)) - {target.name, KEEP})
    if target.is_dir():
        inside = set(os.listdir(target))
        if inside not in allowed_inside:
            bad += [f"{target.name}/{n}" for n in sorted(inside)]
    return bad


#: A writer run in a child process that counts the file-system steps it makes (os.rename, os.replace,
#: os.unlink, os.rmdir, shutil.rmtree, renameat2) and signals itself (SIGKILL unless named) just before step K.
CHILD = r"""
import os, shutil, signal, sys
import numpy as np
from ome_arrow_core.safe_write import atomic, fsops
op, target, kill_at, swap = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
how = getattr(signal, sys.argv[6]) if len(sys.argv) > 6 else signal.SIGKILL
# SIGINT as in a terminal's process: a test run started in the background (`pytest ... &` from a script) hands its
# children SIGINT ignored, which would drop the signal the writer holds back and make it exit 0
signal.signal(signal.SIGINT, signal.default_int_handler)
atomic.EXCHANGE = swap == "exchange"
count = 0
def wrap(mod, name):
    real = getattr(mod, name)
    def step(*a, **k):
        global count
        count += 1
        if kill_at == 0:
            print("STEP", count, name, *(os.path.basename(str(v)) for v in a), file=sys.stderr)
        if count == kill_at:
            # to this thread: os.kill(getpid()) may land on one of Arrow's threads, whose C handler can run
            # after this process has exited on a loaded machine (the signal is then lost, exit status 0)
            signal.raise_signal(how)
        return real(*a, **k)
    setattr(mod, name, step)
for name in ("rename", "replace", "unlink", "rmdir"):
    wrap(os, name)
wrap(shutil, "rmtree")
wrap(fsops, "renameat2")
sys.path.insert(0, sys.argv[5])
import writes_support as ws
from pathlib import Path
if op == "compact":
    from ome_arrow_core import compact_dataset
    compact_dataset(target)
elif op == "record":
    from ome_arrow_core import OMEArrow
    OMEArrow(ws.images(2, 1)[0], dim_order="CYX").export("parquet", target, layout="record")
elif op.startswith("packed-"):  # packed-overwrite, packed-append: a plate of 7 small images
    ws.write_packed(Path(target), ws.plate(2, 7), mode=op.removeprefix("packed-"))
else:
    ws.write(Path(target), 2, mode=op, n=2)
print(count)
"""


#: The steps that rename a file into place or swap the dataset in: each one commits something.
RENAMES = frozenset({"rename", "replace", "renameat2"})


def steps_of(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The names of the steps a counting child (``kill_at=0``) made, in order."""
    return [line.split()[2] for line in proc.stderr.splitlines() if line.startswith("STEP ")]


def kill_points(steps: list[str]) -> list[int]:
    """The steps (1-based) a sweep kills at to reach each kind of state: every rename, and the first step of each
    other kind (rmtree, rmdir, unlink: cleanups, which repeat once per file) before the last rename (the commit)
    and after it."""
    last = max(k for k, name in enumerate(steps, 1) if name in RENAMES)
    keep: list[int] = []
    seen: set[tuple[str, bool]] = set()
    for k, name in enumerate(steps, 1):
        if name in RENAMES or (name, k > last) not in seen:
            keep.append(k)
        seen.add((name, k > last))
    return keep


def run_child(
    op: str, target: Path, kill_at: int, swap: str, signal: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the writer; ``kill_at=0`` counts its steps (printed last on stdout; each step on stderr)."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            op,
            str(target),
            str(kill_at),
            swap,
            str(Path(__file__).parent),
            *([signal] if signal else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
