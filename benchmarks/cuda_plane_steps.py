"""Where one plane's way from the file to the GPU goes: each step of ``to_dlpack(device="cuda")`` timed alone.

    python benchmarks/cuda_plane_steps.py [--size 2048] [--z 16] [--repeats 15] [--json-out steps.json]

The companion of :mod:`peers_cuda` (whose "read+copy" row is the sum of these steps): the same 1x1xZxSxS uint16
camera image written by ours, one plane at z=Z/2 read from a warm page cache by a new lazy view each time. Steps,
for each of CuPy's and torch's exporters where present (and JAX's whole call): the read into Arrow's memory (no exporter), the read into
the exporter's pinned memory (``Exporter.host_memory``, what a CUDA export of a lazy view does), the allocation of
that pinned memory alone, the copy of a pinned read to the device alone (the exporter's own call, and the
library's bare copy), and the whole ``to_dlpack(device="cuda")``; then a pinned buffer's copy (the ceiling).
Rounds interleave every step in a new seeded order; medians of wall and process CPU ms. Without a CUDA device it
prints ``no CUDA device: steps skipped`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved
from cuda_cases import Gpu, find_device

from ome_arrow_core import OMEArrow
from ome_arrow_core.host_memory import host_memory

Step = tuple[str, Callable[[], Any]]


def cupy_steps(gpu: Gpu, img: OMEArrow, z: int) -> list[Step]:
    """The CuPy exporter's steps for one plane."""
    from ome_arrow_cupy import export as cx

    cp = gpu.cp

    def view() -> Any:
        return img.tensor_view(t=0, c=0, z=z, layout="YX")

    def pinned_read() -> np.ndarray:
        with host_memory(cx.pinned_host):
            return view().to_numpy()

    held = pinned_read()
    assert cx.is_pinned_host(held)
    out = cp.empty(held.shape, held.dtype)
    stream = cp.cuda.Stream(non_blocking=True)

    def set_only() -> None:
        out.set(held, stream=stream)
        stream.synchronize()

    def export_only() -> None:
        cx.export_cupy(_Held(held))
        cp.cuda.Device(0).synchronize()

    def whole() -> None:
        cp.from_dlpack(view().to_dlpack(device="cuda"))
        cp.cuda.Device(0).synchronize()

    current = cp.cuda.get_current_stream()
    (queued,) = cx._events(cp, 0, 1, "queued")

    def ordered() -> None:
        queued.record(current)
        stream.wait_event(queued)

    def on_current() -> None:  # the copy on the current stream, then that stream synchronised: no events
        out.set(held, stream=current)
        current.synchronize()

    def in_device() -> None:
        with cp.cuda.Device(0):
            pass

    parts: list[Step] = [
        ("cupy part: check_device", lambda: cx.check_device(cp, 0)),
        ("cupy part: with cp.cuda.Device(0)", in_device),
        ("cupy part: event record + wait_event", ordered),
        ("cupy part: is_pinned_host", lambda: cx.is_pinned_host(held)),
        ("cupy part: cp.from_dlpack(device array)", lambda: cp.from_dlpack(out)),
        ("cupy alt: set on the current stream + sync", on_current),
    ]
    return [
        *parts,
        ("cupy: read into pinned memory", pinned_read),
        ("cupy: pinned allocation alone", lambda: cx.pinned_host(held.nbytes)),
        ("cupy: cp.empty alone", lambda: cp.empty(held.shape, held.dtype)),
        ("cupy: ndarray.set of a pinned read + sync", set_only),
        ("cupy: export_cupy of a pinned read", export_only),
        ("cupy: whole to_dlpack(device='cuda')", whole),
    ]


def torch_steps(gpu: Gpu, img: OMEArrow, z: int) -> list[Step]:
    """The torch exporter's steps for one plane."""
    from ome_arrow_torch import export as tx

    torch = gpu.torch

    def view() -> Any:
        return img.tensor_view(t=0, c=0, z=z, layout="YX")

    def pinned_read() -> np.ndarray:
        with host_memory(tx.pinned_host):
            return view().to_numpy()

    held = pinned_read()
    assert tx.pinned_tensor(held) is not None, "a pinned read is not found as a pinned tensor"

    def to_only() -> None:
        pinned = tx.pinned_tensor(held)
        assert pinned is not None
        pinned.to("cuda", non_blocking=True)
        torch.cuda.synchronize()

    def export_only() -> None:
        tx.export_cuda(_Held(held))
        torch.cuda.synchronize()

    def whole() -> None:
        view().to_torch(device="cuda")
        torch.cuda.synchronize()

    from ome_arrow_core.plugin_api import zero_copy_array

    parts: list[Step] = [
        ("torch part: check_cuda", lambda: tx.check_cuda(0)),
        ("torch part: zero_copy_array", lambda: zero_copy_array(_Held(held))),  # type: ignore[arg-type]
        ("torch part: pinned_tensor", lambda: tx.pinned_tensor(held)),
    ]
    return [
        *parts,
        ("torch: read into pinned memory", pinned_read),
        ("torch: pinned allocation alone", lambda: tx.pinned_host(held.nbytes)),
        ("torch: pinned view .to(cuda) + sync", to_only),
        ("torch: export_cuda of a pinned read", export_only),
        ("torch: whole to_torch(device='cuda')", whole),
    ]


def jax_steps(gpu: Gpu, img: OMEArrow, z: int) -> list[Step]:
    """The JAX exporter's whole call for one plane, against ``jax.device_put`` of the numpy read (pageable)."""
    import jax

    dev = jax.devices("gpu")[0]
    held = img.tensor_view(t=0, c=0, z=z, layout="YX").to_numpy()

    def whole() -> None:
        img.tensor_view(t=0, c=0, z=z, layout="YX").to_jax(device="cuda").block_until_ready()

    return [
        ("jax: device_put(numpy plane) + ready", lambda: jax.device_put(held, dev).block_until_ready()),
        ("jax: whole to_jax(device='cuda') + ready", whole),
    ]


class _Held:
    """A stand-in view whose ``to_numpy`` is an array already read (the exporters' only call on a view here)."""

    def __init__(self, arr: np.ndarray) -> None:
        self._arr = arr

    def to_numpy(self) -> np.ndarray:
        return self._arr

    def __getattr__(self, name: str) -> Any:  # zero_copy_array asks for more of a view
        raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--z", type=int, default=16)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    for name in ("size", "z", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    device, why = find_device()
    if device is None:
        print(f"no CUDA device: steps skipped ({why})")
        return 0
    gpu = Gpu()
    from peers_libs import camera_image

    arr = camera_image((1, 1, args.z, args.size, args.size))
    z = args.z // 2
    with tempfile.TemporaryDirectory(prefix="cuda_steps_") as d:
        path = Path(d) / "ours.ome.parquet"
        OMEArrow(arr).export("parquet", path)
        img = OMEArrow.scan(path)
        steps: list[Step] = [
            ("read into Arrow's memory", lambda: img.tensor_view(t=0, c=0, z=z, layout="YX").to_numpy()),
            ("a lazy view made alone", lambda: img.tensor_view(t=0, c=0, z=z, layout="YX")),
        ]
        makers = [cupy_steps if gpu.cp is not None else None, torch_steps if gpu.torch is not None else None, jax_steps]
        for make in makers:
            if make is not None:
                try:
                    steps += make(gpu, img, z)
                except Exception as exc:  # one library's steps failing must not hide the other's
                    print(f"{make.__name__} failed: {type(exc).__name__}: {exc}")
        steps.append(("ceiling: pinned buffer to device", gpu.pinned_copy(arr[0, 0, z].nbytes)))
        for _, fn in steps:
            fn()
        rows = interleaved([fn for _, fn in steps], args.repeats)
    print(f"one {args.size}x{args.size} uint16 plane on {device} (medians of {args.repeats} interleaved rounds)")
    print(f"{'step':48} {'ms':>8} {'min':>8} {'cpu ms':>8}")
    for (name, _), row in zip(steps, rows):
        print(f"{name:48} {row['median_ms']:8.3f} {row['min_ms']:8.3f} {row['cpu_ms']:8.3f}")
    if args.json_out:
        args.json_out.write_text(json.dumps({n: r for (n, _), r in zip(steps, rows)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
