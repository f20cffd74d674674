"""What the whole-file check costs: open + read one plane of a 2048x2048x16 uint16 Vortex image (128 MiB).

Usage: python backends/vortex/benchmarks/bench_vortex_seal.py [OUT_DIR]

Prints medians (and minima) of: open + one plane with verify=True (the seal's XXH3-64 over the
whole file, then the plane's chunk checksums) and verify=False; the seal check alone; and a
plane read on an already opened image (no whole-file pass). File from the page cache.
"""

import os
import statistics
import sys
import timeit

import numpy as np

from ome_arrow_core import OMEArrow, Selection
from ome_arrow_vortex.reader import VortexSource
from ome_arrow_vortex.seal import check_seal

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/vxseal"
os.makedirs(d, exist_ok=True)
path = os.path.join(d, "plane.vortex")
arr = np.random.default_rng(0).integers(0, 65535, (16, 2048, 2048), dtype=np.uint16)
OMEArrow(arr, "ZYX").export("vortex", path)
print(f"file {os.path.getsize(path) / 2**20:.1f} MiB, {arr.shape} {arr.dtype}")
plane = Selection(t=range(1), z=range(7, 8), c=range(1), y=range(2048), x=range(2048))
assert np.array_equal(VortexSource(path).read(plane)[0, 0, 0], arr[7])


def med(fn, n=15):
    ts = timeit.repeat(fn, number=1, repeat=n)
    return statistics.median(ts) * 1e3, min(ts) * 1e3


for verify in (False, True):
    print(
        "open + one plane, verify=%-5s median %.1f ms (min %.1f)"
        % (verify, *med(lambda: VortexSource(path, verify=verify).read(plane)))
    )
print(
    "seal check alone (XXH3-64 of the file) median %.1f ms (min %.1f)"
    % med(lambda: check_seal(__import__("pathlib").Path(path)))
)
src = VortexSource(path)
print("one plane, already open, verify=True   median %.1f ms (min %.1f)" % med(lambda: src.read(plane)))
