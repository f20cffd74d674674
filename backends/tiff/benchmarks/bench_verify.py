"""What checking the checksums of an OME-TIFF we write costs on read: verify on vs off.

Run: ``python backends/tiff/benchmarks/bench_verify.py [--repeats 15]``

Writes a 2048x2048x16 uint16 OME-TIFF (Z=16, uncompressed, our default ~256 KiB strips) and
times (CPU time of the reading thread: the machine may be shared; best and median of
``--repeats``, interleaved in one process, the file in the page cache):
one whole plane, one 256x256 crop, and the whole image, each read with ``verify=True`` and
``verify=False``; the ratio is what the check adds. Also the same for 256x256 zlib tiles.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ome_arrow_core import OMEArrow


def cases(path: Path) -> dict[str, Callable[[bool], object]]:
    """One timed call per case; the argument is ``verify``."""
    checked, unchecked = OMEArrow.scan(path, verify=True), OMEArrow.scan(path, verify=False)

    def pick(verify: bool) -> OMEArrow:
        return checked if verify else unchecked

    return {
        "one 2048x2048 plane": lambda v: pick(v).tensor_view(z=7, layout="YX").to_numpy(),
        "one 256x256 crop": lambda v: pick(v).tensor_view(z=7, roi=(700, 900, 256, 256), layout="YX").to_numpy(),
        "the whole image (16 planes)": lambda v: pick(v).to_numpy(),
    }


def measure(fn: Callable[[bool], object], repeats: int) -> dict[bool, list[float]]:
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for verify in (False, True):
            start = time.thread_time()
            fn(verify)
            times[verify].append(time.thread_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    arr = np.random.default_rng(0).integers(0, 65535, (16, 2048, 2048), dtype=np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        files = {"strips": Path(tmp) / "strips.ome.tiff", "zlib tiles": Path(tmp) / "tiles.ome.tiff"}
        OMEArrow(arr).export("ome-tiff", files["strips"])
        OMEArrow(arr).export("ome-tiff", files["zlib tiles"], tile=(256, 256), compression="zlib")
        print(f"{'file':<11} {'case':<29} {'verify=False ms':>16} {'verify=True ms':>15} {'ratio':>6}")
        for name, path in files.items():
            for case, fn in cases(path).items():
                t = measure(fn, args.repeats)
                off, on = statistics.median(t[False]) * 1e3, statistics.median(t[True]) * 1e3
                print(
                    f"{name:<11} {case:<29} {off:>9.2f} (min {min(t[False]) * 1e3:.2f}) "
                    f"{on:>8.2f} (min {min(t[True]) * 1e3:.2f}) {on / off:>6.2f}"
                )


if __name__ == "__main__":
    main()
