"""CPU time per image of the torch loaders next to raw pyarrow: a measure that a busy machine disturbs less than rates.

    python benchmarks/loading_cpu.py --dir /tmp/bench            # the plate of benchmark_loading.py
    python benchmarks/loading_cpu.py --cases raw map-w1 map-w1@/work/main --rounds 5

Each case runs in a fresh process over the plate benchmark_loading.py writes (``--dir`` keeps
it between runs): one warm epoch, then ``--epochs`` epochs whose CPU time (the process and
every process under it: DataLoader workers) is summed. Cases: ``raw`` (pyarrow's
``read_row_groups`` of each batch, as in benchmark_loading.py), ``core`` (``OMEArrowDataset.read``
of each batch in this process), ``map-wN`` / ``mapb-wN`` / ``iter-wN`` (the DataLoaders of
benchmark_loading.py with N persistent workers; with N=1 the worker reads while the main
process waits, so the two hardly compete for a core), ``mapnp-wN`` (``map-wN`` with DataLoader's default
``persistent_workers=False``: each epoch's new workers open and audit what they read, a first read every
epoch). ``CASE@DIR`` runs with checkout ``DIR``'s
library. Rounds interleave the cases; the table gives each case's median CPU microseconds per
image and its median ratio to raw's of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, tree_path
from loading_support import make_plate, raw_reader, tree_cpu


def run_case(case: str, path: str, batch: int, n_epochs: int) -> dict[str, Any]:
    """CPU seconds per image of ``case`` over ``n_epochs`` epochs after a warm one."""
    from ome_arrow_core import OMEArrowDataset

    ds = OMEArrowDataset.scan(path)
    n = len(ds)
    if case == "raw":
        import pyarrow.parquet as pq

        run = raw_reader(pq.ParquetFile(Path(path) / "chunks.parquet"), n, batch)
    elif case == "core":

        def run(_: int) -> tuple[int, int]:
            for i in range(0, n, batch):
                ds.read(range(i, min(n, i + batch)))
            return n, 0
    else:
        from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

        from ome_arrow_torch import OMEArrowIterableDataset, OMEArrowTorchDataset

        kind, _, w = case.partition("-w")
        workers = int(w)
        data: Any
        if kind == "iter":
            data = OMEArrowIterableDataset(ds, batch_size=batch)
            loader = DataLoader(data, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
        elif kind in ("map", "mapnp"):  # mapnp: DataLoader's default, new workers (cold reads) every epoch
            data = OMEArrowTorchDataset(ds)
            loader = DataLoader(
                data, batch_size=batch, num_workers=workers, persistent_workers=workers > 0 and kind == "map"
            )
        elif kind == "mapb":
            data = OMEArrowTorchDataset(ds)
            sampler = BatchSampler(SequentialSampler(data), batch, drop_last=False)
            loader = DataLoader(
                data, sampler=sampler, batch_size=None, num_workers=workers, persistent_workers=workers > 0
            )
        else:
            raise SystemExit(f"unknown case {case!r}")

        def run(epoch: int) -> tuple[int, int]:
            data.set_epoch(epoch)
            got = 0
            for x in loader:
                got += x.shape[0]
            return got, 0

    run(0)  # warm: workers started, files opened and audited, buffers made
    c0 = tree_cpu()
    images = sum(run(e + 1)[0] for e in range(n_epochs))
    return {"case": case, "cpu_us_per_image": (tree_cpu() - c0) / images * 1e6}


def _child(case: str, path: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    name, _, checkout = case.partition("@")
    env = dict(os.environ)
    if checkout:
        paths = tree_path(Path(checkout).resolve())
        env["PYTHONPATH"] = os.pathsep.join([paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, __file__, "--case", name, "--where", str(path)]
    cmd += ["--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"{case}: skipped ({(proc.stderr.strip().splitlines() or ['?'])[-1]})", file=sys.stderr)
        return None
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "case": case, "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2, help="measured epochs per case (after one warm epoch)")
    ap.add_argument("--cases", nargs="+", default=["raw", "core", "map-w1", "mapb-w1", "iter-w1"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="where the plate is (written there when missing; required)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--where", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.where, args.batch_size, args.epochs)))
        return
    if args.dir is None:
        ap.error("--dir is required")
    path = args.dir / "plate.ome-arrow"
    if not path.exists():
        make_plate(path, args.images, args.channels, args.size)
    others = [c for c in dict.fromkeys(args.cases) if c != "raw"]
    runs: dict[str, list[tuple[int, float]]] = {}
    for r in range(args.rounds):
        k = r % len(others) if others else 0
        for case in ["raw", *others[k:], *others[:k]]:
            got = _child(case, path, args)
            if got is not None:
                runs.setdefault(case, []).append((r, got["cpu_us_per_image"]))
    raw = dict(runs.get("raw", []))
    rows = [("case", "CPU us/image", "CPU x raw", "x raw range", "rounds")]
    for case, got in runs.items():
        ratios = [v / raw[r] for r, v in got if r in raw]
        rows.append(
            (
                case,
                f"{statistics.median(v for _, v in got):.0f}",
                f"{statistics.median(ratios):.2f}" if ratios else "-",
                f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-",
                str(len(got)),
            )
        )
    print(
        f"{args.images} images of {args.channels}x{args.size}x{args.size} uint16, batch {args.batch_size}, load {os.getloadavg()[0]:.1f}"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
