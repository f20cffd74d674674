"""The cases of plate_scale.py as each library runs them: one program per case, run in a fresh process.

The program (``_CHILD``) opens the plate with the library's calls (``_LIBS``: ours, zarr), runs one case of ``CASES``
(see plate_scale.py), checks every pixel it read against the plate's images, and prints the case's time (by the
clock ``PLATE_SCALE_CLOCK`` names) and the growth of its RSS as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["CASES", "run_case"]

CASES = ["scan", "open", "first", "len", "get", "read32", "filter", "shard"]

_CHILD = r"""
import json, os, sys, time, statistics
clock = time.process_time if os.environ.get("PLATE_SCALE_CLOCK") == "cpu" else time.perf_counter
{baseline}import numpy as np
{imports}
path, n, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
SHAPE = tuple(int(v) for v in sys.argv[4:]); P = int(np.prod(SHAPE))
def expect(i):
    return ((np.arange(P, dtype=np.int64) + 7 * i) % 4096).astype(np.uint16).reshape(SHAPE)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
out = {{}}
r0 = rss(); t0 = clock()
ds = {open}
t1 = clock()
if case == "scan":
    out["ms"] = (t1 - t0) * 1e3
elif case == "open":
    item = {item}(ds, 0)
    out["ms"] = (clock() - t0) * 1e3
elif case == "first":
    img = {get}(ds, 0)
    out["ms"] = (clock() - t0) * 1e3
    assert np.array_equal(np.asarray(img).reshape(SHAPE), expect(0)), "wrong first image"
elif case == "len":
    t = clock(); k = {length}(ds); out["ms"] = (clock() - t) * 1e3
    assert k == n, (k, n)
elif case == "get":
    rng = np.random.default_rng(1); picks = rng.integers(0, n, 420)
    for i in picks[:20]:
        assert np.array_equal(np.asarray({get}(ds, int(i))).reshape(SHAPE), expect(int(i))), i
    runs = []
    for rep in range(5):
        t = clock()
        for i in picks[20 + rep * 80:20 + (rep + 1) * 80]:
            {get}(ds, int(i))
        runs.append((clock() - t) * 1e3 / 80)
    out["ms"] = statistics.median(runs)
elif case == "read32":
    rng = np.random.default_rng(2); batches = [rng.choice(n, 32, replace=False) for _ in range(8)]
    got = {many}(ds, batches[0])
    assert np.array_equal(np.asarray(got).reshape((32,) + SHAPE), np.stack([expect(int(i)) for i in batches[0]]).reshape((32,) + SHAPE))
    times = []
    for b in batches[1:]:
        t = clock(); {many}(ds, b); times.append((clock() - t) * 1e3)
    out["ms"] = statistics.median(times)
elif case == "filter":
    t = clock(); kept, img = {filter}(ds, "B03"); out["ms"] = (clock() - t) * 1e3
    if os.environ.get("PLATE_SCALE_BY_WELL") == "1":  # well 14 (B03): images ceil(14 n / 96) to ceil(15 n / 96)
        first, end = (14 * n + 95) // 96, (15 * n + 95) // 96
    else:
        first, end = 14, 14 + len(range(14, n, 96))
    assert kept == end - first, kept
    assert np.array_equal(np.asarray(img).reshape(SHAPE), expect(first))
elif case == "shard":
    t = clock(); kept, img = {shard}(ds, 1, 8); out["ms"] = (clock() - t) * 1e3
    assert kept == len(range(1, n, 8)), kept
    assert np.array_equal(np.asarray(img).reshape(SHAPE), expect(1))
out["rss_mib"] = rss() - r0
print(json.dumps(out))
"""

_LIBS: dict[str, dict[str, str]] = {
    "ours": {
        "imports": "from ome_arrow_core import OMEArrowDataset",
        "open": "OMEArrowDataset.scan(path)",
        "item": "(lambda d, i: d[i])",
        "get": "(lambda d, i: d[i].to_numpy())",
        "length": "len",
        "many": "(lambda d, idx: d.read(idx))",
        "filter": "(lambda d, w: (lambda f: (len(f), f[0].to_numpy()))(d.filter({'well': w})))",
        "shard": "(lambda d, r, k: (lambda s: (len(s), s[0].to_numpy()))(d.select(range(r, len(d), k))))",
    },
    "zarr": {
        "imports": "import zarr",
        "open": "(lambda g: (g, g['images']))(zarr.open_group(path, mode='r'))",
        "item": "(lambda d, i: d[1].shape)",
        "get": "(lambda d, i: d[1][i])",
        "length": "(lambda d: d[1].shape[0])",
        "many": "(lambda d, idx: d[1].oindex[np.asarray(idx)])",
        "filter": "(lambda d, w: (lambda k: (len(k), d[1][int(k[0])]))(np.nonzero(d[0]['well'][...] == w)[0]))",
        "shard": "(lambda d, r, k: (lambda s: (len(s), d[1][int(s[0])]))(np.arange(r, d[1].shape[0], k)))",
    },
}


def run_case(
    lib: str,
    path: Path,
    n: int,
    case: str,
    baseline: Path | None,
    shape: tuple[int, ...],
    clock: str = "wall",
) -> dict[str, float]:
    """One case in a fresh process (``lib`` "before": ours from the source tree ``baseline``)."""
    first = f"sys.path.insert(0, {str(baseline)!r})\n" if lib == "before" and baseline is not None else ""
    code = _CHILD.format(baseline=first, **_LIBS["ours" if lib == "before" else lib])
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), str(n), case, *map(str, shape)],
        capture_output=True,
        text=True,
        timeout=1800,
        # from bytecode, as every peer runs (a tree never imported with bytecode writes on compiles in the timed part)
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PLATE_SCALE_CLOCK": clock},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{lib} {case} N={n} failed:\n{done.stderr[-3000:]}")
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return out
