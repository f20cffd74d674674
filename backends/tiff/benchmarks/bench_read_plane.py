"""Read one plane of a 64-plane 512x512 uint16 TIFF: lazy scan vs eager full read.

Run: ``python backends/tiff/benchmarks/bench_read_plane.py`` (prints one line per case:
the median time of one call over timeit repeats).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from ome_arrow_core import OMEArrow


def median_seconds(fn: Callable[[], object], repeat: int = 7) -> float:
    """Median seconds of one call of ``fn`` (timeit, number auto-ranged)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return statistics.median(t / number for t in timer.repeat(repeat, number))


def cases_for(path: Path) -> dict[str, Callable[[], object]]:
    """The timed calls for one file: lazy plane and crop, eager read, tifffile for reference."""
    scanned = OMEArrow.scan(path)
    return {
        "lazy scan+plane": lambda: OMEArrow.scan(path).tensor_view(t=0, z=0, c=0).to_numpy(),
        "lazy plane (scanned)": lambda: scanned.tensor_view(t=0, z=0, c=0).to_numpy(),
        "lazy 128x128 crop": lambda: scanned.tensor_view(t=0, z=0, c=0, roi=(200, 200, 128, 128)).to_numpy(),
        "eager full read+plane": lambda: OMEArrow(path).tensor_view(t=0, z=0, c=0).to_numpy(),
        "tifffile.imread(key=0)": lambda: tifffile.imread(path, key=0),
        "tifffile.imread (all)": lambda: tifffile.imread(path),
    }


def main() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65535, (64, 512, 512), dtype=np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "strips": Path(tmp) / "stack64.tif",
            "tiled-zlib": Path(tmp) / "stack64_tiled.tif",
        }
        tifffile.imwrite(cases["strips"], arr, photometric="minisblack", metadata={"axes": "ZYX"})
        tifffile.imwrite(
            cases["tiled-zlib"],
            arr,
            photometric="minisblack",
            tile=(128, 128),
            compression="zlib",
            metadata={"axes": "ZYX"},
        )
        print(f"python {sys.version.split()[0]}, tifffile {tifffile.__version__}, file 64x512x512 uint16")
        for kind, path in cases.items():
            for name, fn in cases_for(path).items():
                print(f"{kind:11s} {name:24s} {median_seconds(fn) * 1e3:9.3f} ms")


if __name__ == "__main__":
    main()
