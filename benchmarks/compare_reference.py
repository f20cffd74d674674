"""Ours vs the reference (ome-arrow 0.1.0) on the same work, in one run, plus physical reference points.

    python benchmarks/compare_reference.py [--repeats 3] [--skip-slow-reference] [--json-out out.json]

Image: 1x2x8x2048x2048 uint16 (128 MiB), each package writing its own files: ours the default dataset, the
reference both its default (``to_ome_parquet(from_numpy(arr))``, single row, list pixels) and its best
(``write_ome_arrow_dataset``, typed chunks). Reads go through each package's scan/tensor_view API from a fresh
open. Physical points: pyarrow reading the same chunk bytes raw, and a numpy memcpy of the same size.
Seed-size cases use 1x2x3x256x256 images (whole 256x256 planes, and 64x64 chunks).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, table

from ome_arrow_core import OMEArrow


def _reference() -> Any:
    try:
        warnings.simplefilter("ignore")
        import ome_arrow

        return ome_arrow
    except ImportError:
        return None


def run(repeats: int, skip_slow: bool) -> list[dict[str, Any]]:
    ref = _reference()
    rows: list[dict[str, Any]] = []

    def case(
        name: str,
        ours: Callable[[], Any],
        theirs: Callable[[], Any] | None,
        target: str = "",
        physical: Callable[[], Any] | None = None,
        n: int = repeats,
    ) -> None:
        o = measure(ours, n, 1)["median_ms"]
        r = measure(theirs, n, 1)["median_ms"] if theirs is not None else None
        p = measure(physical, max(n, 5), 1)["median_ms"] if physical is not None else None
        rows.append(
            {
                "case": name,
                "ours_ms": o,
                "reference_ms": r,
                "physical_ms": p,
                "speedup": (r / o) if r else None,
                "target": target,
            }
        )
        print(
            f"  {name}: ours {o:.3f} ms"
            + (f", reference {r:.3f} ms ({r / o:.1f}x)" if r else "")
            + (f", physical {p:.3f} ms" if p is not None else ""),
            flush=True,
        )

    rng = np.random.default_rng(0)
    big = rng.integers(0, 4096, size=(1, 2, 8, 2048, 2048), dtype=np.uint16)  # TCZYX
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ours_p = tmp / "ours.ome.parquet"
        img = OMEArrow(big)
        ref_default, ref_best = tmp / "ref_default.parquet", tmp / "ref_best.ome-arrow"
        ref_bytes = tmp / "ref_bytes.parquet"
        write_ref = None
        if ref is not None:
            ref.write_ome_arrow_dataset([big], ref_best)
            ref.to_ome_parquet(ref.from_numpy(big, chunk_encoding="bytes"), ref_bytes, column_name="ome_arrow")
            if not skip_slow:
                write_ref = lambda: ref.to_ome_parquet(ref.from_numpy(big), ref_default, column_name="ome_arrow")
        case(
            "write 128 MiB numpy -> parquet (ref: default)",
            lambda: OMEArrow(big).export("parquet", ours_p),
            write_ref,
            ">= 20x",
            n=1 if write_ref else repeats,
        )
        if ref is not None:
            case(
                "write 128 MiB numpy -> parquet (ref: best, dataset)",
                lambda: OMEArrow(big).export("parquet", ours_p),
                lambda: ref.write_ome_arrow_dataset([big], ref_best),
                "",
            )
        img.export("parquet", ours_p)

        # raw pyarrow: the plane's chunks / the crop's one chunk, straight from chunks.parquet
        idx = pq.read_table(ours_p / "index.parquet")
        coords = {n: idx.column(n).to_numpy() for n in ("t", "c", "z", "y", "x", "row_group_id")}
        plane_groups = [
            int(g)
            for g, t, c, z in zip(coords["row_group_id"], coords["t"], coords["c"], coords["z"])
            if (t, c, z) == (0, 1, 3)
        ]
        crop_group = next(
            int(g)
            for g, t, c, z, y, x in zip(*(coords[k] for k in ("row_group_id", "t", "c", "z", "y", "x")))
            if (t, c, z, y, x) == (0, 1, 3, 512, 512)
        )

        def raw(groups: list[int]) -> Any:
            return pq.ParquetFile(ours_p / "chunks.parquet").read_row_groups(groups, columns=["pixel_bytes"])

        plane_src = np.ascontiguousarray(big[0, 1, 3])
        plane_dst = np.empty_like(plane_src)
        ref_scan = (
            (lambda f: lambda: ref.OMEArrow.scan(str(f)).tensor_view(t=0, z=3, c=1, layout="YX").to_numpy())
            if ref
            else None
        )
        case(
            "one 2048x2048 plane: scan + tensor_view + to_numpy (ref: its bytes file)",
            lambda: OMEArrow.scan(ours_p).tensor_view(t=0, z=3, c=1, layout="YX").to_numpy(),
            ref_scan(ref_bytes) if ref else None,
            ">= 10x",
            physical=lambda: raw(plane_groups),
        )
        if ref is not None:
            case(
                "one 2048x2048 plane (ref: best, OMEArrowDataset.read_plane)",
                lambda: OMEArrow.scan(ours_p).tensor_view(t=0, z=3, c=1, layout="YX").to_numpy(),
                lambda: ref.OMEArrowDataset(ref_best).read_plane(t=0, c=1, z=3),
                "",
            )
        case("memcpy of one 8 MiB plane", lambda: np.copyto(plane_dst, plane_src), None, "physical")
        ref_crop = (
            (
                lambda: (
                    ref.OMEArrow.scan(str(ref_bytes))
                    .tensor_view(t=0, z=3, c=1, roi=(512, 512, 256, 256), layout="YX")
                    .to_numpy()
                )
            )
            if ref
            else None
        )
        case(
            "one 256x256 crop: scan + tensor_view(roi) (ref: its bytes file)",
            lambda: OMEArrow.scan(ours_p).tensor_view(t=0, z=3, c=1, roi=(512, 512, 256, 256), layout="YX").to_numpy(),
            ref_crop,
            ">= 50x; <= 3x raw pyarrow",
            physical=lambda: raw([crop_group]),
        )
        if ref is not None:
            case(
                "one 256x256 crop (ref: best, OMEArrowDataset.read_region)",
                lambda: (
                    OMEArrow.scan(ours_p).tensor_view(t=0, z=3, c=1, roi=(512, 512, 256, 256), layout="YX").to_numpy()
                ),
                lambda: ref.OMEArrowDataset(ref_best).read_region(y=slice(512, 768), x=slice(512, 768), t=0, c=1, z=3),
                "",
            )
        del big

        seed = rng.integers(0, 4096, size=(1, 2, 3, 256, 256), dtype=np.uint16)
        for label, chunk in (("256x256 planes", None), ("64x64 chunks", (64, 64))):
            p_ours = tmp / f"seed_{chunk}.ome.parquet"
            OMEArrow(seed).export("parquet", p_ours, chunk_shape=chunk)
            theirs = None
            if ref is not None:
                p_ref = tmp / f"seed_ref_{chunk}.parquet"
                rec = (
                    ref.from_numpy(seed, chunk_shape=(1, 64, 64)) if chunk else ref.from_numpy(seed, build_chunks=False)
                )
                ref.to_ome_parquet(rec, p_ref, column_name="ome_arrow")
                theirs = lambda p=p_ref: ref.OMEArrow.scan(str(p)).tensor_view(t=0, z=1, c=1, layout="YX").to_numpy()
            case(
                f"seed 1x2x3x256x256, {label}: scan + tensor_view(YX)",
                lambda p=p_ours: OMEArrow.scan(p).tensor_view(t=0, z=1, c=1, layout="YX").to_numpy(),
                theirs,
                ">= 3x",
                n=max(repeats, 20),
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-slow-reference", action="store_true", help="skip the reference's ~15 s default write")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    if _reference() is None:
        print("ome-arrow 0.1.0 is not installed: only our numbers and the physical points are shown", file=sys.stderr)
    rows = run(args.repeats, args.skip_slow_reference)
    out = [("case", "ours ms", "reference ms", "ref/ours", "physical ms", "target")]
    for r in rows:
        out.append(
            (
                r["case"],
                f"{r['ours_ms']:.3f}",
                f"{r['reference_ms']:.3f}" if r["reference_ms"] else "-",
                f"{r['speedup']:.1f}x" if r["speedup"] else "-",
                f"{r['physical_ms']:.3f}" if r["physical_ms"] is not None else "-",
                r["target"],
            )
        )
    print(table(out))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
