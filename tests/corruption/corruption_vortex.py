"""The corruption harness's Vortex files of OME-Arrow records (ome-arrow 0.1.0's layout: a struct column, one record a
row): how their samples are written, how their metadata lies are told, and where their pixel values lie.

Kinds (corruption_cases.py lists them): ``vortex_record``, ours (``export("vortex", layout="record")``: sealed with
our whole-file checksum); ``vortex_refrec``, one the real ``ome_arrow`` 0.1.0 package writes (no seal, no checksum:
vortex first reads it whole in a child process); ``vortex_rectable``, a table of three of the reference's records
and a ``well`` column, as users build them (read through ``OMEArrowDataset.scan``, one image a row).

The reference's files store no checksum, but they hold the pixels twice: the record's ``chunks`` (the copy a read
decodes) and its ``planes``. A read refuses a record whose two copies differ, so a changed byte inside either copy's
values is caught; fixed cases flip one bit in each (``pix-chunks``, ``pix-planes``: :func:`pixel_spans` finds them).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "VORTEX_RECORD_KINDS",
    "UNSEALED",
    "edit_record",
    "build_vortex_record",
    "lie_vortex_record",
    "pixel_spans",
    "RECORD_LIES",
    "CHUNK_LIES",
    "TABLE_LIES",
]

VORTEX_RECORD_KINDS = ("vortex_record", "vortex_refrec", "vortex_rectable")
#: Kinds without a seal or any checksum (written by the reference package).
UNSEALED = frozenset({"vortex_refrec", "vortex_rectable"})
#: Lies of a record's header and planes (every kind), and of its chunks (the reference's records, which carry both:
#: a read decodes the chunks).
RECORD_LIES = (
    "size_x+1",
    "size_z*2",
    "size_yx=60000",
    "type=int16",
    "type=bogus",
    "dup_plane",
    "plane_z=5",
    "drop_plane",
    "size_c=0",
)
CHUNK_LIES = ("dup_chunk", "chunk_z=5", "drop_chunk", "chunk_shape_x+1", "chunk_pixels_short", "chunks=none")
#: Lies of the table's second record: a few of each kind (the single record has them all).
TABLE_LIES = ("size_x+1", "type=int16", "dup_plane", "dup_chunk", "chunk_pixels_short", "chunks=none")


def _reference() -> Any:
    import ome_arrow

    return ome_arrow


def build_vortex_record(kind: str, out: Path, arrs: list[np.ndarray]) -> list[np.ndarray]:
    """Write sample ``kind`` of the ZCYX images ``arrs`` at ``out``; the images it holds (ZCYX)."""
    from ome_arrow_core import OMEArrow

    if kind == "vortex_record":
        OMEArrow(arrs[0], "ZCYX").export("vortex", out, layout="record")
        return arrs[:1]
    ome_arrow = _reference()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "vortex_refrec":
            ome_arrow.OMEArrow(arrs[0].transpose(1, 0, 2, 3)[None], dim_order="TCZYX").export(
                how="vortex", out=str(out)
            )
            return arrs[:1]
        import pyarrow as pa
        import vortex as vx

        rows = [ome_arrow.from_numpy(a.transpose(1, 0, 2, 3)[None], dim_order="TCZYX") for a in arrs]
    struct = pa.array([r.as_py() for r in rows], type=rows[0].type)
    vx.io.write(pa.table({"img": struct, "well": ["A01", "B02", "C03"][: len(arrs)]}), str(out))
    return arrs


def pixel_spans(file: Path) -> list[tuple[int, int]]:
    """The byte ranges of ``file`` (an intact record Vortex file) that hold pixel values: every stored occurrence of
    each plane's and chunk's values, in order."""
    import vortex as vx

    table = vx.open(str(file), memory_map=False).to_arrow().read_all()
    data = file.read_bytes()
    column = next(f.name for f in table.schema if f.name != "well")
    spans = set()
    for rec in table.column(column).to_pylist():
        dtype = np.dtype(rec["pixels_meta"]["type"])
        for item in [*(rec.get("chunks") or []), *(rec.get("planes") or [])]:
            blob = np.asarray(item["pixels"], dtype).tobytes()
            spans |= {(m.start(), m.start() + len(blob)) for m in re.finditer(re.escape(blob), data)}
    return sorted(spans)


def edit_record(rec: dict[str, Any], arg: str) -> None:
    """Make record ``rec`` (a dict) tell lie ``arg`` (one of :data:`RECORD_LIES` or :data:`CHUNK_LIES`)."""
    pm = rec["pixels_meta"]
    if arg == "size_x+1":
        pm["size_x"] += 1
    elif arg == "size_z*2":
        pm["size_z"] *= 2
    elif arg == "size_yx=60000":
        pm["size_x"] = pm["size_y"] = 60000
    elif arg.startswith("type="):
        pm["type"] = arg.split("=")[1]
    elif arg == "dup_plane":
        rec["planes"][1] = dict(rec["planes"][0])
    elif arg == "plane_z=5":
        rec["planes"][0]["z"] = 5
    elif arg == "drop_plane":
        rec["planes"] = rec["planes"][1:]
    elif arg == "size_c=0":
        pm["size_c"] = 0
    elif arg == "dup_chunk":
        rec["chunks"][1] = dict(rec["chunks"][0])
    elif arg == "chunk_z=5":
        rec["chunks"][0]["z"] = 5
    elif arg == "drop_chunk":
        rec["chunks"] = rec["chunks"][1:]
    elif arg == "chunk_shape_x+1":
        rec["chunks"][0]["shape_x"] += 1
    elif arg == "chunk_pixels_short":
        rec["chunks"][0]["pixels"] = rec["chunks"][0]["pixels"][:-1]
    elif arg == "chunks=none":  # the planes then carry the pixels (they are the same): read as the original
        rec["chunks"] = None
    else:
        raise ValueError(arg)


def lie_vortex_record(kind: str, file: Path, arg: str) -> None:
    """Rewrite the record Vortex file ``file`` with its first record edited as ``arg`` says; ours is sealed again
    (a consistent lie, as a tool rewriting the file with our writer would leave it: it reaches the record checks)."""
    import pyarrow as pa
    import vortex as vx

    table = vx.open(str(file), memory_map=False).to_arrow().read_all()
    rows = table.to_pylist()
    column = next(f.name for f in table.schema if f.name != "well")
    edit_record(rows[1 if len(rows) > 1 else 0][column], arg)  # a table's second record: a row past the first
    new = pa.Table.from_pylist(rows, schema=table.schema)
    file.unlink()
    vx.io.write(new, str(file))
    if kind not in UNSEALED:
        from ome_arrow_vortex.seal import seal

        seal(file)
