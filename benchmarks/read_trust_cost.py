"""What the trust checks cost on the fast read path: checksums on (the default) against ``verify=False``.

    python benchmarks/read_trust_cost.py [--size 2048] [--repeats 15]

One 1x1x4xSxS uint16 image of camera-like noise written with our defaults, opened twice (``verify=None`` and
``verify=False``), every chunk read once (audited) by both. Then, interleaved in one process, CPU time of this
process (best of ``--repeats``) for: one full plane, one 256x256 aligned crop (one chunk), one 300x300 crop that
straddles chunk borders, and 256x256 tiles streamed over one plane (``iter_dlpack``). Coverage and length checks
run in both: they are not optional. CPU time, not wall time, so that other jobs on a shared machine count less.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_libs as L

from ome_arrow_core import OMEArrow


def best_cpu_ms(fn: Callable[[], Any], repeats: int, number: int) -> float:
    """Best over ``repeats`` of the mean process CPU time of ``number`` calls, ms."""
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        runs.append((time.process_time() - t0) * 1e3 / number)
    return min(runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    s = args.size
    arr = L.camera_image((1, 1, 4, s, s))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "img.ome.parquet"
        OMEArrow(arr).export("parquet", path)
        imgs = {"checked": OMEArrow.scan(path), "verify=False": OMEArrow.scan(path, verify=False)}
        o = s // 2 - 24

        def cases(img: OMEArrow) -> dict[str, tuple[Callable[[], Any], int]]:
            def tiles() -> None:
                for cap in img.tensor_view(t=0, c=0, z=1, layout="YX").iter_dlpack(tile_size=(256, 256)):
                    np.from_dlpack(cap)

            return {
                f"one {s}x{s} plane": (lambda: img.tensor_view(t=0, c=0, z=2, layout="YX").to_numpy(), 5),
                "one 256x256 aligned crop": (
                    lambda: img.tensor_view(t=0, c=0, z=2, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
                    100,
                ),
                "one 300x300 unaligned crop": (
                    lambda: img.tensor_view(t=0, c=0, z=2, roi=(o, o, 300, 300), layout="YX").to_numpy(),
                    50,
                ),
                f"256x256 tiles over one plane ({(s // 256) ** 2})": (tiles, 1),
            }

        for img in imgs.values():
            img.to_numpy()  # every chunk read once: later reads take the page path
        got: dict[str, dict[str, float]] = {}
        for _ in range(3):  # interleaved rounds; the best of all
            for mode, img in imgs.items():
                for name, (fn, number) in cases(img).items():
                    ms = best_cpu_ms(fn, max(1, args.repeats // 3), number)
                    got.setdefault(name, {})[mode] = min(got.get(name, {}).get(mode, ms), ms)
    print(f"{'case':40s} {'checked ms':>11s} {'verify=False ms':>16s} {'checks cost':>12s}")
    for name, r in got.items():
        extra = r["checked"] / r["verify=False"] - 1
        print(f"{name:40s} {r['checked']:11.3f} {r['verify=False']:16.3f} {extra:+11.0%}")


if __name__ == "__main__":
    main()
