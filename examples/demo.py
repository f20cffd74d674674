"""Demo: convert a real OME-TIFF to OME-Arrow Parquet, scan it lazily and stream tensors to PyTorch.

Run with `bash scripts/demo.sh` (sets up .venv first) or `.venv/bin/python examples/demo.py [TIFF]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ome_arrow_core import OMEArrow

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "ome-artificial" / "multi-channel-z-series.ome.tiff"
OUT = ROOT / ".demo" / "sample.ome.parquet"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else SAMPLE
    print(f"1. read {src.relative_to(ROOT) if src.is_relative_to(ROOT) else src}")
    t0 = time.perf_counter()
    image = OMEArrow(src)
    print(f"   {image.sizes}  dtype={image.dtype}  ({(time.perf_counter() - t0) * 1e3:.1f} ms)")

    t0 = time.perf_counter()
    image.export("parquet", OUT, chunk_shape=(64, 64))
    print(f"2. wrote {OUT.relative_to(ROOT)} (64x64 chunks) in {(time.perf_counter() - t0) * 1e3:.1f} ms")

    scanned = OMEArrow.scan(OUT)
    info = scanned.info()
    size_x = info["physical_size"]["X"]
    print(
        f"3. scan: lazy={scanned.is_lazy}, {info['chunks']} chunks, {info['file_bytes']:,} bytes on disk, "
        f"physical size X={'unknown' if size_x is None else f'{size_x:g} ' + info['physical_unit']['X']}"
    )

    import torch

    lazy = scanned.tensor_view(t=0, z=2, roi=(32, 16, 128, 96))
    print(f"4. lazy view {lazy}; chunks read so far: {scanned.source.chunks_read}")
    view = lazy.collect()
    print(f"   collected: read {scanned.source.chunks_read} of {info['chunks']} chunks")
    t0 = time.perf_counter()
    n = 1000
    for _ in range(n):
        cap = view.to_dlpack()
    tensor = torch.from_dlpack(cap, copy=False)  # zero-copy, asked for: read only (torch.from_dlpack(cap) copies)
    print(
        f"   to_dlpack: {_us((time.perf_counter() - t0) / n)} per call -> torch {tuple(tensor.shape)} {tensor.dtype}, "
        f"zero-copy={tensor.data_ptr() == view.to_numpy().ctypes.data} (copy=False)"
    )
    assert np.array_equal(tensor.numpy(), image.to_numpy()[0, :, 2, 16:112, 32:160])  # TCZYX

    t0 = time.perf_counter()
    tiles = total = 0
    for cap in scanned.tensor_view(layout="TZCYX").iter_dlpack(tile_size=(64, 64), prefetch=2):
        t = torch.from_dlpack(cap)
        tiles += 1
        total += t.numel() * t.element_size()
    dt = time.perf_counter() - t0
    print(
        f"5. streamed {tiles} tiles ({total / 2**20:.2f} MiB) as torch tensors in {dt * 1e3:.1f} ms "
        f"({total / 2**20 / dt:.1f} MiB/s, prefetch=2); last tile {tuple(t.shape)} {t.dtype}"
    )
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
