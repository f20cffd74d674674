"""Ours against tensorstore, zarr-python 3, tifffile, raw pyarrow and memcpy on the same image, in one run.

    python benchmarks/compare_peers.py [--repeats 5] [--plates 1000,10000] [--huge-plate] [--json-out out.json]
    python benchmarks/compare_peers.py --quick        # CI canary: small image, N=200, checks pixels, < 60 s
    python benchmarks/compare_peers.py --quick --repeats 9 --heavy-repeats 5   # the small image, more repeats
    python benchmarks/compare_peers.py --write-only --write-repeats 5         # only the writing case
    python benchmarks/compare_peers.py --quick --first-plane-only --process-repeats 9  # import + first plane
    python benchmarks/compare_peers.py --cuda     # require the CUDA cases (peers_cuda.py; auto when a GPU is seen)

Image: 1xCxZxSxS uint16 (default 1x2x16x2048x2048, 256 MiB) of 12-bit camera-like noise (peers_libs.camera_image),
TCZYX. Each library writes it its own way, then reads it back from a warm page cache; every figure is the median of
the repeats (``--light-repeats``, 9 with --quick, for the crops, the Z column and open + crop, where more samples
cost nothing and two would let a peer's best of six configurations win on noise), and every library's first result
of each case is checked against numpy's slice of the source array (wrong pixels fail the run, in every mode).

- ours: ome_arrow_core with its defaults, ``OMEArrow(arr).export("parquet", path)``, read through a handle
  ``OMEArrow.scan(path)`` opened once, ``.tensor_view(...).to_numpy()`` per read (checksums checked, the default).
- tensorstore, zarr: zarr v3 arrays, each library writing and reading its own, in six configurations: chunks
  1x1x1x256x256 and 1x1x1x512x512, each raw, zstd (level 3) and blosc-lz4 (clevel 5, byte shuffle). Each case
  reports the configuration that was fastest for that library (in brackets).
- tifffile: an uncompressed OME-TIFF written by tifffile, read as copies of slices of ``tifffile.memmap``.
- raw pyarrow: our own chunks.parquet read with ``ParquetFile.read_row_groups`` (the chunks that touch the
  selection) and placed with numpy slicing: the Parquet floor under ours (no checksums).
- memcpy: a numpy copy of the same selection from the in-memory source array.

Cases: one full SxS plane; one 256x256 crop aligned to both chunk grids (at 512, 512); one 300x300 crop that
straddles chunk borders (at S/2-24); a Zx256x256 column through every z; open + 256x256 crop (the handle opened
inside the timing); 256x256 tiles streamed over every plane (ours: ``iter_dlpack(tile_size=(256, 256),
prefetch=2)`` per plane, each tile taken with ``numpy.from_dlpack``; peers: one read per tile); the whole image;
writing the image (each library once untimed first, then ``--write-repeats`` timed writes over its own previous
copy, each replacing it as that library does; tensorstore fsyncs each chunk file (its default), zarr and ours do not:
our rename-into-place keeps the old or the new copy whole if the process dies; OME_ARROW_CORE_FSYNC=1 adds power loss). Plates (peers_plates.py): N images of 1x64x64 in a fresh process: open + first image (ms and
RSS growth), ``ds[i]`` steady state, a read of 32 random images. Import + first plane in a fresh process
(each library's child runs once untimed first, also with --quick: it writes bytecode, which an editable install
of ours lacks until then, and warms the page cache).
CUDA cases (peers_cuda.py, on our file's c=0 planes), when a CUDA device is seen or ``--cuda`` requires one: one plane
and a 256x256 tile stream to the device, ours against cupy.asarray and pinned torch copies, as GB/s and x pinned
bandwidth; without a device one line says they were skipped (``--no-cuda``: not even looked for).
Three ratio columns: ours / the fastest of tensorstore, zarr and tifffile, ours / the faster of tensorstore and
zarr (the goal's yardstick), and the same by process CPU time (all threads) instead of wall time; each names the
library. Times are ms; plate open rows add the RSS growth.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_cuda
import peers_libs as L
from _common import table
from peers_bench import Bench, Fn, equal_to
from peers_plates import first_plane_cases, plate_cases, write_plates
from peers_table import LIBS, RATIOS, markdown, rows_of

from ome_arrow_core import OMEArrow


def open_and_read(open_: Callable[[Path], Any], reader: Callable[[Any], L.Reader], path: Path, idx: L.Index) -> Any:
    """Open ``path`` and read ``idx`` (the open is part of the timing)."""
    return reader(open_(path))(idx)


def run(args: argparse.Namespace, tmp: Path) -> Bench:
    installed = {
        "tensorstore": L.available("tensorstore"),
        "zarr": L.available("zarr"),
        "tifffile": L.available("tifffile"),
    }
    bench = Bench(args.repeats, installed, warmup=not args.quick)
    shape = (1, args.c, args.z, args.size, args.size)
    t0 = time.perf_counter()
    arr = L.camera_image(shape)
    print(
        f"image {'x'.join(map(str, shape))} uint16 ({arr.nbytes / 2**20:.0f} MiB) made in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    ours_p, tiff_p = tmp / "ours.ome.parquet", tmp / "image.ome.tif"
    stores = {(lib, cfg): tmp / f"{lib}-{cfg[0]}-{cfg[1]}.zarr" for lib in ("tensorstore", "zarr") for cfg in L.CONFIGS}
    writers = {"tensorstore": L.ts_write, "zarr": L.zarr_write}
    openers: dict[str, tuple[Callable[[Path], Any], Callable[[Any], L.Reader]]] = {
        "tensorstore": (L.ts_open, L.ts_reader),
        "zarr": (L.zarr_open, L.zarr_reader),
    }

    def cfg(c: tuple[int, str]) -> str:
        return f"{c[0]} {c[1]}"

    # -- writing (also makes every file the reads below use, so the read checks cover the writes)
    wr: dict[str, list[tuple[str, Fn]]] = {
        "ours": [("", lambda: OMEArrow(arr).export("parquet", ours_p))],
        "tifffile": [("", lambda: L.tiff_write(arr, tiff_p))],
        "memcpy": [("", lambda: arr.copy())],
    }
    for lib, write in writers.items():
        wr[lib] = [(cfg(c), partial(write, arr, stores[lib, c], c[0], c[1])) for c in L.CONFIGS]
    # always one untimed write first (also in --quick): the first write of a process imports and sets up each
    # library's writer (pyarrow's Parquet writer: over a second here), which is not what writing an image costs
    bench.case("writing the image", wr, None, repeats=args.write_repeats, warmup=True)
    if args.write_only:
        return bench
    if args.first_plane_only:
        first_plane_case(bench, args, installed, stores, shape, ours_p, tiff_p, int(arr[0, 0, 0].sum(dtype=np.int64)))
        return bench

    img = OMEArrow.scan(ours_p)
    raw = L.RawParquet(ours_p)
    readers: dict[str, list[tuple[str, L.Reader]]] = {
        "ours": [("", lambda idx: L.ours_read(img, idx))],
        "raw pyarrow": [("", lambda idx: raw.read(idx, shape))],
        "memcpy": [("", lambda idx: arr[idx].copy())],
    }
    if installed["tifffile"]:
        readers["tifffile"] = [("", L.tiff_reader(tiff_p, shape))]
    for lib, (open_, reader) in openers.items():
        if installed[lib]:
            readers[lib] = [(cfg(c), reader(open_(stores[lib, c]))) for c in L.CONFIGS]

    def read_case(name: str, idx: L.Index, repeats: int | None = None) -> None:
        variants: dict[str, list[tuple[str, Fn]]] = {
            lib: [(c, partial(r, idx)) for c, r in rs] for lib, rs in readers.items()
        }
        bench.case(name, variants, equal_to(arr[idx]), repeats)

    s, zm, o = args.size, args.z // 2, args.size // 2 - 24
    crop = (0, 1, zm, slice(512, 768), slice(512, 768))
    read_case(f"one full {s}x{s} plane", (0, 1, zm, slice(None), slice(None)))
    light = args.light_repeats or args.repeats  # sub-millisecond cases: more samples cost nothing
    read_case("one 256x256 aligned crop", crop, light)
    read_case("one 300x300 unaligned crop", (0, 1, zm, slice(o, o + 300), slice(o, o + 300)), light)
    read_case(f"a {args.z}x256x256 Z column", (0, 1, slice(None), slice(512, 768), slice(512, 768)), light)

    opened: dict[str, list[tuple[str, Fn]]] = {
        "ours": [
            (
                "",
                lambda: (
                    OMEArrow.scan(ours_p).tensor_view(t=0, c=1, z=zm, roi=(512, 512, 256, 256), layout="YX").to_numpy()
                ),
            )
        ],
        "raw pyarrow": [("", lambda: L.RawParquet(ours_p).read(crop, shape))],
        "tifffile": [("", lambda: L.tiff_reader(tiff_p, shape)(crop))],
    }
    for lib, (open_, reader) in openers.items():
        opened[lib] = [(cfg(c), partial(open_and_read, open_, reader, stores[lib, c], crop)) for c in L.CONFIGS]
    bench.case("open + one 256x256 aligned crop", opened, equal_to(arr[crop]), light)

    planes = [(0, c, z) for c in range(args.c) for z in range(args.z)]
    tiles = [
        (t, c, z, slice(y, y + 256), slice(x, x + 256))
        for t, c, z in planes
        for y in range(0, s, 256)
        for x in range(0, s, 256)
    ]

    def drain(make: Callable[[], Iterator[np.ndarray]]) -> Fn:
        return lambda: collections.deque(make(), maxlen=0)

    def check_tiles(make: Callable[[], Iterator[np.ndarray]]) -> Fn:
        def run_and_check() -> None:
            n = 0
            for n, (got, idx) in enumerate(zip(make(), tiles, strict=True), 1):
                equal_to(arr[idx])(got)
            assert n == len(tiles)

        return run_and_check

    makers: dict[str, list[tuple[str, Callable[[], Iterator[np.ndarray]]]]] = {
        "ours": [("", lambda: L.ours_tiles(img, planes, 256))],
        "memcpy": [("", lambda: (arr[idx].copy() for idx in tiles))],
    }
    for lib, rs in readers.items():
        if lib not in makers:
            makers[lib] = [(c, partial(L.peer_tiles, r, planes, s, s, 256)) for c, r in rs]
    for lib, ms in makers.items():  # check every tile of every library once (untimed), then time the stream
        for _, make in ms:
            if lib != "memcpy":
                try:
                    check_tiles(make)()
                except AssertionError as exc:
                    raise AssertionError(f"tiles: {lib} returned wrong pixels: {exc}") from exc
    bench.case(
        f"256x256 tiles over every plane ({len(tiles)} tiles)",
        {lib: [(c, drain(m)) for c, m in ms] for lib, ms in makers.items()},
        None,
        args.heavy_repeats,
        warmup=False,
    )  # the check above was the warm-up
    read_case("the whole image", (slice(None),) * 5, args.heavy_repeats)
    if args.cuda != "off":
        bench.cuda_rows = cuda_cases(args, ours_p, arr)
    expected = int(arr[0, 0, 0].sum(dtype=np.int64))
    del arr

    # -- fresh processes: import + first plane, then plates
    first_plane_case(bench, args, installed, stores, shape, ours_p, tiff_p, expected)
    for n in args.plates:
        t0 = time.perf_counter()
        paths = write_plates(tmp, n, installed)
        print(f"plate N={n} written in {time.perf_counter() - t0:.1f} s", flush=True)
        got = plate_cases(paths, n, args.process_repeats)
        for key, label in (
            ("first", "open + first image, fresh process"),
            ("get", "ds[i] steady state"),
            ("read32", "read 32 random images"),
        ):
            res: dict[str, Any] = {lib: None for lib in LIBS}
            for lib, r in got.items():
                res[lib] = {"ms": r[f"{key}_ms"]} | ({"rss_mib": r["first_rss_mib"]} if key == "first" else {})
            bench.add(f"plate N={n}: {label}", res)
        for p in paths.values():
            shutil.rmtree(p, ignore_errors=True)
    return bench


def cuda_cases(args: argparse.Namespace, ours_p: Path, arr: np.ndarray) -> list[dict[str, Any]]:
    """peers_cuda's cases on our file (c=0) when a CUDA device is seen (``--cuda``: checked in main), else none."""
    seen = any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))
    device, why = peers_cuda.find_device() if seen or args.cuda == "on" else (None, "no /dev/nvidia*")
    if device is None:
        print(f"{peers_cuda.SKIP} ({why})", flush=True)
        return []
    rows = peers_cuda.run_cases(ours_p, arr, args.repeats)
    print(peers_cuda.report(rows, device), flush=True)
    return rows


def first_plane_case(
    bench: Bench,
    args: argparse.Namespace,
    installed: dict[str, bool],
    stores: dict[tuple[str, tuple[int, str]], Path],
    shape: tuple[int, ...],
    ours_p: Path,
    tiff_p: Path,
    expected: int,
) -> None:
    """Import + first plane (t=0, c=0, z=0) in fresh processes, each library's files as written above."""
    first_paths = {"ours": ours_p, "raw pyarrow": ours_p}
    if installed["tifffile"]:
        first_paths["tifffile"] = tiff_p
    for lib in ("tensorstore", "zarr"):
        if installed[lib]:
            first_paths[lib] = stores[lib, (512, "raw")]
    firsts = first_plane_cases(first_paths, shape, expected, args.process_repeats)
    bench.add(
        "import + first plane, fresh process (peers: 512 raw)",
        {lib: ({"ms": firsts[lib]} if lib in firsts else None) for lib in LIBS},
    )


def publish(bench: Bench, args: argparse.Namespace, started: float) -> None:
    """Print the table (and Markdown), write the JSON report."""
    cells = rows_of(bench.rows)
    print(table([("case", *LIBS, *RATIOS), *(tuple(r) for r in cells)]))
    if args.markdown:
        print(markdown(cells))
    missing = [lib for lib, ok in bench.installed.items() if not ok]
    if missing:
        print(f"not installed: {', '.join(missing)} (pip install -e '.[bench]')", file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.0f} s; pixels of every library checked against numpy", flush=True)
    if args.json_out:
        meta = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "argv": sys.argv[1:],
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "versions": _versions(),
            "shape": [1, args.c, args.z, args.size, args.size],
        }
        out = {"meta": meta, "rows": bench.rows, "cuda": bench.cuda_rows}
        args.json_out.write_text(json.dumps(out, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048, help="Y and X (a multiple of 512, at least 1024)")
    p.add_argument("--z", type=int, default=16)
    p.add_argument("--c", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7, help="repeats of each read (median reported)")
    p.add_argument(
        "--light-repeats", type=int, default=0, help="repeats of the crops, Z column and open + crop (0: --repeats)"
    )
    p.add_argument("--heavy-repeats", type=int, default=3, help="repeats of the tile stream and the whole image")
    p.add_argument("--write-repeats", type=int, default=3, help="timed writes of each library (after one untimed)")
    p.add_argument("--write-only", action="store_true", help="only the writing case (A/B of a writer change)")
    p.add_argument("--first-plane-only", action="store_true", help="only the writing and import + first plane cases")
    p.add_argument("--process-repeats", type=int, default=3, help="fresh processes per plate/import case")
    p.add_argument("--plates", default="1000,10000", help="comma-separated plate sizes N")
    p.add_argument("--huge-plate", action="store_true", help="add N=100000 (zarr writes 100000 arrays: slow)")
    p.add_argument("--quick", action="store_true", help="CI canary: 1x2x4x1024x1024, N=200, few repeats")
    p.add_argument("--cuda", action="store_const", const="on", default="auto", help="require the CUDA cases")
    p.add_argument("--no-cuda", dest="cuda", action="store_const", const="off", help="skip the CUDA cases")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    if args.quick:  # smaller defaults; options given on the command line still win
        given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]) if a.startswith("--")}
        quick = {
            "size": 1024,
            "z": 4,
            "repeats": 2,
            "light_repeats": 9,
            "heavy_repeats": 1,
            "write_repeats": 3,
            "process_repeats": 1,
        }
        for name, value in quick.items():
            if "--" + name.replace("_", "-") not in given:
                setattr(args, name, value)
        if "--plates" not in given:
            args.plates = "200"
    args.plates = [int(n) for n in str(args.plates).split(",") if n] + ([100_000] if args.huge_plate else [])
    if args.size % 512 or args.size < 1024 or args.c < 2:
        p.error("--size must be a multiple of 512 and at least 1024; --c at least 2")
    if args.cuda == "on" and peers_cuda.find_device()[0] is None:
        p.error(f"--cuda: no CUDA device ({peers_cuda.find_device()[1]})")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compare_peers_") as d:
        publish(run(args, Path(d)), args, started)  # before the (slow) removal of the files
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("ome-arrow-core", "numpy", "pyarrow", "tensorstore", "zarr", "tifffile"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


if __name__ == "__main__":
    sys.exit(main())
