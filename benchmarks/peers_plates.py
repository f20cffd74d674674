"""Plates and fresh-process cases for compare_peers.py.

A plate is N images of 1x64x64 uint16 (image i is ``(arange(4096) + 7 i) % 4096``, so a child process can check
what it read): ours written by ``write_dataset`` (defaults), zarr-python's as one group of N arrays named "0".."N-1"
(its default codec), tensorstore's as one zarr v3 array of shape (N, 1, 64, 64) chunked one image per chunk (its
default codec). Each measurement runs in a fresh ``python`` process that imports the library first, then times
open + first image (and the RSS growth it causes), ``ds[i]`` on random images and a read of 32 random images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from _common import fresh_env

HERE = Path(__file__).resolve().parent


def plate_image(i: int) -> np.ndarray:
    """Image ``i`` of a plate: 1x64x64 uint16, different for every i."""
    return ((np.arange(4096, dtype=np.int64) + 7 * i) % 4096).astype(np.uint16).reshape(1, 64, 64)


def write_plates(root: Path, n: int, peers: dict[str, bool]) -> dict[str, Path]:
    """Write the plate of ``n`` images for ours and each installed peer; their paths by library."""
    from ome_arrow_core import write_dataset

    paths = {"ours": root / f"plate{n}.ome-arrow"}
    write_dataset((plate_image(i) for i in range(n)), paths["ours"], progress=False)
    if peers["zarr"]:
        import zarr

        paths["zarr"] = root / f"plate{n}.zarr"
        group = zarr.open_group(str(paths["zarr"]), mode="w")
        for i in range(n):
            group.create_array(str(i), data=plate_image(i), chunks=(1, 64, 64))
    if peers["tensorstore"]:
        import tensorstore as ts

        paths["tensorstore"] = root / f"plate{n}.ts.zarr"
        store = ts.open(
            {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": str(paths["tensorstore"])},
                "metadata": {
                    "shape": [n, 1, 64, 64],
                    "data_type": "uint16",
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1, 64, 64]}},
                },
            },
            create=True,
            delete_existing=True,
        ).result()
        for start in range(0, n, 4096):
            stop = min(n, start + 4096)
            store[start:stop].write(np.stack([plate_image(i) for i in range(start, stop)])).result()
    return paths


# The child's code: library-specific open / get / read-many, then common timing. argv: path n seed.
_CHILD = r"""
import json, os, sys, time, statistics
import numpy as np
sys.path.insert(0, {here!r})
from peers_plates import plate_image
{imports}
path, n = sys.argv[1], int(sys.argv[2])
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
r0 = rss(); t0 = time.perf_counter()
ds = {open}
first = {get}(ds, 0)
first_ms = (time.perf_counter() - t0) * 1e3; first_rss = rss() - r0
assert np.array_equal(np.asarray(first).reshape(1, 64, 64), plate_image(0)), "wrong first image"
rng = np.random.default_rng(1)
picks = rng.integers(0, n, 400)
for i in picks[:20]:
    assert np.array_equal(np.asarray({get}(ds, int(i))).reshape(1, 64, 64), plate_image(int(i))), f"wrong image {{i}}"
runs = []
for rep in range(5):
    t = time.perf_counter()
    for i in picks[rep * 80:(rep + 1) * 80]:
        {get}(ds, int(i))
    runs.append((time.perf_counter() - t) * 1e3 / 80)
batches = [rng.choice(n, 32, replace=False) for _ in range(7)]
got = {many}(ds, batches[0])
assert np.array_equal(got.reshape(32, 64, 64), np.stack([plate_image(int(i)) for i in batches[0]]).reshape(32, 64, 64))
times = []
for b in batches[1:]:
    t = time.perf_counter(); {many}(ds, b); times.append((time.perf_counter() - t) * 1e3)
print(json.dumps({{"first_ms": first_ms, "first_rss_mib": first_rss, "get_ms": statistics.median(runs),
                  "read32_ms": statistics.median(times)}}))
"""

_LIBS: dict[str, dict[str, str]] = {
    "ours": {
        "imports": "from ome_arrow_core import OMEArrowDataset",
        "open": "OMEArrowDataset.scan(path)",
        "get": "(lambda d, i: d[i].to_numpy())",
        "many": "(lambda d, idx: d.read(idx))",
    },
    "zarr": {
        "imports": "import zarr",
        "open": "zarr.open_group(path, mode='r')",
        "get": "(lambda d, i: d[str(i)][...])",
        "many": "(lambda d, idx: np.stack([d[str(int(i))][...] for i in idx]))",
    },
    "tensorstore": {
        "imports": "import tensorstore as ts",
        "open": "ts.open({'driver': 'zarr3', 'kvstore': {'driver': 'file', 'path': path}}, read=True).result()",
        "get": "(lambda d, i: d[i].read().result())",
        "many": "(lambda d, idx: d[np.asarray(idx)].read().result())",
    },
}


def _child(code: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=1800, env=fresh_env()
    )
    if done.returncode != 0:
        raise RuntimeError(f"child process failed:\n{done.stderr[-3000:]}")
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def plate_cases(paths: dict[str, Path], n: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per library: medians over ``repeats`` fresh processes of first_ms, first_rss_mib, get_ms, read32_ms."""
    out: dict[str, dict[str, float]] = {}
    for lib, path in paths.items():
        code = _CHILD.format(here=str(HERE), **_LIBS[lib])
        _child(code, str(path), str(n))  # untimed: writes bytecode (ours is an editable install), warms the page cache
        runs = [_child(code, str(path), str(n)) for _ in range(repeats)]
        out[lib] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return out


# Import + first plane: everything from the first line of a fresh process (numpy's import included for all).
_FIRST_PLANE: dict[str, str] = {
    "ours": "from ome_arrow_core import OMEArrow\n"
    "p = OMEArrow.scan(path).tensor_view(t=0, c=0, z=0, layout='YX').to_numpy()",
    "tensorstore": "import tensorstore as ts\n"
    "p = ts.open({'driver': 'zarr3', 'kvstore': {'driver': 'file', 'path': path}}, read=True)"
    ".result()[0, 0, 0].read().result()",
    "zarr": "import zarr\np = zarr.open_array(path, mode='r')[0, 0, 0]",
    "tifffile": "import tifffile\np = tifffile.imread(path, key=0)",
    "raw pyarrow": "import sys\nsys.path.insert(0, HERE)\nfrom peers_libs import RawParquet\n"
    "from pathlib import Path\nimport pyarrow.parquet as pq\n"
    "p = RawParquet(Path(path)).read((0, 0, 0, slice(None), slice(None)), tuple(shape))",
}


def first_plane_cases(
    paths: dict[str, Path], shape: tuple[int, ...], expected_sum: int, repeats: int
) -> dict[str, float]:
    """Median ms of import + open + first plane (t=0, c=0, z=0) in a fresh process, per library."""
    out: dict[str, float] = {}
    for lib, path in paths.items():
        body = _FIRST_PLANE[lib].replace("HERE", repr(str(HERE))).replace("\n", "\n    ")
        code = (
            f"import time\nt0 = time.perf_counter()\nif True:\n    import sys\n    path = sys.argv[1]\n"
            f"    shape = {list(shape)!r}\n    {body}\n"
            f"ms = (time.perf_counter() - t0) * 1e3\nimport numpy, json\n"
            f"assert p.shape == tuple(shape[-2:]) and int(numpy.asarray(p).sum(dtype=numpy.int64)) == {expected_sum}\n"
            f"print(json.dumps({{'ms': ms}}))"
        )
        _child(code, str(path))  # untimed: writes bytecode (ours is an editable install) and warms the page cache
        out[lib] = float(np.median([_child(code, str(path))["ms"] for _ in range(repeats)]))
    return out
