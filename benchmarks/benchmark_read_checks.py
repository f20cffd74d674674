"""What the read cross-checks cost: the chunk rows a read returns compared with the index.

    python benchmarks/benchmark_read_checks.py [--repeats 1000]

On one 2048x2048 uint16 plane (16 chunks of 512x512, one row group each), interleaved in one
process, CPU time of the reading thread (best and first quartile of ``--repeats``), the reads
and checks the reader does (``ReadCheck``) without the rest of it:

1. before: the Parquet read of ``pixel_bytes`` alone (what the reader did before the checks);
2. now: ``pixel_bytes`` with ``chunk_id``, then the check (every read);
3. first read: also ``dtype``, ``image_id``, coordinates and shapes, then the full check (the
   first read of each chunk row in a process).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ome_arrow_core import write_dataset
from ome_arrow_core.typed_chunk.readcheck import AUDITED, ReadCheck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(
            [np.random.default_rng(0).integers(0, 65535, (2048, 2048), dtype=np.uint16)], Path(tmp) / "plane"
        )
        index = pq.read_table(root / "index.parquet")
        col = {n: index.column(n).to_numpy() for n in index.column_names if n not in ("image_id", "fragment_path")}
        n = index.num_rows
        check = ReadCheck(
            root,
            str(root / "chunks.parquet"),
            col["row_group_id"].astype(np.int64),
            col["row_index_in_group"].astype(np.int64),
            col["chunk_id"].astype(np.int64),
            ["uint16"] * n,
            np.zeros(n, np.int64),
            ["index.parquet"],
            np.stack([col[c] for c in AUDITED[2:]], axis=1),
            index.column("image_id").to_pylist(),
        )
        chunks = pq.ParquetFile(root / "chunks.parquet")
        group_rows = np.array([chunks.metadata.row_group(i).num_rows for i in range(chunks.num_row_groups)])
        groups = np.arange(len(group_rows))
        first = np.cumsum(np.r_[0, group_rows[:-1]])

        def read(columns: list[str]) -> None:
            table = chunks.read_row_groups(groups.tolist(), columns=columns, use_threads=False)
            if len(columns) > 1:
                check.check(groups, group_rows, first, table)

        def before() -> None:
            read(["pixel_bytes"])

        def now() -> None:
            read(["chunk_id", "pixel_bytes"])

        def first_read() -> None:
            check.audited[:] = False
            read([*AUDITED, "chunk_id", "pixel_bytes"])

        runs: dict[str, tuple[Callable[[], None], list[float]]] = {
            "before: pixel_bytes": (before, []),
            "now: + chunk_id, check": (now, []),
            "first read: + dtype, image_id, geometry": (first_read, []),
        }
        for _ in range(args.repeats):
            for fn, times in runs.values():
                t0 = time.thread_time()
                fn()
                times.append(time.thread_time() - t0)
        base: tuple[float, float] | None = None
        for name, (_, times) in runs.items():
            times.sort()
            best, q1 = times[0] * 1e3, times[len(times) // 4] * 1e3
            base = base or (best, q1)
            print(f"{name:42s} best {best:6.3f} ms  p25 {q1:6.3f} ms  (+{best - base[0]:.3f} / +{q1 - base[1]:.3f})")


if __name__ == "__main__":
    main()
