"""One plane of a 16-plane 2048x2048 uint16 TIFF through the bioio bridge, against bioio itself and our TIFF reader.

Run: ``python backends/bioio/benchmarks/bench_plane.py`` (prints the median seconds of one call of each case
and its ratio to bioio's own ``get_image_dask_data(...).compute()`` of the same plane, measured in one run).
"""

from __future__ import annotations

import statistics
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from ome_arrow_core import OMEArrow


def median_seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median seconds of one call of ``fn`` (timeit, number auto-ranged)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return statistics.median(t / number for t in timer.repeat(repeat, number))


def main() -> None:
    from bioio import BioImage
    from bioio_tifffile import Reader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stack.tif"
        data = np.random.default_rng(0).integers(0, 65535, (16, 2048, 2048), dtype=np.uint16)
        tifffile.imwrite(path, data, metadata={"axes": "ZYX"})
        bridge = OMEArrow.scan(path, format="bioio", reader="bioio-tifffile")
        ours = OMEArrow.scan(path)
        bio = BioImage(path, reader=Reader, chunk_dims=["Y", "X"])
        assert np.array_equal(bridge.tensor_view(z=5, layout="YX").to_numpy(), data[5])
        cases: dict[str, Callable[[], object]] = {
            "bioio get_image_dask_data(Z=5).compute()": lambda: bio.get_image_dask_data("YX", Z=5).compute(
                scheduler="synchronous"
            ),
            "bridge plane (scanned)": lambda: bridge.tensor_view(z=5, layout="YX").to_numpy(),
            "bridge scan+plane": lambda: (
                OMEArrow.scan(path, format="bioio", reader="bioio-tifffile").tensor_view(z=5, layout="YX").to_numpy()
            ),
            "bridge 256x256 crop": lambda: bridge.tensor_view(z=5, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
            "ome-arrow-tiff plane (scanned)": lambda: ours.tensor_view(z=5, layout="YX").to_numpy(),
        }
        base = None
        for name, fn in cases.items():
            s = median_seconds(fn)
            base = base or s
            print(f"{name:45s} {s * 1e3:9.2f} ms  x{s / base:5.2f} of bioio")


if __name__ == "__main__":
    main()
