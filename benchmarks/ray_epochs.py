"""Where a Ray Data epoch's CPU goes: ``ray`` against ``ray-send``, epoch by epoch, in one Ray session.

    python benchmarks/ray_epochs.py --epochs 8          # the loading benchmark's plate (2,000 images)
    python benchmarks/ray_epochs.py --dir /tmp/plate --epochs 8

Writes (or reuses) ``benchmark_loading.py``'s synthetic plate, starts one local Ray of 2 CPUs as
``read_dataset`` starts one (``ome_arrow_ray.init_ray``) and runs the epochs of its two Ray cases
alternately on it, each epoch ``read_dataset(ds).iter_torch_batches(batch_size=32)``: ``ray`` (read
tasks reading the images) and ``ray-send`` (read tasks making blocks of the same size in the same kept
buffers, not reading: Ray's ceiling). Per epoch and case: the wall time, then CPU milliseconds (user/sys)
and minor page faults of the driver, of Ray's worker processes and of Ray's other processes (from /proc),
and ``Shmem`` of /proc/meminfo (the object store's pages: it grows while Ray's allocator finds new room).
Last, the read alone: the epoch's ``ReadImages`` tasks run in this process, unpickled, no Ray (user/sys
CPU of the best of 6 runs, the first of which opens the files).
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loading_ceilings import filled_datasource
from loading_support import make_plate, process_tree

_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, float, float, int]]:
    """(kind, user s, sys s, minor faults) of this process and every live process under it."""
    out: dict[int, tuple[str, float, float, int]] = {}
    for pid, f, cmd in process_tree():
        worker = cmd.startswith(b"ray::") or b"default_worker" in cmd  # Ray renames its workers ray::<task>
        kind = "driver" if pid == os.getpid() else "workers" if worker else "ray"
        out[pid] = (kind, int(f[11]) / _TICK, int(f[12]) / _TICK, int(f[7]))
    return out


def _shmem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1]) // 1024
    return -1


def _epoch(rows: Any, batch: int) -> str:
    """One epoch of ``rows`` into torch batches: its wall time and CPU per kind of process."""
    p0, t0 = _processes(), time.perf_counter()
    n = 0
    for b in rows.iter_torch_batches(batch_size=batch):
        n += b["image"].shape[0]
    wall, p1 = time.perf_counter() - t0, _processes()
    per: dict[str, list[float]] = {k: [0.0, 0.0, 0.0] for k in ("driver", "workers", "ray")}
    for pid, (kind, user, sys_, faults) in p1.items():
        _, u0, s0, f0 = p0.get(pid, (kind, 0.0, 0.0, 0))
        per[kind][0] += user - u0
        per[kind][1] += sys_ - s0
        per[kind][2] += faults - f0
    cells = "  ".join(f"{k} {u * 1e3:4.0f}/{s * 1e3:<4.0f} {f / 1e3:4.0f}k" for k, (u, s, f) in per.items())
    return f"{wall * 1e3:6.0f} ms  {n} images  {cells}  Shmem {_shmem_mb()} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dir", type=Path, help="where the plate is (written if missing; default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ome-arrow-ray-epochs-") as tmp:
        path = (args.dir or Path(tmp)) / "plate.ome-arrow"
        if not path.exists():
            make_plate(path, args.images, 2, 256)
        run(path, args.epochs, args.batch_size)


def run(path: Path, epochs: int, batch: int) -> None:
    import ray

    import ome_arrow_ray
    from ome_arrow_core import OMEArrowDataset, ViewSpec
    from ome_arrow_ray import read_dataset
    from ome_arrow_ray.datasource import OMEArrowDatasource

    ds = OMEArrowDataset.scan(path)
    ome_arrow_ray.init_ray(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    shape = tuple(ds.tensor_views()[0].shape)
    plan = OMEArrowDatasource(ds, columns=[], image_column="image", view=ViewSpec().keywords())
    per = plan.planned_images_per_block()

    def send() -> Any:
        made = ray.data.read_datasource(filled_datasource(len(ds), shape, per), override_num_blocks=-(-len(ds) // per))
        made.context.op_resource_reservation_enabled = False  # as read_dataset does for its datasets
        return made

    print("epoch case      wall      images       CPU ms user/sys and minor faults per kind of process")
    for e in range(epochs):
        for case, rows in (("ray", lambda: read_dataset(ds, columns=[])), ("ray-send", send)):
            print(f"{e + 1:5d} {case:9s} {_epoch(rows(), batch)}", flush=True)
    tasks = [pickle.dumps(t.read_fn) for t in plan.get_read_tasks(-1)]
    best: tuple[float, float] | None = None
    for _ in range(6):  # the first run opens the files and checks the images in this process: best of 6
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for blob in tasks:
            for _block in pickle.loads(blob)():
                pass
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        got = (r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime)
        best = got if best is None or sum(got) < sum(best) else best
    assert best is not None
    print(
        f"read alone ({len(tasks)} tasks, no Ray, best of 6): user {best[0] * 1e3:.0f} ms, sys {best[1] * 1e3:.0f} ms"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
