"""Reading an OME-Zarr store with ours (ome-arrow-zarr) against zarr-python 3 and tensorstore, same store, one run.

    python benchmarks/zarr_peers.py [--size 2048] [--planes 16] [--repeats 7] [--compression zstd|none]

The store (1x1xZxSxS uint16 camera-like noise, default 16x2048x2048, chunks 1x1x1x512x512) is written once by
``export("ome-zarr")`` (NGFF 0.5, Zarr v3). Each library then reads level 0 of it from a warm page cache:

- scan: open the store (ours: ``OMEArrow.scan``: group and level metadata, axes, scales; zarr: ``zarr.open_group``
  and the array; tensorstore: ``ts.open`` of the level-0 array);
- one plane: a full SxS plane at z = Z/2 (ours: ``tensor_view(z=...).to_numpy()`` through the open handle);
- one crop: a 300x300 crop straddling chunk borders (at S/2-24).

Figures are the median of the repeats in ms; ratios are ours / peer (lower is better). Every first result is
checked against the source array. Ours also reports the chunks each selection read (``source.chunks_read``).
Last, what checking our chunk checksums costs: the plane, the crop and the whole stack read with
``verify=True`` (the default) and ``verify=False``, in one handle each, alternating.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    first = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), first


def _image(size: int, planes: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(400, 60, (1, 1, planes, size, size)).clip(0, 4095)).astype(np.uint16)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--planes", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--compression", choices=["zstd", "none"], default="zstd")
    args = ap.parse_args(argv)

    import zarr

    from ome_arrow_core import OMEArrow

    try:
        import tensorstore as ts
    except ImportError:  # pragma: no cover - optional peer
        ts = None
    s, z = args.size, args.planes
    data = _image(s, z)  # TCZYX
    tmp = Path(tempfile.mkdtemp(prefix="zarr-peers-"))
    try:
        store = tmp / "bench.ome.zarr"
        comp = None if args.compression == "none" else "zstd"
        OMEArrow(data, "TCZYX").export("ome-zarr", store, chunk_shape=(1, 512, 512), compression=comp)
        mid, c0 = z // 2, s // 2 - 24
        want = {"one plane": data[0, 0, mid], "one crop": data[0, 0, mid, c0 : c0 + 300, c0 : c0 + 300]}
        rows: dict[str, dict[str, float]] = {"scan": {}, "one plane": {}, "one crop": {}}
        chunks: dict[str, int] = {}

        img = OMEArrow.scan(store)
        rows["scan"]["ours"], _ = _median_ms(lambda: OMEArrow.scan(store), args.repeats)

        def ours_read(case: str) -> np.ndarray:
            roi = None if case == "one plane" else (c0, c0, 300, 300)
            return img.tensor_view(z=mid, roi=roi, layout="YX").to_numpy()

        for case in ("one plane", "one crop"):
            before = img.source.chunks_read
            np.testing.assert_array_equal(ours_read(case), want[case])
            chunks[case] = img.source.chunks_read - before
            rows[case]["ours"], _ = _median_ms(lambda c=case: ours_read(c), args.repeats)

        arr = zarr.open_group(store, mode="r")["0"]
        rows["scan"]["zarr"], _ = _median_ms(lambda: zarr.open_group(store, mode="r")["0"], args.repeats)
        reads = {"one plane": (0, 0, mid), "one crop": (0, 0, mid, slice(c0, c0 + 300), slice(c0, c0 + 300))}
        for case, ix in reads.items():
            t, got = _median_ms(lambda ix=ix: arr[ix], args.repeats)
            np.testing.assert_array_equal(got, want[case])
            rows[case]["zarr"] = t
        if ts is not None:
            spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / "0")}}
            tsa = ts.open(spec, read=True).result()
            rows["scan"]["tensorstore"], _ = _median_ms(lambda: ts.open(spec, read=True).result(), args.repeats)
            for case, ix in reads.items():
                t, got = _median_ms(lambda ix=ix: tsa[ix].read().result(), args.repeats)
                np.testing.assert_array_equal(got, want[case])
                rows[case]["tensorstore"] = t
        verify_rows = _verify_cost(store, data, mid, c0, args.repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"OME-Zarr 1x1x{z}x{s}x{s} uint16, chunks 512x512, {args.compression}; median of {args.repeats}, ms")
    peers = ["zarr"] + (["tensorstore"] if ts is not None else [])
    print(
        f"{'case':<10} {'ours':>8} "
        + " ".join(f"{p:>11}" for p in peers)
        + " "
        + " ".join(f"{'ours/' + p:>17}" for p in peers)
        + "  chunks read (ours)"
    )
    for case, r in rows.items():
        ratios = " ".join(f"{r['ours'] / r[p]:>16.2f}x" for p in peers)
        print(
            f"{case:<10} {r['ours']:>8.2f} "
            + " ".join(f"{r[p]:>11.2f}" for p in peers)
            + " "
            + ratios
            + f"  {chunks.get(case, 0)}"
        )
    print("chunk checksum verification (ours), median ms")
    print(f"{'case':<12} {'verify=True':>12} {'verify=False':>13} {'cost':>8}")
    for case, (on, off) in verify_rows.items():
        if case.startswith("hash"):  # the checksums alone, over every stored chunk of the stack (bytes in memory)
            print(f"{case}: {on:.2f} ms = {on / verify_rows['whole stack'][1] * 100:.2f}% of the whole-stack read")
            continue
        print(f"{case:<12} {on:>12.2f} {off:>13.2f} {(on / off - 1) * 100:>7.1f}%")
    return 0


def _verify_cost(store: Path, data: np.ndarray, mid: int, c0: int, repeats: int) -> dict[str, tuple[float, float]]:
    """(verify=True, verify=False) median ms of a plane, a crop and the whole stack, measured alternately."""
    from ome_arrow_core import OMEArrow

    handles = {True: OMEArrow.scan(store, verify=True), False: OMEArrow.scan(store, verify=False)}
    assert handles[True].info()["chunk_checksums"], "the store was written without chunk checksums"
    cases = {"one plane": {"z": mid}, "one crop": {"z": mid, "roi": (c0, c0, 300, 300)}, "whole stack": {}}
    out = {}
    for case, kw in cases.items():
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for flag, img in handles.items():
                t0 = time.perf_counter()
                got = img.tensor_view(layout="ZYX" if case == "whole stack" else "YX", **kw).to_numpy()
                times[flag].append((time.perf_counter() - t0) * 1e3)
        want = data[0, 0] if case == "whole stack" else data[0, 0, mid]
        if case == "one crop":
            want = want[c0 : c0 + 300, c0 : c0 + 300]
        np.testing.assert_array_equal(got, want)
        out[case] = (statistics.median(times[True]), statistics.median(times[False]))
    from ome_arrow_zarr.integrity import digest

    blobs = [p.read_bytes() for p in (store / "0").rglob("*") if p.is_file() and p.name != "zarr.json"]
    hashing = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for b in blobs:
            digest(b)
        hashing.append((time.perf_counter() - t0) * 1e3)
    out[f"hash {len(blobs)} chunks"] = (statistics.median(hashing), float("nan"))
    return out


if __name__ == "__main__":
    sys.exit(main())
