"""Vortex backend timings: export, full read, 256x256 crop (timeit medians).

Usage: python backends/vortex/benchmarks/bench_vortex.py OUT_DIR [random|smooth]
"""

import os
import statistics
import sys
import timeit

import numpy as np

from ome_arrow_core import OMEArrow, Selection
from ome_arrow_vortex.reader import VortexSource

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/vxbench"
path = os.path.join(d, "bench.vortex")
kind = sys.argv[2] if len(sys.argv) > 2 else "random"
rng = np.random.default_rng(0)
if kind == "random":
    arr = rng.integers(0, 65535, (1, 2, 8, 1024, 1024), dtype=np.uint16)
else:  # smooth background + Poisson-like noise, like a fluorescence image
    yy, xx = np.mgrid[0:1024, 0:1024]
    base = 200 + 800 * np.exp(-((yy - 512) ** 2 + (xx - 400) ** 2) / 2e5)
    arr = (base + rng.normal(0, 20, (1, 2, 8, 1024, 1024))).clip(0, 65535).astype(np.uint16)
print("data", kind)
img = OMEArrow(arr)  # 5-D default dim order TCZYX -> T=1, C=2, Z=8
print("image", img.sizes, img.dtype, f"{arr.nbytes / 2**20:.0f} MiB")


def med(stmt, n=15):
    ts = timeit.repeat(stmt, number=1, repeat=n, globals=globals())
    return statistics.median(ts) * 1e3, min(ts) * 1e3


print("export          median %.1f ms (min %.1f)" % med(lambda: img.export(how="vortex", out=path), 9))
print("file size       %.1f MiB, rows %d" % (os.path.getsize(path) / 2**20, OMEArrow.scan(path).info()["rows"]))
full = OMEArrow(path).to_numpy()
assert np.array_equal(full, img.to_numpy())
print("full read       median %.1f ms (min %.1f)   OMEArrow(path) eager" % med(lambda: OMEArrow(path)))
print("open (meta)     median %.3f ms (min %.3f)   OMEArrow.scan(path)" % med(lambda: OMEArrow.scan(path), 50))
lazy = OMEArrow.scan(path)
want = img.to_numpy(layout="TZCYX")[0, 3, 1, 300:556, 300:556]
assert np.array_equal(lazy.tensor_view(t=0, z=3, c=1, roi=(300, 300, 256, 256)).to_numpy()[0], want)
crop4 = lambda: lazy.tensor_view(t=0, z=3, c=1, roi=(300, 300, 256, 256)).to_numpy()
crop1 = lambda: lazy.tensor_view(t=0, z=3, c=1, roi=(0, 0, 256, 256)).to_numpy()
r0 = lazy._source.rows_read
crop4()
r4 = lazy._source.rows_read - r0
crop1()
r1 = lazy._source.rows_read - r0 - r4
print("crop 256 (4 chunks) median %.3f ms (min %.3f)  rows read %d" % (*med(crop4, 50), r4))
print("crop 256 (1 chunk)  median %.3f ms (min %.3f)  rows read %d" % (*med(crop1, 50), r1))
print(
    "scan+crop (open each time) median %.3f ms (min %.3f)"
    % med(lambda: OMEArrow.scan(path).tensor_view(t=0, z=3, c=1, roi=(300, 300, 256, 256)).to_numpy(), 50)
)
sel = Selection(t=range(0, 1), z=range(3, 4), c=range(1, 2), y=range(300, 556), x=range(300, 556))
print(
    "open+crop 256 (4 chunks), memory_map=True  median %.3f ms (min %.3f)"
    % med(lambda: VortexSource(path).read(sel), 30)
)
print(
    "open+crop 256 (4 chunks), memory_map=False median %.3f ms (min %.3f)"
    % med(lambda: VortexSource(path, memory_map=False).read(sel), 30)
)
eager = OMEArrow(path)
print(
    "crop 256 from eager (in memory) median %.3f ms"
    % med(lambda: eager.tensor_view(t=0, z=3, c=1, roi=(300, 300, 256, 256)).to_numpy(), 50)[0]
)
