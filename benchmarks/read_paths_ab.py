"""Warm single-image reads, this tree's read path against an older commit's, interleaved in one process.

    python benchmarks/read_paths_ab.py [--ref main] [--rounds 60] [--size 1024] [--chunks 256]
    python benchmarks/read_paths_ab.py --ref none --chunks 256,512   # this tree only: chunk edges interleaved

The older path is the same functions loaded from ``git show REF:<module>`` and swapped in where this tree uses
them (see ``SWAPS``); everything else (opening, the file, the machine's load) is shared, and the two paths take
turns round by round, each going first every other round (``--ref none``: this tree only). Image: 1x2x4xSxS uint16 of camera-like noise, written with
our defaults but the chunk edge (one image per ``--chunks`` edge, all interleaved too), every chunk read once
(audited) first. Cases: one full plane, one 256x256 aligned crop, one 300x300 crop straddling chunks, a
4x256x256 Z column, open + one aligned crop, 256x256 tiles over every plane (``iter_dlpack(prefetch=2)``),
the whole image (``to_numpy``) and, for scale, numpy's copy of it in memory.
Prints wall and process CPU time per read, median and best of the rounds, ms, and checks each result against
numpy's slice of the source.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_libs as L

from ome_arrow_core import OMEArrow

ROOT = Path(__file__).resolve().parent.parent
#: (module using it, its name there, module defining the older version, its name there); a dotted name swaps an
#: attribute of a class.
SWAPS: list[tuple[str, str, str, str]] = [
    ("ome_arrow_core.typed_chunk.chunk_reads", "place_pages", "ome_arrow_core.typed_chunk.page_stream", "place_pages"),
    (
        "ome_arrow_core.typed_chunk.source",
        "DatasetSource.read_many",
        "ome_arrow_core.typed_chunk.source",
        "DatasetSource.read_many",
    ),
    ("ome_arrow_core.view", "Streamable._stream", "ome_arrow_core.view", "Streamable._stream"),
    ("ome_arrow_core.chunks", "ChunkTable.projections", "ome_arrow_core.chunks", "ChunkTable.projections"),
    ("ome_arrow_core.lazy", "LazyTensorView.__init__", "ome_arrow_core.lazy", "LazyTensorView.__init__"),
    (
        "ome_arrow_core.typed_chunk.source",
        "DatasetSource._read",
        "ome_arrow_core.typed_chunk.source",
        "DatasetSource._read",
    ),
]


#: Names an older module takes from another older module (not from this tree's): (user, name, defining module).
LINKS: list[tuple[str, str, str]] = [
    ("ome_arrow_core.view", "prefetched", "ome_arrow_core.iteration"),
    ("ome_arrow_core.view", "grouped", "ome_arrow_core.iteration"),
]


def older(module: str, ref: str) -> types.ModuleType | None:
    """``module`` as it was at git ``ref``, loaded beside the current one (None where it did not exist)."""
    rel = module.replace(".", "/") + ".py"
    run = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{rel}"], capture_output=True, text=True)
    if run.returncode:
        return None
    pkg = module.rpartition(".")[0]
    mod = types.ModuleType(f"{pkg}._ab_{module.rpartition('.')[2]}")
    mod.__package__ = pkg
    mod.__file__ = f"<{ref}:{rel}>"
    sys.modules[mod.__name__] = mod
    exec(compile(run.stdout, mod.__file__, "exec"), mod.__dict__)
    return mod


def resolve(obj: Any, dotted: str) -> tuple[Any, str]:
    """(owner, attribute) of a dotted name under ``obj``."""
    *parts, last = dotted.split(".")
    for p in parts:
        obj = getattr(obj, p)
    return obj, last


@contextmanager
def swapped(pairs: list[tuple[Any, str, Any]]) -> Any:
    """Set each (owner, name, value), restoring them afterwards."""
    saved = [(o, n, getattr(o, n)) for o, n, _ in pairs]
    for o, n, v in pairs:
        setattr(o, n, v)
    try:
        yield
    finally:
        for o, n, v in saved:
            setattr(o, n, v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ref", default="main")
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--chunks", default="256", help="comma-separated Y/X chunk edges, one image each")
    p.add_argument("--only", default="", help="run only the cases whose name contains this")
    p.add_argument(
        "--tensorstore", type=int, default=0, help="chunk edge: also time tensorstore's plane and whole image (raw)"
    )
    args = p.parse_args()
    pairs: list[tuple[Any, str, Any]] = []
    olds: dict[str, types.ModuleType | None] = {}
    for user, name, defining in LINKS if args.ref != "none" else []:
        olds.setdefault(user, older(user, args.ref))
        olds.setdefault(defining, older(defining, args.ref))
        got, lender = olds[user], olds[defining]
        if got is not None and lender is not None:
            setattr(got, name, getattr(lender, name))
    for user, name, defining, old_name in SWAPS if args.ref != "none" else []:
        old = olds[defining] if defining in olds else olds.setdefault(defining, older(defining, args.ref))
        if old is None:
            continue
        owner, attr = resolve(importlib.import_module(user), name)
        pairs.append((owner, attr, resolve(old, old_name)[0].__dict__[resolve(old, old_name)[1]]))
    s = args.size
    arr = L.camera_image((1, 2, 4, s, s))
    tmp = Path(tempfile.mkdtemp())
    variants = {"new": []} if args.ref == "none" else {"new": [], "old": pairs}
    cases: dict[str, tuple[Callable[[], Any], Any]] = {}
    for edge in (int(e) for e in args.chunks.split(",")):
        path = tmp / f"ours-{edge}.ome.parquet"
        OMEArrow(arr).export("parquet", path, chunk_shape=(edge, edge))
        cases.update({f"{name} [chunks {edge}]": case for name, case in image_cases(arr, path).items()})
    if args.tensorstore:
        ts_path = tmp / "ts.zarr"
        L.ts_write(arr, ts_path, args.tensorstore, "raw")
        read = L.ts_reader(L.ts_open(ts_path))
        cases[f"tensorstore: one full {s}x{s} plane [chunks {args.tensorstore} raw]"] = (
            lambda: read((0, 1, 2, slice(None), slice(None))),
            arr[0, 1, 2],
        )
        cases[f"tensorstore: whole image [chunks {args.tensorstore} raw]"] = (lambda: read((slice(None),) * 5), arr)
    cases = {k: v for k, v in cases.items() if args.only in k}
    print(f"ref {args.ref}: swapped {[f'{u}.{n}' for u, n, _, _ in SWAPS] if pairs else []}; {args.rounds} rounds")
    print("case | " + " | ".join(f"{v}: wall median / best, CPU median / best" for v in variants) + " | new/old CPU")
    times: dict[tuple[str, str], list[tuple[float, float]]] = {(c, v): [] for c in cases for v in variants}
    for c, (fn, want) in cases.items():  # each checked once per variant, untimed
        for v, sw in variants.items():
            with swapped(sw):
                got = fn()
            if want is not None:
                np.testing.assert_array_equal(got, want)
    order = list(variants.items())
    for r in range(args.rounds):
        for c, (fn, _) in cases.items():
            for v, sw in order if r % 2 else order[::-1]:  # each goes first every other round (warm caches)
                with swapped(sw):
                    w0, c0 = time.perf_counter(), time.process_time()
                    fn()
                    times[c, v].append(((time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3))
    for c in cases:
        cells = []
        for v in variants:
            w, u = np.array(times[c, v]).T
            cells.append(f"{np.median(w):.3f} / {w.min():.3f}, {np.median(u):.3f} / {u.min():.3f}")
        ratio = "-"
        if "old" in variants:
            ratio = f"{np.median(np.array(times[c, 'new'])[:, 1]) / np.median(np.array(times[c, 'old'])[:, 1]):.2f}"
        print(f"{c} | {' | '.join(cells)} | {ratio}", flush=True)


def image_cases(arr: np.ndarray, path: Path) -> dict[str, tuple[Callable[[], Any], Any]]:
    """The cases on one written image (``path``) of ``arr``: (read, the expected pixels or None)."""
    s = arr.shape[-1]
    img = OMEArrow.scan(path)
    img.to_numpy()  # audited: later reads stream
    planes = [(0, c, z) for c in range(arr.shape[1]) for z in range(arr.shape[2])]
    o = s // 2 - 24
    return {
        f"one full {s}x{s} plane": (lambda: L.ours_read(img, (0, 1, 2, slice(None), slice(None))), arr[0, 1, 2]),
        "one 256x256 aligned crop": (
            lambda: L.ours_read(img, (0, 1, 2, slice(512, 768), slice(512, 768))),
            arr[0, 1, 2, 512:768, 512:768],
        ),
        "one 300x300 unaligned crop": (
            lambda: L.ours_read(img, (0, 1, 2, slice(o, o + 300), slice(o, o + 300))),
            arr[0, 1, 2, o : o + 300, o : o + 300],
        ),
        "a 4x256x256 Z column": (
            lambda: L.ours_read(img, (0, 1, slice(None), slice(512, 768), slice(512, 768))),
            arr[0, 1, :, 512:768, 512:768],
        ),
        "open + one 256x256 aligned crop": (
            lambda: OMEArrow.scan(path).tensor_view(t=0, c=1, z=2, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
            arr[0, 1, 2, 512:768, 512:768],
        ),
        "256x256 tiles over every plane": (lambda: collections.deque(L.ours_tiles(img, planes, 256), maxlen=0), None),
        "whole image": (lambda: L.ours_read(img, (slice(None),) * 5), arr),
        "memcpy of the whole image": (lambda: arr.copy(), arr),
    }


if __name__ == "__main__":
    main()
