"""Loading many images into torch tensors: our DataLoaders and engines next to raw pyarrow reads.

    python benchmarks/benchmark_loading.py                      # 2,000 images of 2x256x256 uint16
    python benchmarks/benchmark_loading.py --images 200 --cases raw core iter-w0 iter-w2
    python benchmarks/benchmark_loading.py --json-out out.json --fail-under 0.5

A synthetic plate (``--images`` images of ``--channels`` x ``--size`` x ``--size`` uint16, with
well and site columns) is streamed into a dataset with ``write_dataset``; then every case
runs in a fresh process (so its peak RSS is its own) and streams all images into torch
batches of ``--batch-size`` for ``--epochs`` epochs:

- ``raw``: the physical reference, pyarrow reading the same bytes: ``ParquetFile.read_row_groups``
  over the chunk file, one call per batch of row groups (pixel column only), no decoding;
- ``core``: ``OMEArrowDataset.read`` batches wrapped by ``torch.from_numpy`` (no DataLoader);
- ``iter-wN``: ``OMEArrowIterableDataset(batch_size=B)`` in ``DataLoader(num_workers=N)``;
- ``map-wN``: ``OMEArrowTorchDataset`` in ``DataLoader(batch_size=B, num_workers=N)``;
- ``mapnp-wN``: the same with DataLoader's default ``persistent_workers=False`` (every case but
  this one keeps its workers): each epoch starts new workers, which open the dataset again;
- ``mapnp-send-wN``: the ceiling of ``mapnp-wN`` that issue 14 names: a trivial map-style dataset of the
  same length whose items are one ready tensor of an image's size, in the same DataLoader (``default_collate``
  stacks each batch into a fresh shared-memory segment, as torch does for any dataset of tensors);
- ``mapnp-fill-wN``: the floor of ``mapnp-wN`` itself: ``OMEArrowTorchDataset`` whose batches are filled
  (``np.full`` into the same pooled shared buffers) instead of read, so what is left is DataLoader's
  (new workers forked and exiting every epoch) and the hand-over of the batches;
- ``mapb-wN``: ``OMEArrowTorchDataset`` in ``DataLoader(sampler=BatchSampler(..., B), batch_size=None,
  num_workers=N)``: whole batches per worker, read into reused shared memory;
- ``dask``: ``to_dask(ds, chunks="32MiB")`` computed two blocks at a time (threaded scheduler), each
  block cut into torch batches;
- ``dask-dist``: the same on ``dask.distributed.LocalCluster(n_workers=2, processes=True)``, blocks
  streamed back as they finish (the cluster's start is in epoch 1);
- ``dask-dist-send``: the ceiling of ``dask-dist``: the same cluster sends blocks of the same
  size that its tasks make (``np.full``) instead of reading them;
- ``ray``: ``read_dataset(ds).iter_torch_batches`` on a local Ray of 2 CPUs started as ``read_dataset``
  starts one when none runs (``ome_arrow_ray.init_ray``: freed blocks leave the object store within 20 ms;
  a checkout without it gets ``ray-ownray``'s Ray) (its start is in epoch 1);
- ``ray-ownray``: ``ray`` on a local Ray the user started with Ray's defaults (``ray.init``): freed blocks
  leave the object store once a second, so short epochs write into new pages that each worker faults in;
- ``ray-fastfree``: ``ray-ownray`` with Ray's ``free_objects_period_milliseconds`` at 20 (default 1000),
  set by the user: what ``init_ray`` sets;
- ``ray-send``: the ceiling of ``ray``: on the same Ray, a datasource whose read tasks make blocks of the same size,
  filled in the same kept per-worker buffers that ``ray``'s read tasks read into (fresh ``np.full`` arrays
  cost a page fault per 4 KiB, which ``ray`` does not pay), with Ray Data's resource reservation off, as
  ``read_dataset`` turns it off for its datasets;
- ``s3-raw``, ``s3-map-w0``, ``s3-map-w2``: a plate of ``--s3-images`` images (default 256; else as
  above) on a local S3-compatible server (moto's, on 127.0.0.1, started and stopped by this script,
  in a process of its own; it serves about 50 MB/s here, so the plate is smaller): pyarrow reading
  the chunk file through ``pyarrow.fs.S3FileSystem`` (``pre_buffer=True``: coalesced ranged GETs),
  and ``OMEArrowDataset.scan("s3://...")`` in the map-style DataLoader with 0 and 2 workers. Their
  ``x s3-raw`` column compares them with ``s3-raw`` of the same round (the server is the same
  Python process for all three, so its speed limits them alike).

A case spelled ``CASE@DIR`` (say ``map-w2@/work/main``) runs with the library of checkout ``DIR``
(its core and ``backends/*``) first on the path: before/after figures in one run.

``--rounds R`` runs the list R times; every round starts with ``raw`` and then runs the other
cases in a rotated order, so each case's ratio to raw compares runs minutes apart at most. The
table reports medians over the rounds (rate, ratio to the same round's raw, the ratio's range)
and the 1-minute load average while the case ran: on a shared machine compare ratios, not rates.
``CPU x raw`` is the CPU time (the case's process and every process under it: DataLoader
workers, Ray and Dask workers) per byte delivered in the best epoch, over raw's: it does not
depend on how busy the machine is (``CPU us/image``: the same CPU time per image). With 2 workers
on 2 free cores the rate ratio can reach about 2 / ``CPU x raw``. Any worker count works in a case
name (``map-w1``: the worker reads while the main process waits, so the two hardly compete for a core).

Rates are bytes of pixels delivered per second; ``first`` is epoch 1 (workers starting and
opening files), ``best`` the fastest later epoch (persistent workers). The targets (issue 14):
map-style and batch-sampler DataLoaders at least 0.8x raw with 2 workers, Ray at least 0.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, tree_path
from loading_ceilings import filled_datasource, filling_dataset, ready_dataset
from loading_support import epochs, make_plate, raw_reader, rss, summary, table_rows, verdicts

CASES = (
    "raw",
    "core",
    "iter-w0",
    "iter-w2",
    "map-w0",
    "map-w2",
    "mapnp-w2",
    "mapnp-send-w2",
    "mapnp-fill-w2",
    "mapb-w0",
    "mapb-w2",
    "dask",
    "dask-dist",
    "dask-dist-send",
    "ray",
    "ray-ownray",
    "ray-fastfree",
    "ray-send",
    "s3-raw",
    "s3-map-w0",
    "s3-map-w2",
)


def _filled(shape: tuple[int, ...], value: int) -> np.ndarray:
    """A block of pixels made, not read (``dask-dist-send``; defined in the script, so dask's workers get it by
    value)."""
    return np.full(shape, value, dtype=np.uint16)


def run_case(case: str, path: str, batch: int, n_epochs: int) -> dict[str, Any]:
    """One case in this process: time per epoch, images and bytes delivered.

    ``path`` is the plate's directory, or its ``s3://`` URI for the ``s3-*`` cases.
    """
    import torch

    from ome_arrow_core import OMEArrowDataset

    ds = OMEArrowDataset.scan(path)
    if case == "raw":
        import pyarrow.parquet as pq

        run = raw_reader(pq.ParquetFile(Path(path) / "chunks.parquet"), len(ds), batch)
    elif case == "s3-raw":
        import pyarrow.parquet as pq
        from local_s3 import filesystem

        fs = filesystem(os.environ["AWS_ENDPOINT_URL"])
        key = path.removeprefix("s3://") + "/chunks.parquet"
        run = raw_reader(pq.ParquetFile(fs.open_input_file(key), pre_buffer=True), len(ds), batch)
    elif case == "core":

        def run(_: int) -> tuple[int, int]:
            n = nbytes = 0
            for i in range(0, len(ds), batch):
                x = torch.from_numpy(ds.read(range(i, min(len(ds), i + batch))))
                n, nbytes = n + x.shape[0], nbytes + x.numel() * x.element_size()
            return n, nbytes
    elif case.startswith(("iter-", "map-", "mapb-", "mapnp-", "s3-map-")):
        from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

        from ome_arrow_torch import OMEArrowIterableDataset, OMEArrowTorchDataset

        workers = int(case.split("-w")[1])
        if case.startswith("iter-"):
            data: Any = OMEArrowIterableDataset(ds, batch_size=batch)
            loader = DataLoader(data, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
        elif case.startswith(("map-", "s3-map-")):
            data = OMEArrowTorchDataset(ds)
            loader = DataLoader(data, batch_size=batch, num_workers=workers, persistent_workers=workers > 0)
        elif case.startswith("mapnp-send-"):  # the ceiling: ready tensors, DataLoader's defaults
            data = ready_dataset(len(ds), tuple(ds.tensor_views()[0].shape))
            loader = DataLoader(data, batch_size=batch, num_workers=workers)
        elif case.startswith("mapnp-"):  # DataLoader's defaults: new workers every epoch
            data = filling_dataset(ds) if case.startswith("mapnp-fill-") else OMEArrowTorchDataset(ds)
            loader = DataLoader(data, batch_size=batch, num_workers=workers)
        else:
            data = OMEArrowTorchDataset(ds)
            loader = DataLoader(
                data,
                sampler=BatchSampler(SequentialSampler(data), batch, drop_last=False),
                batch_size=None,
                num_workers=workers,
                persistent_workers=workers > 0,
            )

        def run(epoch: int) -> tuple[int, int]:
            data.set_epoch(epoch)
            n = nbytes = 0
            for x in loader:
                assert x.dtype == torch.uint16
                n, nbytes = n + x.shape[0], nbytes + x.numel() * x.element_size()
            return n, nbytes
    elif case in ("dask", "dask-dist", "dask-dist-send"):
        from ome_arrow_dask import to_dask

        arr = to_dask(ds, chunks="32MiB")
        blocks = list(arr.to_delayed().ravel())  # each block as read (arr.blocks[i] adds a copy)
        client = None
        if case != "dask":
            from dask.distributed import Client, LocalCluster, as_completed

        def run(epoch: int) -> tuple[int, int]:
            nonlocal client
            if case != "dask" and client is None:
                client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None))
            n = nbytes = 0
            if client is not None and case == "dask-dist-send":  # the ceiling: blocks made, not read, and sent
                shapes = [(k, *arr.shape[1:]) for k in arr.chunks[0]]
                made = [client.submit(_filled, shape, epoch, pure=False) for shape in shapes]
                done = (f.result() for f in as_completed(made))
            elif client is not None:
                done = (f.result() for f in as_completed(client.compute(blocks)))
            else:
                import dask

                done = (
                    b for i in range(0, len(blocks), 2) for b in dask.compute(*blocks[i : i + 2], scheduler="threads")
                )
            for block in done:
                for i in range(0, len(block), batch):
                    x = torch.from_numpy(block[i : i + batch])
                    n, nbytes = n + x.shape[0], nbytes + x.numel() * x.element_size()
            return n, nbytes
    elif case in ("ray", "ray-ownray", "ray-fastfree", "ray-send"):
        import ray

        import ome_arrow_ray
        from ome_arrow_ray import read_dataset

        def rows() -> Any:
            if case != "ray-send":
                return read_dataset(ds, columns=[])
            from ome_arrow_core import ViewSpec
            from ome_arrow_ray.datasource import OMEArrowDatasource

            shape = tuple(ds.tensor_views()[0].shape)  # the ceiling: blocks of the same size made, not read
            plan = OMEArrowDatasource(ds, columns=[], image_column="image", view=ViewSpec().keywords())
            per = plan.planned_images_per_block()
            made = ray.data.read_datasource(
                filled_datasource(len(ds), shape, per), override_num_blocks=-(-len(ds) // per)
            )
            made.context.op_resource_reservation_enabled = False  # as read_dataset does for its datasets
            return made

        def run(_: int) -> tuple[int, int]:
            if not ray.is_initialized():
                local = {"address": "local", "num_cpus": 2, "include_dashboard": False, "log_to_driver": False}
                if case in ("ray", "ray-send") and hasattr(ome_arrow_ray, "init_ray"):
                    ome_arrow_ray.init_ray(**local)  # as read_dataset starts Ray when none runs
                else:
                    fast = {"free_objects_period_milliseconds": 20} if case == "ray-fastfree" else {}
                    ray.init(**local, _system_config=fast)
                ray.data.DataContext.get_current().enable_progress_bars = False
            n = nbytes = 0
            for b in rows().iter_torch_batches(batch_size=batch):
                x = b["image"]
                n, nbytes = n + x.shape[0], nbytes + x.numel() * x.element_size()
            return n, nbytes
    else:
        raise SystemExit(f"unknown case {case!r}; cases: {', '.join(CASES)}")
    times = epochs(run, n_epochs)
    if case.startswith(("iter-", "map-", "mapb-", "mapnp-", "s3-map-")):
        del loader  # persistent workers exit: their peak RSS is then counted
    first, later = times[0], times[1:] or times[:1]
    best = min(later, key=lambda r: r[0])
    return {
        "case": case,
        "images": best[1],
        "bytes": best[2],
        "first_s": first[0],
        "best_s": best[0],
        "images_per_s": best[1] / best[0],
        "MB_per_s": best[2] / best[0] / 1e6,
        "first_MB_per_s": first[2] / first[0] / 1e6,
        "cpu_s": best[3],
        "cpu_us_per_image": best[3] / best[1] * 1e6,
        "cpu_s_per_GB": best[3] / (best[2] / 1e9),
        "peak_rss_mib": rss(),
        "peak_rss_workers_mib": rss(resource.RUSAGE_CHILDREN),
    }


def _child(
    case: str, path: Path, args: argparse.Namespace, s3: tuple[str, dict[str, str]] | None
) -> dict[str, Any] | None:
    """Run one case in a fresh process; its result with the load average while it ran, or None.

    ``CASE@DIR`` runs CASE with checkout DIR's library first on the path; ``s3-*`` cases read
    the S3 copy ``s3`` (its URI and the clients' environment).
    """
    name, _, checkout = case.partition("@")
    env = dict(os.environ)
    where = str(path)
    if name.startswith("s3-"):
        if s3 is None:
            return None
        where = s3[0]
        env.update(s3[1])
    if checkout:
        paths = tree_path(Path(checkout).resolve())
        env["PYTHONPATH"] = os.pathsep.join([paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, __file__, "--case", name, "--where", where]
    cmd += ["--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]
    load0 = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    load = (load0 + os.getloadavg()[0]) / 2
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"{case}: skipped ({tail})", file=sys.stderr)
        return None
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load, "case": case}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per case; the first counts as 'first'")
    ap.add_argument("--cases", nargs="+", default=list(CASES), help=f"from {', '.join(CASES)}")
    ap.add_argument("--dir", type=Path, help="where the plate is written (default: a temporary directory)")
    ap.add_argument(
        "--s3-images", type=int, default=256, help="images of the plate the s3-* cases read (moto's server is slow)"
    )
    ap.add_argument("--rounds", type=int, default=1, help="rounds of (raw, then every case); medians are reported")
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--fail-under", type=float, help="exit 1 if map-w2, mapb-w2 or ray / raw is below this")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--where", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:  # child process: one case, one JSON line
        print(json.dumps(run_case(args.case, args.where, args.batch_size, args.epochs)))
        return
    with tempfile.TemporaryDirectory(prefix="ome-arrow-bench-") as tmp, ExitStack() as stack:
        path = (args.dir or Path(tmp)) / "plate.ome-arrow"
        if not path.exists():
            write = make_plate(path, args.images, args.channels, args.size)
            print(
                f"wrote {args.images} images ({args.images * args.channels * args.size**2 * 2 / 1e6:.0f} MB) in "
                f"{write['seconds']:.2f} s: {write['MB_per_s']:.0f} MB/s, peak RSS {write['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
            )
        else:
            write = {}
        s3 = None
        if any(c.startswith("s3-") for c in args.cases):
            from local_s3 import serving

            small = path.parent / "s3" / path.name
            if not small.exists():
                make_plate(small, args.s3_images, args.channels, args.size)
            s3 = stack.enter_context(serving(small))
        runs: dict[str, list[dict[str, Any]]] = {}
        others = [c for c in dict.fromkeys(args.cases) if c != "raw"]
        for r in range(max(1, args.rounds)):
            k = r % len(others) if others else 0
            for case in ["raw", *others[k:], *others[:k]]:
                got = _child(case, path, args, s3)
                if got is not None:
                    runs.setdefault(case, []).append({**got, "round": r})
    results = summary(runs, [c for c in dict.fromkeys(["raw", *args.cases]) if c in runs])
    print(
        f"{os.cpu_count()} CPUs, {args.images} images of {args.channels}x{args.size}x{args.size} uint16, "
        f"batch {args.batch_size}, best of epochs 2..{args.epochs} per run, medians of {max(1, args.rounds)} "
        "round(s) (x raw: against the same round's raw; load: 1-minute load average during the case)"
    )
    print(table(table_rows(results)))
    verdict = verdicts(results)
    for case, v in verdict.items():
        if v["ratio"] is not None:
            print(f"{case} / raw pyarrow = {v['ratio']:.2f} (target >= {v['target']})")
    if args.json_out:
        args.json_out.write_text(json.dumps({"write": write, "results": results, "verdict": verdict}, indent=2))
    if args.fail_under is not None and any(
        v["ratio"] is not None and v["ratio"] < args.fail_under for v in verdict.values()
    ):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
