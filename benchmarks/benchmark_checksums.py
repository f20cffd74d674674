"""What checking chunk checksums costs: checksum algorithms, Parquet page checksums, reads with verify on and off.

    python benchmarks/benchmark_checksums.py [--repeats 40]

1. Checksum speed on a 512x512 uint16 chunk (512 KiB) and a 2048x2048 uint16 plane (8 MiB):
   ``zlib.crc32`` (stdlib), XXH3-64 (``xxhash``, what ome-arrow-core uses) and CRC32C
   (``google-crc32c``, if installed).
2. Parquet page checksums: writing (``write_page_checksum``) and reading the plane's 16 chunks
   with ``page_checksum_verification``.
3. Reads through ome-arrow-core with ``verify=True`` and ``verify=False`` (interleaved, best of
   ``--repeats``): a whole plane (16 chunks) and a 256x256 crop (one chunk), lz4 / zstd / none.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ome_arrow_core import OMEArrow


def best(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` runs, ms (the machine may be shared: the minimum is the cost)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def algorithms(plane: np.ndarray, repeats: int) -> None:
    fns: dict[str, Callable[[Any], int]] = {"zlib.crc32": zlib.crc32}
    try:
        import xxhash

        fns["xxh3_64 (xxhash)"] = xxhash.xxh3_64_intdigest
    except ImportError:
        pass
    try:
        import google_crc32c

        fns["crc32c (google-crc32c)"] = lambda b: google_crc32c.value(bytes(b))  # needs bytes: copy included
    except ImportError:
        pass
    for name, arr in (("512x512 uint16 chunk", np.ascontiguousarray(plane[:512, :512])), ("8 MiB plane", plane)):
        view = memoryview(arr).cast("B")
        for algo, fn in fns.items():
            ms = best(lambda: fn(view), repeats)
            print(f"{name:22s} {algo:24s} {ms:8.3f} ms  {arr.nbytes / ms / 1e6:6.1f} GB/s")


def page_checksums(plane: np.ndarray, root: Path, repeats: int) -> None:
    blobs = [
        np.ascontiguousarray(plane[y : y + 512, x : x + 512]).tobytes()
        for y in range(0, 2048, 512)
        for x in range(0, 2048, 512)
    ]
    table = pa.table({"pixel_bytes": pa.array(blobs, pa.large_binary())})
    for codec in ("lz4", "zstd", "none"):
        for on in (False, True):
            file = root / f"{codec}-{on}.parquet"

            def write(file: Path = file, codec: str = codec, on: bool = on) -> None:
                pq.write_table(table, file, compression=codec, row_group_size=1, write_page_checksum=on)

            w = best(write, max(3, repeats // 10))
            pf = pq.ParquetFile(file, page_checksum_verification=on)
            r = best(lambda: pf.read_row_groups(list(range(16)), columns=["pixel_bytes"], use_threads=False), repeats)
            state = "on " if on else "off"
            print(f"parquet {codec:4s} page checksums {state}: write {w:7.2f} ms, read plane {r:7.2f} ms")


def reads(plane: np.ndarray, root: Path, repeats: int) -> None:
    stack = np.stack([plane] * 4)
    for codec in ("lz4", "zstd", None):
        out = root / f"{codec}.ome.parquet"
        OMEArrow(stack, "ZYX").export("parquet", out, compression=codec, chunk_shape=(1, 512, 512))
        imgs = {v: OMEArrow.scan(out, verify=v) for v in (True, False)}
        for what, kw in (("plane", {}), ("256x256 crop", {"roi": (600, 600, 256, 256)})):
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(repeats):
                for v in (True, False):
                    t0 = time.perf_counter()
                    imgs[v].tensor_view(z=2, **kw).to_numpy()
                    times[v].append((time.perf_counter() - t0) * 1e3)
            on, off = min(times[True]), min(times[False])
            print(
                f"read {codec!s:4s} {what:13s}: verify on {on:7.3f} ms, off {off:7.3f} ms "
                f"(+{on - off:6.3f} ms, {100 * (on - off) / off:5.1f}%)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    plane = (rng.normal(1000, 50, (2048, 2048)) + np.linspace(0, 3000, 2048)[None, :]).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        algorithms(plane, args.repeats)
        page_checksums(plane, Path(tmp), args.repeats)
        reads(plane, Path(tmp), args.repeats)


if __name__ == "__main__":
    main()
