"""A tile stream handed over tile by tile against ``stack=`` (one tensor of a plane's tiles), on the CPU.

    python benchmarks/stacked_tiles.py [--size 2048] [--z 16] [--tile 256] [--repeats 7]

Image: 1x1xZxSxS uint16 camera-like noise written by ours with its defaults, read warm through ``OMEArrow.scan``.
Each case takes every 256x256 tile of every plane as a torch tensor (``torch.from_dlpack``; numpy's without torch),
in interleaved rounds in a seeded shuffled order; medians of wall and process CPU time. The first run of each case
is checked against the pixels. "memcpy" copies the image's bytes once (the floor of a stack's extra copy). A
"copied" case is the same stack with its tiles read each into a buffer of its own, then copied into the stack's (the
path before tiles that are whole chunks were read straight into the stack: ``_windows_into`` turned off), its A/B.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_libs import camera_image

from ome_arrow_core import OMEArrow
from ome_arrow_core.lazy import LazyTensorView
from ome_arrow_core.view import Streamable


def copied(run: Callable[[], Any]) -> Callable[[], Any]:
    """``run`` with each stack read tile by tile, then copied (no read straight into a stack's buffer)."""

    def without() -> Any:
        direct = LazyTensorView.__dict__["_windows_into"]
        setattr(LazyTensorView, "_windows_into", Streamable._windows_into)  # noqa: B010 (never reads into)
        try:
            return run()
        finally:
            setattr(LazyTensorView, "_windows_into", direct)  # noqa: B010

    return without


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--z", type=int, default=16)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    try:
        import torch

        take: Callable[[Any], Any] = torch.from_dlpack
        taker = "torch.from_dlpack"
    except ImportError:
        take, taker = np.from_dlpack, "np.from_dlpack"
    arr = camera_image((1, 1, args.z, args.size, args.size))
    tile, per_plane = args.tile, (args.size // args.tile) ** 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "i.ome.parquet"
        OMEArrow(arr, "TCZYX").export("parquet", path)
        img = OMEArrow.scan(path)
        img.to_numpy()  # warm: the page cache and the image's audit

        def stream(stack: int | None, prefetch: int) -> Callable[[], list[Any]]:
            def run() -> list[Any]:
                out = []
                for z in range(args.z):
                    view = img.tensor_view(t=0, c=0, z=z, layout="YX")
                    it = view.iter_dlpack(tile_size=tile, prefetch=prefetch, stack=stack)
                    out += [take(t) for t in it]
                return out

            return run

        scratch = np.empty_like(arr)
        cases: dict[str, Callable[[], Any]] = {
            "tile by tile, prefetch=0": stream(None, 0),
            "tile by tile, prefetch=2": stream(None, 2),
            f"stack={per_plane} (a plane), prefetch=0": stream(per_plane, 0),
            f"stack={per_plane} (a plane), prefetch=2": stream(per_plane, 2),
            f"stack={per_plane}, prefetch=0, copied": copied(stream(per_plane, 0)),
            f"stack={per_plane}, prefetch=2, copied": copied(stream(per_plane, 2)),
            "stack=16, prefetch=2": stream(16, 2),
            "stack=16, prefetch=2, copied": copied(stream(16, 2)),
            "memcpy of the image": lambda: np.copyto(scratch, arr),
        }
        want = np.stack(
            [
                arr[0, 0, z, y : y + tile, x : x + tile]
                for z in range(args.z)
                for y in range(0, args.size, tile)
                for x in range(0, args.size, tile)
            ]
        )
        for name, fn in cases.items():
            got = fn()
            if got is not None:
                host = np.concatenate([np.asarray(g).reshape(-1, *np.asarray(g).shape[-2:]) for g in got])
                np.testing.assert_array_equal(host, want, err_msg=name)
        wall: dict[str, list[float]] = {n: [] for n in cases}
        cpu: dict[str, list[float]] = {n: [] for n in cases}
        rng = random.Random(0)
        for _ in range(args.repeats):
            order = list(cases)
            rng.shuffle(order)
            for name in order:
                w0, c0 = time.perf_counter(), time.process_time()
                cases[name]()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    base = statistics.median(cpu["tile by tile, prefetch=2"])
    print(f"1x1x{args.z}x{args.size}x{args.size} uint16, {tile}x{tile} tiles ({per_plane} a plane), taken by {taker}")
    print(f"{'case':<36} {'wall ms':>9} {'CPU ms':>9} {'CPU / tile by tile':>19}")
    for name in cases:
        w, c = statistics.median(wall[name]) * 1e3, statistics.median(cpu[name]) * 1e3
        print(f"{name:<36} {w:9.1f} {c:9.1f} {c / (base * 1e3):19.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
