"""Vortex vs Parquet chunk files for a plate: write, ds[i] crops, whole images, random batches of 32.

Usage: python backends/vortex/benchmarks/bench_vortex_dataset.py   (512 images of 2x256x256 uint16, in a temp dir)
"""

import pathlib
import statistics
import tempfile
import time

import numpy as np

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.typed_chunk import opening

N, C, Y, X = 512, 2, 256, 256
d = pathlib.Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
arrs = rng.integers(0, 4096, (N, C, Y, X), dtype=np.uint16)
meta = {"well": [f"W{i // 8:03d}" for i in range(N)], "site": [i % 8 for i in range(N)]}
res = {}
for fmt, comp in (("parquet", "default"), ("parquet", None), ("vortex", "default")):
    key = f"{fmt}/{comp}"
    t0 = time.perf_counter()
    out = write_dataset(
        list(arrs),
        d / key.replace("/", "_"),
        dim_order="CYX",
        metadata=meta,
        chunk_format=fmt,
        compression=comp,
        progress=False,
    )
    tw = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    ds = OMEArrowDataset.scan(out)
    ds.read([0])  # open files once (cached per process)
    order = rng.permutation(N)
    # random access: one lazy image, a 64x64 crop of one channel
    ts = []
    for i in order[:200]:
        t = time.perf_counter()
        ds[int(i)].tensor_view(c=1, roi=(100, 100, 64, 64), layout="YX").to_numpy()
        ts.append(time.perf_counter() - t)
    # random access: one whole image
    tw1 = []
    for i in order[200:400]:
        t = time.perf_counter()
        ds[int(i)].tensor_view(layout="CYX").to_numpy()
        tw1.append(time.perf_counter() - t)
    # batched reads of 32 random images (whole)
    tb = []
    for k in range(0, N, 32):
        idx = order[k : k + 32]
        t = time.perf_counter()
        ds.read(idx)
        tb.append(time.perf_counter() - t)
    assert np.array_equal(ds.read(order[:8]), arrs[order[:8]])
    # cold open + one crop (new process cost approximated by clearing the cache)
    tc = []
    for i in order[:20]:
        opening.clear_cache()
        t = time.perf_counter()
        OMEArrowDataset.scan(out)[int(i)].tensor_view(c=1, roi=(100, 100, 64, 64), layout="YX").to_numpy()
        tc.append(time.perf_counter() - t)
    mb = 32 * C * Y * X * 2 / 2**20
    print(
        f"{key:18s} write {tw:5.2f}s  size {size:6.1f} MiB  crop(ds[i]) median {statistics.median(ts) * 1e3:6.2f} ms  "
        f"whole image median {statistics.median(tw1) * 1e3:6.2f} ms  batch32 median {statistics.median(tb) * 1e3:6.1f} ms "
        f"({mb / statistics.median(tb):6.0f} MiB/s, {32 / statistics.median(tb):6.0f} img/s)  cold scan+crop {statistics.median(tc) * 1e3:6.1f} ms"
    )
