"""Lazy read and tensor export benchmarks (a CI canary against ci-baseline.json).

    python benchmarks/benchmark_lazy_tensor.py --repeats 5 --warmup 1 --json-out out.json \
        --baseline-json benchmarks/ci-baseline.json --regression-factor 5 --absolute-slack-ms 25 --fail-on-regression

Cases: scan + TIFF / Parquet (planes) / Parquet (chunks) -> tensor_view(YX) on a 1x2x3x256x256 uint16 image,
to_dlpack(mode="arrow") on a 64 KiB and a 64 MiB plane, and 256x256 tile streaming over a 2048x2048 plane
compared with a numpy memcpy of the same bytes. ``--scale`` adds the 1x2x8x2048x2048 (128 MiB) cases.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, peak_rss_mib, per_call, table

from ome_arrow_core import OMEArrow


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, size=shape, dtype=np.uint16)


def seed_cases(tmp: Path, repeats: int, warmup: int) -> dict[str, dict[str, Any]]:
    """The 1x2x3x256x256 uint16 cases."""
    arr = _image((1, 2, 3, 256, 256))  # TCZYX
    img = OMEArrow(arr)
    out: dict[str, dict[str, Any]] = {}
    planes = tmp / "planes.ome.parquet"
    chunks = tmp / "chunks.ome.parquet"
    img.export("parquet", planes)
    img.export("parquet", chunks, chunk_shape=(64, 64))
    try:
        import tifffile

        from ome_arrow_core import default_registry

        default_registry().resolve_reader("x.ome.tiff").ensure_available()
        tif = tmp / "seed.ome.tiff"
        tifffile.imwrite(tif, arr, ome=True, metadata={"axes": "TCZYX"}, photometric="minisblack")
        out["scan_tiff_yx"] = measure(
            lambda: OMEArrow.scan(tif).tensor_view(t=0, z=0, c=0, layout="YX").to_numpy(), repeats, warmup
        )
    except (ImportError, LookupError):
        print("TIFF backend missing (pip install 'ome-arrow-core[tiff]'): skipping scan_tiff_yx", file=sys.stderr)
    out["scan_parquet_planes_yx"] = measure(
        lambda: OMEArrow.scan(planes).tensor_view(t=0, z=0, c=0, layout="YX").to_numpy(), repeats, warmup
    )
    out["scan_parquet_chunks_yx"] = measure(
        lambda: OMEArrow.scan(chunks).tensor_view(t=0, z=0, c=0, layout="YX").to_numpy(), repeats, warmup
    )
    scanned = OMEArrow.scan(chunks)
    out["scanned_crop_64_yx"] = measure(
        lambda: scanned.tensor_view(t=0, z=1, c=1, roi=(64, 64, 64, 64), layout="YX").to_numpy(), repeats, warmup
    )
    return out


def dlpack_cases(repeats: int) -> dict[str, dict[str, Any]]:
    """to_dlpack(mode="arrow") per call on a 64 KiB and a 64 MiB plane."""
    out: dict[str, dict[str, Any]] = {}
    for label, edge in (("64KiB", 181), ("64MiB", 5793)):
        view = OMEArrow(np.zeros((edge, edge), np.uint16)).tensor_view(layout="YX")
        out[f"to_dlpack_arrow_{label}"] = per_call(view.to_dlpack, 2000, repeats)
    return out


def stream_cases(repeats: int, warmup: int) -> dict[str, dict[str, Any]]:
    """256x256 tiles over a 2048x2048 uint16 plane through iter_dlpack vs a memcpy of the plane.

    Default tiles are zero-copy strided views; ``_contiguous`` copies each into C order first.
    """
    plane = _image((2048, 2048))
    view = OMEArrow(plane).tensor_view(layout="YX")

    def stream(contiguous: bool) -> None:
        for cap in view.iter_dlpack(tile_size=(256, 256), contiguous=contiguous):
            np.from_dlpack(cap)

    dst = np.empty_like(plane)
    out = {
        "tiles_256_stream_2048": measure(lambda: stream(False), repeats, warmup),
        "tiles_256_stream_2048_contiguous": measure(lambda: stream(True), repeats, warmup),
        "memcpy_8MiB": measure(lambda: np.copyto(dst, plane), repeats, warmup),
    }
    mib = plane.nbytes / 2**20
    for k in out:
        out[k]["mib_per_s"] = mib / (out[k]["median_ms"] / 1e3)
    return out


def scale_cases(tmp: Path, repeats: int, warmup: int) -> dict[str, dict[str, Any]]:
    """The 1x2x8x2048x2048 uint16 (128 MiB) cases."""
    arr = _image((1, 2, 8, 2048, 2048))
    img = OMEArrow(arr)
    path = tmp / "big.ome.parquet"
    out = {"write_128MiB_parquet": measure(lambda: img.export("parquet", path), max(1, repeats // 2), 0)}
    out["scan_full_plane_2048"] = measure(
        lambda: OMEArrow.scan(path).tensor_view(t=0, z=3, c=1, layout="YX").to_numpy(), repeats, warmup
    )
    out["scan_crop_256"] = measure(
        lambda: OMEArrow.scan(path).tensor_view(t=0, z=3, c=1, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
        repeats,
        warmup,
    )
    return out


def compare(results: dict[str, dict[str, Any]], baseline: dict[str, Any], factor: float, slack: float) -> list[str]:
    """Cases whose median exceeds factor * baseline + slack."""
    bad = []
    for name, base in baseline.get("cases", {}).items():
        got = results.get(name)
        if got is not None and got["median_ms"] > factor * base["median_ms"] + slack:
            bad.append(f"{name}: {got['median_ms']:.3f} ms > {factor} x {base['median_ms']:.3f} ms + {slack} ms")
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json-out", type=Path)
    p.add_argument("--baseline-json", type=Path)
    p.add_argument("--regression-factor", type=float, default=3.0)
    p.add_argument("--absolute-slack-ms", type=float, default=5.0)
    p.add_argument("--fail-on-regression", action="store_true")
    p.add_argument("--scale", action="store_true", help="add the 128 MiB cases (slower)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = seed_cases(tmp, args.repeats, args.warmup)
        results.update(dlpack_cases(args.repeats))
        results.update(stream_cases(args.repeats, args.warmup))
        if args.scale:
            results.update(scale_cases(tmp, args.repeats, args.warmup))
    results_rss = peak_rss_mib()

    baseline = json.loads(args.baseline_json.read_text()) if args.baseline_json else {}
    rows = [("case", "median", "min", "max", "baseline", "MiB/s")]
    for name, r in results.items():
        base = baseline.get("cases", {}).get(name, {}).get("median_ms")
        rows.append(
            (
                name,
                f"{r['median_ms']:.4f} ms",
                f"{r['min_ms']:.4f}",
                f"{r['max_ms']:.4f}",
                f"{base:.4f}" if base is not None else "-",
                f"{r['mib_per_s']:.0f}" if "mib_per_s" in r else "",
            )
        )
    print(table(rows))
    print(f"peak RSS {results_rss:.0f} MiB")
    report = {"cases": results, "peak_rss_mib": results_rss}
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2))
    bad = compare(results, baseline, args.regression_factor, args.absolute_slack_ms) if baseline else []
    for line in bad:
        print("REGRESSION", line)
    return 1 if bad and args.fail_on_regression else 0


if __name__ == "__main__":
    sys.exit(main())
