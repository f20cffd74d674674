"""What reading a row group through a one-group footer (``typed_chunk.group_footers``) costs against reading it
through the whole footer parsed once, CPU time per row group, interleaved.

    python benchmarks/group_footer_splice.py [--images 100000] [--groups 48] [--rounds 7] [--dir DIR]

A synthetic plate of ``--images`` 1x8x8 images (``plate_synthetic.py``: images.parquet in row groups of 1,024) is
built in ``--dir`` (kept there). Each round, in turn: ``splice`` builds a fresh ``GroupFooters`` of images.parquet
and reads ``--groups`` distinct random row groups through it (each: its footer entry read, checked against its
block digest where the footer is recorded in pieces, spliced, parsed and checked, then the row group read);
``whole`` reads the same row groups through the footer parsed whole once (its parse timed apart); the two take
turns at reading the round's groups first. Prints the
medians over rounds, per row group: the splice alone (``group_metadata``), a read through it, a read through the
whole footer, and their difference (what ``ALONE``'s comment in group_footers.py states).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plate_synthetic import synthetic_plate

from ome_arrow_core import parquet_lite as pq
from ome_arrow_core.typed_chunk import shared_manifest
from ome_arrow_core.typed_chunk.group_footers import GroupFooters
from ome_arrow_core.typed_chunk.group_sums import TableGuard

NAME = "images.parquet"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--groups", type=int, default=48)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "group_footer_splice")
    args = p.parse_args()
    root = args.dir / f"plate-{args.images}"
    if not root.exists():
        args.dir.mkdir(parents=True, exist_ok=True)
        synthetic_plate(root, args.images, (1, 8, 8))
    seg = TableGuard(root, shared_manifest(root)).segments(NAME)
    assert seg is not None and seg.footer_spans is not None, "the manifest records no footer spans"
    file = root / NAME
    rng = np.random.default_rng(0)
    n_groups = len(seg.group_rows or [])
    clock = time.process_time_ns
    got: dict[str, list[float]] = {"splice alone": [], "read via splice": [], "read via whole": [], "whole parse": []}
    for r in range(args.rounds):
        groups = [int(g) for g in rng.choice(n_groups, size=min(args.groups, n_groups), replace=False)]
        gf = GroupFooters(root, NAME, seg)  # its head and tail read (and row group 0 spliced) now, not timed
        t0 = clock()
        for g in groups:
            gf.group_metadata(g)
        got["splice alone"].append((clock() - t0) / len(groups) / 1e6)
        for path in ("splice", "whole") if r % 2 else ("whole", "splice"):  # which reads the groups first: in turn
            if path == "splice":
                gf = GroupFooters(root, NAME, seg)
                t0 = clock()
                for g in groups:
                    gf.read(g)
                got["read via splice"].append((clock() - t0) / len(groups) / 1e6)
                continue
            t0 = clock()
            md = pq.read_metadata(file)
            got["whole parse"].append((clock() - t0) / 1e6)
            pf = pq.ParquetFile(file, metadata=md, **pq.LOCAL_READS)
            t0 = clock()
            for g in groups:
                pf.read_row_group(g, use_threads=False)
            got["read via whole"].append((clock() - t0) / len(groups) / 1e6)
    med = {k: statistics.median(v) for k, v in got.items()}
    print(
        f"{args.images} images, {n_groups} row groups, {args.groups} groups a round, {args.rounds} rounds, "
        f"load {os.getloadavg()[0]:.2f}; ms CPU (median; min-max)"
    )
    for k, v in got.items():
        print(f"  {k:16s} {med[k]:.3f} ({min(v):.3f}-{max(v):.3f}){'' if k != 'whole parse' else ' once'}")
    print(
        f"  splice costs {med['read via splice'] - med['read via whole']:.3f} ms a row group more than a read "
        "through the parsed footer"
    )


if __name__ == "__main__":
    main()
