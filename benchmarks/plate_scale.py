"""Plates at scale: does opening and using a dataset of N images cost the same at N = 1,000 as at 100,000?

Usage (not run in CI)::

    python benchmarks/plate_scale.py                     # N = 1,000 / 10,000 / 100,000
    python benchmarks/plate_scale.py --sizes 1000 1000000 --repeats 3 --root /tmp/plates
    python benchmarks/plate_scale.py --sizes 1000 100000 1000000 --shape 1 8 8   # the million-image plate (tiny)

A plate is N images of 1x64x64 uint16 (``--shape``; image i is ``(arange(P) + 7 i) % 4096`` for P pixels, so every
child checks what it read) with two metadata columns, ``well`` (a string, 96 wells) and ``site`` (an int). Image i
is in well ``i % 96`` (site ``i // 96``: the wells interleaved, every row group holding all 96); with ``--by-well``,
in well ``i * 96 // N`` (site: its number in the well), written well by well as a plate is acquired (a well's
images in consecutive row groups). Ours is written by
``write_dataset`` with its defaults. The zarr-python peer is the representation a zarr user picks for a plate of
equal images: ONE array of shape (N, 1, 64, 64), one image per chunk, chunks grouped 1,024 to a shard file (the
sharding codec, so a million images are not a million files), with ``well`` and ``site`` as sibling arrays of the
same group (zarr has no table: a filter reads the column and compares in numpy). One array per image would
make ``len`` and a batch read O(N) group listings; one array is zarr's fastest fair layout here.

Every case runs in a fresh ``python`` process (library imported first, not timed), ``--repeats`` times, median:

- ``scan``: open the plate (``OMEArrowDataset.scan`` / ``zarr.open_group`` + the image array);
- ``open``: open + the first image opened, no pixels (``ds[0]``: its metadata and chunk rows / zarr: the array's
  shape);
- ``first``: open + the first image's pixels;
- ``len``: ``len(ds)`` after opening;
- ``get``: steady ``ds[i].to_numpy()`` on random images (after a warm-up; per image);
- ``read32``: a batch of 32 random images (``ds.read(idx)`` / orthogonal selection), steady;
- ``filter``: keep one well (``ds.filter({"well": w})``), its ``len`` and the first kept image's pixels;
- ``shard``: the images of rank 1 of 8 (``ds.select(range(1, N, 8))``) and the first one's pixels.

Every case also reports the growth of resident memory (RSS) from before the open to the end of the case.
Writing each plate (once, kept under ``--root``) is timed in a child process too, with its peak RSS (``write``);
with ``--baseline``, the baseline's ``write_dataset`` writes a plate of its own, which its ("before") cases read.
``--synthetic`` builds ours with ``plate_synthetic.py`` instead of ``write_dataset`` (the same layout, column by
column: a million images in seconds; ``write_dataset`` packs small images 1,024 to a row group too, but costs
about a millisecond of Python per image).
The table prints each case's time (and RSS for ``first``) per library, ours/zarr, and ours(N)/ours(smallest N)
(flat is about 1). The libraries run interleaved, repeat by repeat (ours, zarr, before, ours, ...), so the load of a
shared machine falls on each alike; ``--clock cpu`` times each case by the child's CPU time instead of the wall clock
(steadier on a loaded machine; what it leaves out is I/O wait and time spent waiting for a core).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plate_cases import CASES, run_case

WELLS = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13)]


SHAPE: tuple[int, ...] = (1, 64, 64)


def plate_image(i: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Image ``i`` of a plate: uint16 of ``shape`` (ZYX), different for every i."""
    size = int(np.prod(shape))
    return ((np.arange(size, dtype=np.int64) + 7 * i) % 4096).astype(np.uint16).reshape(shape)


def well_site(i: np.ndarray, n: int, by_well: bool) -> tuple[np.ndarray, np.ndarray]:
    """The well number (of 96) and site of images ``i`` of a plate of ``n`` (see the module's docstring)."""
    if not by_well:
        return i % 96, i // 96
    well = i * 96 // n
    return well, i - (well * n + 95) // 96  # (well * n + 95) // 96: the well's first image


def by_well() -> bool:
    """Whether this process's plates are written well by well (``--by-well``, passed to children by environment)."""
    return os.environ.get("PLATE_SCALE_BY_WELL") == "1"


def _batches(n: int, shape: tuple[int, ...], size: int = 1024):  # type: ignore[no-untyped-def]
    base = np.arange(int(np.prod(shape)), dtype=np.int64)[None, :]
    for start in range(0, n, size):
        i = np.arange(start, min(n, start + size), dtype=np.int64)[:, None]
        yield start, ((base + 7 * i) % 4096).astype(np.uint16).reshape(-1, *shape)


def write_ours(path: Path, n: int, shape: tuple[int, ...]) -> None:
    from ome_arrow_core import write_dataset

    def images():  # type: ignore[no-untyped-def]
        for _, block in _batches(n, shape):
            yield from block

    well, site = well_site(np.arange(n), n, by_well())
    meta = ({"well": WELLS[int(well[i])], "site": int(site[i])} for i in range(n))  # streamed, as the images
    write_dataset(images(), path, metadata=meta, progress=False)


def write_zarr(path: Path, n: int, shape: tuple[int, ...]) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="w")
    arr = group.create_array("images", shape=(n, *shape), dtype="uint16", chunks=(1, *shape), shards=(1024, *shape))
    for start, block in _batches(n, shape):
        arr[start : start + len(block)] = block
    import warnings

    well, site = well_site(np.arange(n), n, by_well())
    with warnings.catch_warnings():  # zarr warns that fixed-length strings have no v3 spec yet
        warnings.simplefilter("ignore")
        group.create_array("well", data=np.array(WELLS)[well])
    group.create_array("site", data=site.astype(np.int64))


def plates(
    root: Path,
    n: int,
    shape: tuple[int, ...],
    synthetic: bool = False,
    libs: tuple[str, ...] = ("ours", "zarr"),
    baseline: Path | None = None,
) -> tuple[dict[str, Path], dict[str, dict[str, float]]]:
    """The plates of ``n`` images under ``root`` (written once, each in a child process, timed; kept for later
    runs, with the write's time and peak RSS in ``<plate>.done``). With ``baseline`` and ``"before"`` in ``libs``
    ``write_dataset`` (or, ``synthetic``, plate_synthetic.py) of that source tree writes a plate of its own ("before"):
    each tree reads the manifest its own writer records."""
    root.mkdir(parents=True, exist_ok=True)
    tag = ("" if shape == (1, 64, 64) else "_" + "x".join(map(str, shape))) + ("_synthetic-packed" if synthetic else "")
    tag += "_by-well" if by_well() else ""
    ours, peer = root / f"plate{n}{tag}.ome.parquet", root / f"plate{n}{tag}.zarr"
    before = root / f"plate{n}{tag}.before.ome.parquet"
    writes: dict[str, dict[str, float]] = {}
    todo = [(k, p) for k, p in (("ours", ours), ("zarr", peer)) if k in libs]
    if "before" in libs and baseline is not None:  # written by that tree (synthetic: its own manifest's records)
        todo.append(("before", before))
    for lib, path in todo:
        done = path.with_name(path.name + ".done")
        if not done.exists() or not done.read_text().strip():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
            how = "synthetic" if synthetic and lib in ("ours", "before") else lib
            argv = [sys.executable, __file__, "--write", how, str(path), str(n), *map(str, shape)]
            if lib == "before":
                argv = [*argv[:3], "synthetic" if synthetic else "ours", *argv[4:], "--baseline", str(baseline)]
            ran = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
            if ran.returncode != 0:
                raise RuntimeError(f"writing {path} failed:\n{ran.stderr[-3000:]}")
            done.write_text(ran.stdout.strip().splitlines()[-1])
        writes[lib] = json.loads(done.read_text())
    return {"ours": ours, "zarr": peer, "before": before if "before" in writes else ours}, writes


def _write_child(lib: str, path: Path, n: int, shape: tuple[int, ...]) -> None:
    """Write one plate in this (child) process; print its time and peak RSS as JSON."""
    import resource
    import time

    t = time.perf_counter()
    if lib == "synthetic":
        sys.path.insert(0, str(Path(__file__).parent))
        from plate_synthetic import synthetic_plate

        synthetic_plate(path, n, shape)
    else:
        (write_ours if lib == "ours" else write_zarr)(path, n, shape)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ms": (time.perf_counter() - t) * 1e3, "rss_mib": peak}))


def measure(
    root: Path,
    sizes: list[int],
    repeats: int,
    libs: list[str],
    cases: list[str],
    baseline: Path | None,
    shape: tuple[int, ...] = SHAPE,
    synthetic: bool = False,
    clock: str = "wall",
) -> dict[tuple[str, int, str], dict[str, float]]:
    results: dict[tuple[str, int, str], dict[str, float]] = {}
    for n in sizes:
        paths, writes = plates(
            root, n, shape, synthetic, ("ours", *(k for k in ("zarr", "before") if k in libs)), baseline
        )
        for lib, took in writes.items():
            results[(lib, n, "write")] = took
        for case in cases:  # the libraries interleaved, repeat by repeat: a shared machine's load falls on each
            for lib in libs:
                run_case(lib, paths[lib], n, case, baseline, shape, clock)  # warm the page cache
            runs: dict[str, list[dict[str, float]]] = {lib: [] for lib in libs}
            for _ in range(repeats):
                for lib in libs:
                    runs[lib].append(run_case(lib, paths[lib], n, case, baseline, shape, clock))
            for lib in libs:
                results[(lib, n, case)] = {k: statistics.median(r[k] for r in runs[lib]) for k in runs[lib][0]}
                print(
                    f"  N={n:>9,} {lib:5} {case:7} "
                    + " ".join(f"{k}={v:.3f}" for k, v in results[(lib, n, case)].items()),
                    file=sys.stderr,
                    flush=True,
                )
    return results


def table(results: dict[tuple[str, int, str], dict[str, float]], sizes: list[int], cases: list[str]) -> str:
    def ms(r: dict[str, float] | None) -> str:
        return "-" if r is None else f"{r['ms']:.3f}" + (f" ({r['rss_mib']:.1f} MiB)" if "rss_mib" in r else "")

    def ratio(a: dict[str, float] | None, b: dict[str, float] | None) -> str:
        return "-" if a is None or b is None or b["ms"] <= 0 else f"{a['ms'] / b['ms']:.2f}"

    rows = [
        "| case | N | ours ms (RSS) | zarr ms (RSS) | before ms (RSS) | ours/zarr | before/zarr | ours(N)/ours(N0) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases:
        for n in sizes:
            ours, peer, old = (results.get((lib, n, case)) for lib in ("ours", "zarr", "before"))
            cells = [
                case,
                f"{n:,}",
                ms(ours),
                ms(peer),
                ms(old),
                ratio(ours, peer),
                ratio(old, peer),
                ratio(ours, results.get(("ours", sizes[0], case))),
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=Path("/tmp/ome-arrow-plate-scale"))
    parser.add_argument("--libs", nargs="+", default=["ours", "zarr"], help="ours, zarr, before (needs --baseline)")
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a source tree of ome-arrow-core measured as 'before' "
        "(e.g. a checkout of main), first on the child's path",
    )
    parser.add_argument(
        "--synthetic", action="store_true", help="build ours with plate_synthetic.py (a million images in seconds)"
    )
    parser.add_argument(
        "--by-well",
        action="store_true",
        help="write each well's images together (as a plate is acquired), not the wells interleaved",
    )
    parser.add_argument("--shape", type=int, nargs=3, default=list(SHAPE), help="ZYX of every image (1 64 64)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time each case by the wall clock (default) or by the child's CPU time (steadier on a loaded machine; "
        "I/O waits not counted)",
    )
    if "--write" in sys.argv:  # a child writing one plate
        args_ = sys.argv[sys.argv.index("--write") + 1 :]
        if "--baseline" in args_:  # write with that source tree's ome_arrow_core ("before")
            sys.path.insert(0, args_[args_.index("--baseline") + 1])
            args_ = args_[: args_.index("--baseline")]
        lib, path, n, *shape = args_
        _write_child(lib, Path(path), int(n), tuple(int(v) for v in shape))
        return
    args = parser.parse_args()
    if args.by_well:  # the writers and every case's child read it
        os.environ["PLATE_SCALE_BY_WELL"] = "1"
    libs = [*args.libs, *(["before"] if args.baseline and "before" not in args.libs else [])]
    shape = tuple(args.shape)
    results = measure(
        args.root, args.sizes, args.repeats, libs, args.cases, args.baseline, shape, args.synthetic, args.clock
    )
    how = "plate_synthetic.py" if args.synthetic else "write_dataset"
    print(
        f"images of {'x'.join(map(str, shape))} uint16 (ZYX); write (ours: {how}): once, in a child, peak RSS; "
        f"times: {args.clock} clock"
    )
    print(table(results, args.sizes, ["write", *args.cases]))


if __name__ == "__main__":
    main()
