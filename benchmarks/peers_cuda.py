"""Issue 12's CUDA cases: one plane and a tile stream to the GPU, ours against cupy.asarray and pinned torch copies.

    python benchmarks/peers_cuda.py [--size 2048] [--z 16] [--repeats 5] [--cuda] [--json-out out.json]

Without a CUDA device it prints ``no CUDA device: CUDA cases skipped`` (and why) and exits 0; ``--cuda`` requires one
(exit 2 without). ``compare_peers.py`` runs these cases on its own file when a device is visible (``--cuda`` forces).

Image: 1x1xZxSxS uint16 camera-like noise (peers_libs.camera_image) written by ours with its defaults, read back
through ``OMEArrow.scan`` from a warm page cache. Each case runs once untimed and its pixels are copied back and
compared with numpy's; then ``--repeats`` rounds, each timing one run of every case (each run ends with a device
synchronisation) in a new seeded shuffled order: interleaved, medians reported, with the CPU time of the process.

- plane (one SxS plane at z=Z/2): "read+copy" cases start from the file (the read is timed), "copy" cases from
  the plane already in host memory (ours: an in-memory image's view). ours ``to_dlpack(device="cuda")`` taken
  with ``cupy.from_dlpack`` (or ``torch.from_dlpack`` without CuPy); ours [one block] the same with the CuPy
  backend's staging in one block (its behaviour before session 19); ``cupy.asarray`` of the numpy read;
  torch pinned: ``torch.from_numpy(x).pin_memory().to("cuda", non_blocking=True)``; torch pre-pinned: a copy into
  a pinned buffer made once, then into a device buffer made once.
- stream (256x256 tiles over every plane): ours ``iter_dlpack(tile_size=(256, 256), device="cuda", prefetch=2)``
  per plane (each group of tiles in one transfer); ours [one by one] the same without ``export_many`` (before
  session 19); ``cupy.asarray`` of each tile of the CPU stream; torch pinned per tile; torch pre-pinned: each
  plane's tiles packed into one of two pinned plane buffers, one copy a plane (what ours does, by hand); ours
  ``stack=`` a plane's tiles: one (n, tile, tile) array a plane (when the tiles divide the plane).
- ceiling: a pre-pinned buffer copied to the device (the plane's bytes; the whole stream's bytes in one copy).
GB/s count the selection's bytes (1e9); "x pinned" divides by the ceiling of the same bytes (goal: >= 0.8).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cuda_cases import SKIP, Case, Fn, Gpu, find_device, report, time_cases

from ome_arrow_core import OMEArrow, Registry
from ome_arrow_core.registry import default_registry


@contextlib.contextmanager
def _one_block() -> Iterator[None]:
    """The CuPy backend's staging as before session 19: a view up to BLOCK_BYTES in one block, one thread."""
    from ome_arrow_cupy import export

    saved, export.SPLIT_BYTES = export.SPLIT_BYTES, 1 << 62
    try:
        yield
    finally:
        export.SPLIT_BYTES = saved


def _one_by_one(registry: Registry) -> Registry:
    """A registry whose CUDA exporter has no ``export_many``: a stream's tiles go one by one (before session 19)."""
    import ome_arrow_core

    exp = registry.resolve_exporter("cuda", np.dtype("uint16"), None)
    single = dataclasses.replace(exp, name=f"{exp.name}-one-by-one", priority=exp.priority + 1, export_many=None)

    class OneByOne:
        @ome_arrow_core.hookimpl
        def ome_arrow_exporters(self) -> list[ome_arrow_core.Exporter]:
            return [single]

    reg = Registry()
    reg.register(OneByOne(), name="one-by-one")
    return reg


def plane_cases(gpu: Gpu, path: Path, arr: np.ndarray, z: int) -> list[Case]:
    """One SxS plane (t=0, c=0, z) to the device, from the file and from host memory; ``arr`` is TCZYX."""
    torch, cp = gpu.torch, gpu.cp
    img = OMEArrow.scan(path)
    plane = np.ascontiguousarray(arr[0, 0, z])
    want = [plane]

    def view() -> Any:  # a new lazy view each time: one reads its plane once, then keeps it
        return img.tensor_view(t=0, c=0, z=z, layout="YX")

    mem = OMEArrow(arr[:, :1, z : z + 1]).tensor_view(t=0, c=0, z=0, layout="YX")

    def synced(fn: Fn) -> Fn:
        def run() -> Any:
            out = fn()
            gpu.sync()
            return out

        return run

    cases = [
        Case(
            "plane",
            "read+copy: ours to_dlpack(device='cuda')",
            synced(lambda: gpu.take(view().to_dlpack(device="cuda"))),
            want,
        ),
        Case("plane", "read only: ours to_numpy (host)", lambda: view().to_numpy(), None),
        Case(
            "plane", "copy: ours to_dlpack(device='cuda')", synced(lambda: gpu.take(mem.to_dlpack(device="cuda"))), want
        ),
    ]
    if cp is not None:

        def ours_one_block(v: Callable[[], Any]) -> Fn:
            def run() -> Any:
                with _one_block():
                    return gpu.take(v().to_dlpack(device="cuda"))

            return synced(run)

        cases += [
            Case("plane", "read+copy: ours [one block, before]", ours_one_block(view), want),
            Case("plane", "copy: ours [one block, before]", ours_one_block(lambda: mem), want),
            Case("plane", "read+copy: cupy.asarray(numpy read)", synced(lambda: cp.asarray(view().to_numpy())), want),
            Case("plane", "copy: cupy.asarray(numpy)", synced(lambda: cp.asarray(plane)), want),
        ]
    if torch is not None:
        pinned = torch.from_numpy(plane.copy()).pin_memory()
        dev = torch.empty_like(pinned, device="cuda")

        def pin(x: np.ndarray) -> Any:
            return torch.from_numpy(x).pin_memory().to("cuda", non_blocking=True)

        def prepinned(x: np.ndarray) -> Any:
            pinned.copy_(torch.from_numpy(x))
            return dev.copy_(pinned, non_blocking=True)

        cases += [
            # ours through torch's exporter: read into torch's pinned memory, copied from there (session 26)
            Case(
                "plane", "read+copy: ours to_torch(device='cuda')", synced(lambda: view().to_torch(device="cuda")), want
            ),
            Case("plane", "copy: ours to_torch(device='cuda')", synced(lambda: mem.to_torch(device="cuda")), want),
            Case("plane", "read+copy: torch pinned", synced(lambda: pin(view().to_numpy())), want),
            Case("plane", "read+copy: torch pre-pinned", synced(lambda: prepinned(view().to_numpy())), want),
            Case("plane", "copy: torch pinned", synced(lambda: pin(plane)), want),
            Case("plane", "copy: torch pre-pinned", synced(lambda: prepinned(plane)), want),
        ]
    cases.append(Case("plane", "ceiling: pinned buffer to device", gpu.pinned_copy(plane.nbytes), None))
    return cases


def stream_cases(gpu: Gpu, path: Path, arr: np.ndarray, tile: int) -> list[Case]:
    """``tile`` x ``tile`` tiles over every plane (t=0, c=0) to the device; ``arr`` is TCZYX."""
    torch, cp = gpu.torch, gpu.cp
    nz, ny, nx = arr.shape[2:]
    img, mem = OMEArrow.scan(path), OMEArrow(arr[:1, :1])
    single_reg = _one_by_one(default_registry()) if cp is not None else None
    corners = [(y, x) for y in range(0, ny, tile) for x in range(0, nx, tile)]
    want = [arr[0, 0, z, y : y + tile, x : x + tile] for z in range(nz) for y, x in corners]

    def ours(image: OMEArrow, stack: int | None = None) -> Fn:
        def run() -> list[Any]:
            out = []
            for z in range(nz):
                view = image.tensor_view(t=0, c=0, z=z, layout="YX")
                items = view.iter_dlpack(tile_size=(tile, tile), device="cuda", prefetch=2, stack=stack)
                out += [gpu.take(t) for t in items]
            gpu.sync()
            return out

        return run

    def cpu_tiles() -> Iterator[np.ndarray]:
        for z in range(nz):
            view = img.tensor_view(t=0, c=0, z=z, layout="YX")
            yield from (np.from_dlpack(t) for t in view.iter_dlpack(tile_size=(tile, tile), prefetch=2))

    def each(to_device: Callable[[np.ndarray], Any], tiles: Callable[[], Iterator[np.ndarray]] = cpu_tiles) -> Fn:
        def run() -> list[Any]:
            out = [to_device(t) for t in tiles()]
            gpu.sync()
            return out

        return run

    cases = [
        Case("stream", "read+copy: ours iter_dlpack(device='cuda')", ours(img), want),
        Case("stream", "read only: ours iter_dlpack (host)", lambda: sum(1 for _ in cpu_tiles()), None),
        Case("stream", "copy: ours iter_dlpack(device='cuda')", ours(mem), want),
    ]
    if ny % tile == 0 and nx % tile == 0:  # a plane's tiles, one shape: one stack a plane
        n = len(corners)
        stacks = [np.stack(want[i : i + n]) for i in range(0, len(want), n)]
        cases += [
            Case("stream", "read+copy: ours iter_dlpack(device='cuda', stack=a plane)", ours(img, n), stacks),
            Case("stream", "copy: ours iter_dlpack(device='cuda', stack=a plane)", ours(mem, n), stacks),
        ]
    if cp is not None and single_reg is not None:
        cases += [
            Case(
                "stream", "read+copy: ours [one by one, before]", ours(OMEArrow.scan(path, registry=single_reg)), want
            ),
            Case("stream", "copy: ours [one by one, before]", ours(OMEArrow(arr[:1, :1], registry=single_reg)), want),
            Case("stream", "read+copy: cupy.asarray(each numpy tile)", each(cp.asarray), want),
            Case("stream", "copy: cupy.asarray(each numpy tile)", each(cp.asarray, lambda: iter(want)), want),
        ]
    if torch is not None:
        plane_bytes = ny * nx * arr.itemsize
        bufs = [torch.empty(plane_bytes, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
        done = [torch.cuda.Event(), torch.cuda.Event()]

        def packed() -> list[Any]:
            out = []
            for z, cut in enumerate(_planes(cpu_tiles(), len(corners))):
                buf, ev = bufs[z % 2], done[z % 2]
                ev.synchronize()  # the copy that last read this buffer has finished
                host, off, offs = buf.numpy(), 0, []
                for t in cut:
                    host[off : off + t.nbytes].view(t.dtype).reshape(t.shape)[...] = t
                    offs.append((off, t))
                    off += t.nbytes
                dev = buf[:off].to("cuda", non_blocking=True)
                ev.record()
                out += [dev[o : o + t.nbytes].view(torch.uint16).reshape(t.shape) for o, t in offs]  # torch >= 2.3
            torch.cuda.synchronize()
            return out

        cases += [
            Case(
                "stream",
                "read+copy: torch pinned (each tile)",
                each(lambda t: torch.from_numpy(t).pin_memory().to("cuda", non_blocking=True)),
                want,
            ),
            Case("stream", "read+copy: torch pre-pinned (a plane a copy)", packed, want),
        ]
    cases.append(Case("stream", "ceiling: pinned buffer to device", gpu.pinned_copy(arr[0, 0].nbytes), None))
    return cases


def _planes(tiles: Iterator[np.ndarray], per_plane: int) -> Iterator[list[np.ndarray]]:
    cut: list[np.ndarray] = []
    for t in tiles:
        cut.append(t)
        if len(cut) == per_plane:
            yield cut
            cut = []


def run_cases(path: Path, arr: np.ndarray, repeats: int, tile: int = 256) -> list[dict[str, Any]]:
    """Check every CUDA case on ``path`` (our file of ``arr``, TCZYX), then time them interleaved; a row a case."""
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    gpu = Gpu()
    nbytes = {"plane": arr.shape[3] * arr.shape[4] * arr.itemsize, "stream": arr[0, 0].nbytes}
    cases = plane_cases(gpu, path, arr, arr.shape[2] // 2) + stream_cases(gpu, path, arr, tile)
    return time_cases(gpu, cases, nbytes, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048, help="Y and X of each plane (a multiple of --tile)")
    p.add_argument("--z", type=int, default=16, help="planes (the stream runs over all of them)")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5, help="rounds, each timing every case once (medians reported)")
    p.add_argument("--cuda", action="store_true", help="require a CUDA device (exit 2 without one)")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    if args.size < args.tile or args.size % args.tile or args.z < 1 or args.repeats < 1:
        p.error("--size must be a multiple of --tile; --z and --repeats at least 1")
    device, why = find_device()
    if device is None:
        if args.cuda:
            print(f"--cuda: no CUDA device ({why})", file=sys.stderr)
            return 2
        print(f"{SKIP} ({why})")
        return 0
    from peers_libs import camera_image

    arr = camera_image((1, 1, args.z, args.size, args.size))
    with tempfile.TemporaryDirectory(prefix="peers_cuda_") as d:
        path = Path(d) / "ours.ome.parquet"
        OMEArrow(arr).export("parquet", path)
        rows = run_cases(path, arr, args.repeats, args.tile)
    print(report(rows, device), flush=True)
    print(f"load {os.getloadavg()[0]:.1f}; pixels of every case checked against numpy")
    if args.json_out:
        args.json_out.write_text(json.dumps({"device": device, "argv": sys.argv[1:], "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
