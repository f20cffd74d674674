"""Whole-table hashing by block size and reader: a file of ~1 GB (page cache warm) hashed with XXH3-64 in blocks.

    python benchmarks/hash_blocks.py [--mib 1024] [--rounds 9] [--path /tmp/hash_blocks.bin]

Variants, interleaved round by round, each taking each place in a round in turn (one process; the first round warms the page cache and is dropped):
``readinto-4M`` (``table_sums``'s whole-table reader: ``readinto`` into a 4 MiB buffer), ``preadv-256K``
(``group_measure``'s range reader: ``os.preadv`` into a 256 KiB buffer), ``preadv-4M`` (the range reader with a
4 MiB buffer), and with ``--tree DIR`` the tree's ``table_sums.file_digest`` as ``file_digest``. Prints the median
CPU and wall seconds of each and their ratio to ``readinto-4M``, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def readinto_blocks(path: Path, size: int) -> Iterator[memoryview]:
    buf = bytearray(size)
    view = memoryview(buf)
    with open(path, "rb") as fh:
        while n := fh.readinto(buf):
            yield view[:n]


def preadv_blocks(path: Path, size: int) -> Iterator[memoryview]:
    view = memoryview(bytearray(size))
    fd = os.open(path, os.O_RDONLY)
    try:
        stop, at = os.fstat(fd).st_size, 0
        while at < stop:
            got = os.preadv(fd, [view[: min(stop - at, len(view))]], at)
            if got <= 0:
                break
            yield view[:got]
            at += got
    finally:
        os.close(fd)


def hashed(blocks: Iterator[memoryview]) -> str:
    import xxhash

    h = xxhash.xxh3_64()
    for b in blocks:
        h.update(b)
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--path", type=Path, default=Path("/tmp/hash_blocks.bin"))
    parser.add_argument("--tree", type=Path, default=None, help="also time this tree's table_sums.file_digest")
    args = parser.parse_args()
    if not args.path.exists() or args.path.stat().st_size != args.mib << 20:
        with open(args.path, "wb") as fh:
            for _ in range(args.mib):
                fh.write(os.urandom(1 << 20))
    variants: dict[str, Callable[[], str]] = {
        "readinto-4M": lambda: hashed(readinto_blocks(args.path, 4 << 20)),
        "preadv-256K": lambda: hashed(preadv_blocks(args.path, 256 << 10)),
        "preadv-4M": lambda: hashed(preadv_blocks(args.path, 4 << 20)),
    }
    if args.tree is not None:
        sys.path.insert(0, str(args.tree))
        from ome_arrow_core.typed_chunk.table_sums import file_digest

        variants["file_digest"] = lambda: file_digest(args.path)
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    digests = set()
    for r in range(args.rounds + 1):
        names = list(variants)
        order = names[r % len(names) :] + names[: r % len(names)]  # each variant takes each place in turn
        for name in order:
            c0, w0 = time.process_time(), time.perf_counter()
            digests.add(variants[name]())
            c1, w1 = time.process_time(), time.perf_counter()
            if r:
                cpu[name].append(c1 - c0)
                wall[name].append(w1 - w0)
    assert len(digests) == 1, digests
    base_cpu, base_wall = statistics.median(cpu["readinto-4M"]), statistics.median(wall["readinto-4M"])
    print(f"{args.mib} MiB, {args.rounds} rounds; load {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"{'variant':<14} {'cpu s':>8} {'wall s':>8} {'cpu x':>7} {'wall x':>7}")
    for name in variants:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"{name:<14} {c:>8.3f} {w:>8.3f} {c / base_cpu:>7.3f} {w / base_wall:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
