"""Corruption harness: build one small file of every storage kind we write, mutate it, read it back.

Every mutant must read as exactly the original pixels or raise an :class:`OMEArrowError`
whose message names the file; any other exception, wrong pixels, a hang or unbounded memory
is a failure. Cases are deterministic (seeded by their id).

Kinds: Parquet datasets (lz4 and uncompressed chunks, Vortex chunks, an appended dataset), a
struct-record Parquet file, a single Vortex file, an OME-TIFF we write and one tifffile writes.
Mutation classes: ``truncate``, ``bitflip``, ``byteset``, ``zero``, ``delete``, ``swap_twin``
(the same member of a dataset with the same shapes, other pixels), ``swap_other`` (of a
dataset with other shapes and dtype), ``lie`` (metadata edited to claim other sizes, dtypes,
ids, paths...), and ``fifo`` (a member replaced by a FIFO; run in a subprocess).

The default run is a few hundred cases; ``OME_ARROW_CORE_FUZZ_CASES=5000`` makes more random
variants. Run it alone with ``python tests/corruption/corruption_harness.py [--cases N]``,
which prints the outcome counts per mutation class.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import sys
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Seconds one case may take before it counts as a hang.
CASE_TIMEOUT = 20
#: Peak memory one case may add (traced Python/numpy allocations and resident set), beyond the file size.
MEMORY_BOUND = 64 << 20
SEED = 20260101

#: Storage kinds and their members (file names relative to the sample; "" is the file itself).
KINDS: dict[str, tuple[str, ...]] = {
    "ds_lz4": ("_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.parquet"),
    "ds_none": ("_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.parquet"),
    "ds_vortex": ("_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.vortex"),
    "ds_append": ("_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.parquet",
                  "images-00001.parquet", "index-00001.parquet", "chunks-00001.parquet"),
    "record": ("",),
    "vortex": ("",),
    "tiff_ours": ("",),
    "tiff_tifffile": ("",),
}
SUFFIX = {"ds_lz4": ".ome.parquet", "ds_none": ".ome.parquet", "ds_vortex": ".ome.parquet",
          "ds_append": ".ome.parquet", "record": ".parquet", "vortex": ".vortex", "tiff_ours": ".ome.tiff",
          "tiff_tifffile": ".ome.tif"}
BYTE_CLASSES = ("truncate", "bitflip", "byteset", "zero")
#: Random variants per (kind, member, byte mutation class) in the default run (truncate adds fixed offsets).
DEFAULT_VARIANTS = {"truncate": 1, "bitflip": 3, "byteset": 1, "zero": 2}


def role(member: str) -> str:
    """What a member is: manifest, images, index, chunks, or file (a single-file kind)."""
    if not member:
        return "file"
    if member.endswith(".json"):
        return "manifest"
    return member.split(".")[0].split("-")[0]


# -- samples --------------------------------------------------------------------------------------
def _arrays(seed: int, n: int, dtype: str = "uint16", shape: tuple[int, ...] = (2, 2, 16, 16)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 60000, shape).astype(dtype) for _ in range(n)]


def build(kind: str, out: Path, variant: str = "main") -> list[np.ndarray]:
    """Write sample ``kind`` at ``out``; returns its images' pixels (TZCYX), in order.

    ``variant`` "twin" has the same shapes and other pixels; "other" other shapes and dtype.
    """
    import tifffile

    from ome_arrow_core import OMEArrow, write_dataset

    seed = {"main": 1, "twin": 2, "other": 3}[variant]
    shape, dtype = ((2, 2, 16, 16), "uint16") if variant != "other" else ((3, 1, 12, 20), "int32")
    arrs = _arrays(seed, 3, dtype, shape)
    opts: dict[str, Any] = {"dim_order": "ZCYX", "chunk_shape": (8, 8), "progress": False}
    if kind == "ds_lz4":
        write_dataset(arrs, out, rows_per_group=2, metadata={"well": ["A01", "B02", "C03"]}, **opts)
    elif kind == "ds_none":
        write_dataset(arrs, out, compression=None, **opts)
    elif kind == "ds_vortex":
        write_dataset(arrs, out, chunk_format="vortex", **opts)
    elif kind == "ds_append":
        write_dataset(arrs[:2], out, **opts)
        write_dataset(arrs[2:], out, mode="append", **opts)
    else:
        arrs = arrs[:1]
        img = OMEArrow(arrs[0], "ZCYX")
        if kind == "record":
            img.export("parquet", out, layout="record")
        elif kind == "vortex":
            img.export("vortex", out, chunk_shape=(8, 8))
        elif kind == "tiff_ours":
            img.export("ome-tiff", out)
        elif kind == "tiff_tifffile":
            tifffile.imwrite(out, arrs[0], ome=True, metadata={"axes": "ZCYX"}, tile=(16, 16), compression="zlib")
        else:
            raise ValueError(kind)
    return [a.reshape(1, *a.shape) for a in arrs]


# -- cases ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One mutant: sample ``kind``, mutation class ``cls`` of ``member``, variant ``arg``."""

    kind: str
    cls: str
    member: str
    arg: str

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.cls}/{self.member or 'file'}/{self.arg}"

    @property
    def role(self) -> str:
        return role(self.member)


def _lies(kind: str) -> dict[str, tuple[str, ...]]:
    """The metadata lies of ``kind``, by member."""
    if kind.startswith("ds_"):
        images = ("size_x+1", "size_x-1", "size_z*2", "size_yx=60000", "dtype=uint8", "dtype=int16",
                  "dtype=float32", "dtype=bogus", "image_id=dup", "image_id=zzz", "channels_json=junk",
                  "size_c=0", "size_t=-1", "chunk_y=0")
        index = ("shape_x+1", "x=0", "drop_row", "dup_row", "swap_rig", "row_group_id+1000",
                 "chunk_id=dup", "fragment_path=../x", "fragment_path=/etc/passwd", "fragment_path=other",
                 "rows=1000000", "row_index_in_group=-1")
        manifest = ("image_count+1", "format_version=99", "appends=missing", "appends=../x", "json=list",
                    "appends=bad", "non_utf8", "appends=[]")
        out = {"images.parquet": images, "index.parquet": index, "_ome_arrow_dataset.json": manifest}
        if kind == "ds_append":
            out["images-00001.parquet"] = ("size_x+1", "dtype=int16", "image_id=dup")
            out["index-00001.parquet"] = ("x=0", "drop_row", "fragment_path=../x")
        return out
    if kind == "record":
        return {"": ("size_x+1", "size_z*2", "size_yx=60000", "type=int16", "type=bogus", "dup_plane",
                     "plane_z=5", "drop_plane", "size_c=0")}
    if kind == "vortex":
        return {"": ("size_x+1", "size_z*2", "size_yx=60000", "dtype=int16", "dtype=bogus", "chunk=0")}
    return {"": ("SizeT=8", "SizeZ=4", "SizeZ=1", "SizeC=4", "SizeX+1", "Type=uint8", "Type=int16",
                 "DimensionOrder=XYTZC", "no_tiffdata", "xml=junk", "IFD=99", "PlaneCount=1")}


def cases(total: int | None = None) -> list[Case]:
    """Every case of a run; ``total`` (default env OME_ARROW_CORE_FUZZ_CASES) scales the random variants."""
    if total is None:
        total = int(os.environ.get("OME_ARROW_CORE_FUZZ_CASES", "0") or 0)
    groups = [(k, m) for k, members in KINDS.items() for m in members]
    per = dict(DEFAULT_VARIANTS)
    fixed = len(groups) * (len(per) + 5)  # rough count of the non-random cases
    if total:
        scale = max(1.0, (total - fixed) / (len(groups) * sum(per.values())))
        per = {c: max(n, math.ceil(n * scale)) for c, n in per.items()}
    out: list[Case] = []
    for kind, member in groups:
        for off in ("0", "8", "half", "end-1", "end-8"):
            out.append(Case(kind, "truncate", member, off))
        for cls, n in per.items():
            out += [Case(kind, cls, member, f"r{i}") for i in range(n)]
        if kind.startswith("ds_"):
            out += [Case(kind, "delete", member, "-"), Case(kind, "swap_twin", member, "-"),
                    Case(kind, "swap_other", member, "-")]
    for kind in KINDS:
        for member, lies in _lies(kind).items():
            out += [Case(kind, "lie", member, lie) for lie in lies]
    return out


def fifo_cases() -> list[Case]:
    """A FIFO in place of each member of each kind (one per distinct role)."""
    out = []
    for kind, members in KINDS.items():
        for member in members:
            out.append(Case(kind, "fifo", member, "-"))
    return out


# -- mutations ------------------------------------------------------------------------------------
def _rng(case: Case) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(case.id.encode())])


def _target(root: Path, member: str) -> Path:
    return root / member if member else root


def mutate(case: Case, root: Path, partners: dict[str, Path]) -> None:
    """Apply ``case`` to the sample at ``root`` (``partners``: "twin"/"other" samples of the same kind)."""
    file = _target(root, case.member)
    rng = _rng(case)
    if case.cls in BYTE_CLASSES:
        data = bytearray(file.read_bytes())
        size = len(data)
        if case.cls == "truncate":
            named = {"0": 0, "1": 1, "8": 8, "half": size // 2, "end-1": size - 1, "end-8": size - 8}
            at = named[case.arg] if case.arg in named else int(rng.integers(0, size))
            data = data[: max(0, min(at, size - 1))]
        elif case.cls == "bitflip":
            at = int(rng.integers(0, size))
            data[at] ^= 1 << int(rng.integers(0, 8))
        elif case.cls == "byteset":
            at = int(rng.integers(0, size))
            data[at] = (data[at] + int(rng.integers(1, 256))) % 256
        else:  # zero
            n = int(rng.integers(1, 257))
            at = int(rng.integers(0, max(1, size - n)))
            data[at : at + n] = bytes(len(data[at : at + n]))
        file.write_bytes(bytes(data))
    elif case.cls == "delete":
        file.unlink()
    elif case.cls in ("swap_twin", "swap_other"):
        src = _target(partners["twin" if case.cls == "swap_twin" else "other"], case.member)
        shutil.copyfile(src, file)
    elif case.cls == "lie":
        lie(case, root, file)
    elif case.cls == "fifo":
        file.unlink()
        os.mkfifo(file)
    else:
        raise ValueError(case.cls)


def _rewrite_parquet(file: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
                     rows: int | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    data = edit(table.to_pylist())
    new = pa.Table.from_pylist(data, schema=table.schema)
    pq.write_table(new, file)


def lie(case: Case, root: Path, file: Path) -> None:
    """Edit the metadata of ``file`` so that it claims what case.arg says."""
    arg = case.arg
    if case.kind.startswith("ds_") and case.role == "manifest":
        doc = json.loads(file.read_text())
        ours = doc.setdefault("ome_arrow_core", {})
        if arg == "image_count+1":
            doc["image_count"] = int(doc.get("image_count", 0)) + 1
        elif arg == "format_version=99":
            ours["format_version"] = 99
        elif arg == "appends=missing":
            ours["appends"] = [*ours.get("appends", []), {"images": "images-00009.parquet", "index": "index-00009.parquet"}]
        elif arg == "appends=../x":
            ours["appends"] = [{"images": "../images.parquet", "index": "../index.parquet"}]
        elif arg == "appends=bad":
            ours["appends"] = [17]
        elif arg == "appends=[]":
            ours["appends"] = []
        elif arg == "json=list":
            doc = [doc]  # type: ignore[assignment]
        if arg == "non_utf8":
            file.write_bytes(b'{"name": "\xff\xfe"}')
        else:
            file.write_text(json.dumps(doc))
        return
    if case.kind.startswith("ds_") and case.role == "images":
        def edit_images(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            r = rows[0]
            if arg == "size_x+1":
                r["size_x"] += 1
            elif arg == "size_x-1":
                r["size_x"] -= 1
            elif arg == "size_z*2":
                r["size_z"] *= 2
            elif arg == "size_yx=60000":
                r["size_y"] = r["size_x"] = 60000
            elif arg.startswith("dtype="):
                r["dtype"] = arg.split("=")[1]
            elif arg == "image_id=dup" and len(rows) > 1:
                r["image_id"] = rows[1]["image_id"]
            elif arg == "image_id=dup":
                r["image_id"] = "image-00000"
            elif arg == "image_id=zzz":
                r["image_id"] = "zzz"
            elif arg == "channels_json=junk":
                r["channels_json"] = "{[not json"
            elif arg == "size_c=0":
                r["size_c"] = 0
            elif arg == "size_t=-1":
                r["size_t"] = -1
            elif arg == "chunk_y=0":
                r["chunk_y"] = 0
            return rows
        _rewrite_parquet(file, edit_images)
        return
    if case.kind.startswith("ds_") and case.role == "index":
        def edit_index(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if arg == "shape_x+1":
                rows[0]["shape_x"] += 1
            elif arg == "x=0":
                k = next(i for i, r in enumerate(rows) if r["x"] > 0)
                rows[k]["x"] = 0
            elif arg == "drop_row":
                rows = rows[1:]
            elif arg == "dup_row":
                rows = [rows[0], *rows]
            elif arg == "swap_rig":
                a, b = rows[0], next(r for r in rows[1:] if r["row_group_id"] == rows[0]["row_group_id"]) \
                    if any(r["row_group_id"] == rows[0]["row_group_id"] for r in rows[1:]) else rows[1]
                for key in ("row_group_id", "row_index_in_group"):
                    a[key], b[key] = b[key], a[key]
            elif arg == "row_group_id+1000":
                rows[0]["row_group_id"] += 1000
            elif arg == "chunk_id=dup":
                rows[1]["chunk_id"] = rows[0]["chunk_id"]
            elif arg.startswith("fragment_path="):
                value = arg.split("=", 1)[1]
                rows[0]["fragment_path"] = "chunks-00007.parquet" if value == "other" else value
            elif arg == "rows=1000000":
                rows = rows * (1000000 // len(rows))
            elif arg == "row_index_in_group=-1":
                rows[0]["row_index_in_group"] = -1
            return rows
        _rewrite_parquet(file, edit_index)
        return
    if case.kind == "record":
        def edit_record(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            rec = rows[0]["ome_arrow"]
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
            return rows
        _rewrite_parquet(file, edit_record)
        return
    if case.kind == "vortex":
        _lie_vortex(file, arg)
        return
    _lie_tiff(file, arg)


def _lie_vortex(file: Path, arg: str) -> None:
    import pyarrow as pa
    import vortex as vx

    table = vx.open(str(file)).to_arrow().read_all()
    doc = json.loads(table.column("meta")[0].as_py())
    sizes = doc["image"]["sizes"]
    if arg == "size_x+1":
        sizes["X"] += 1
    elif arg == "size_z*2":
        sizes["Z"] *= 2
    elif arg == "size_yx=60000":
        sizes["X"] = sizes["Y"] = 60000
    elif arg.startswith("dtype="):
        doc["image"]["dtype"] = arg.split("=")[1]
    elif arg == "chunk=0":
        doc["chunk_shape"] = [0, 8]
    metas = [json.dumps(doc)] + [None] * (table.num_rows - 1)
    i = table.schema.get_field_index("meta")
    table = table.set_column(i, "meta", pa.array(metas, pa.string()))
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.large_binary()}
    table = table.cast(pa.schema([f.with_type(plain.get(f.type, f.type)) for f in table.schema]))
    file.unlink()
    vx.io.write(table, str(file))


def _lie_tiff(file: Path, arg: str) -> None:
    import tifffile

    with tifffile.TiffFile(file) as tif:
        xml = tif.pages[0].description
    if arg == "xml=junk":
        xml = xml[: len(xml) // 2]
    elif arg == "no_tiffdata":
        xml = re.sub(r"<TiffData[^>]*/>", "", xml)
    elif arg == "IFD=99":
        xml = re.sub(r'IFD="\d+"', 'IFD="99"', xml, count=1)
    elif arg == "PlaneCount=1":
        xml = re.sub(r'PlaneCount="\d+"', 'PlaneCount="1"', xml)
    elif arg == "SizeX+1":
        xml = re.sub(r'SizeX="(\d+)"', lambda m: f'SizeX="{int(m.group(1)) + 1}"', xml)
    else:
        key, value = arg.split("=")
        xml = re.sub(rf'{key}="[^"]*"', f'{key}="{value}"', xml)
    tifffile.tiffcomment(file, xml.encode())


# -- running one case -----------------------------------------------------------------------------
class Hang(Exception):
    """A case ran past CASE_TIMEOUT."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no result after {CASE_TIMEOUT} s")


def read_everything(kind: str, root: Path) -> list[np.ndarray]:
    """Scan ``root`` and read every image in every way a user would; the images' pixels, in order."""
    from ome_arrow_core import OMEArrow, OMEArrowDataset

    if kind == "record":  # one struct record (scan of one-row record files is issue 10's; read it directly)
        return [OMEArrow.scan(root).to_numpy(), OMEArrow(root).to_numpy()][:1]
    ds = OMEArrowDataset.scan(root)
    each = [ds[i].to_numpy() for i in range(len(ds))]
    if kind.startswith("ds_"):
        batch = ds.read() if len(ds) else np.zeros((0,))
        rows = [OMEArrow.scan(root, row=i).to_numpy() for i in range(len(ds))]
        for i, img in enumerate(each):
            if not (np.array_equal(batch[i].reshape(img.shape), img) and np.array_equal(rows[i], img)):
                raise WrongPixels(f"image {i}: ds.read(), ds[i] and OMEArrow.scan(row=i) disagree")
    else:
        each.append(OMEArrow(root).to_numpy())
    return each


class WrongPixels(Exception):
    """The read returned pixels that are not the file's."""


@dataclass
class Outcome:
    """What one case did: ``status`` is "pixels" (exactly the original), "error" (ours, naming the file) or "failure"."""

    status: str
    detail: str = ""


def _hwm_kib() -> int:
    with open("/proc/self/status") as fh:
        m = re.search(r"VmHWM:\s+(\d+)", fh.read())
    return int(m.group(1)) if m else 0


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_case(case: Case, workdir: Path, samples: dict[tuple[str, str], tuple[Path, list[np.ndarray]]],
             cli: bool = True) -> Outcome:
    """Copy the sample, mutate it, read everything under a timeout and memory watch; classify the outcome."""
    from ome_arrow_core import OMEArrowError

    src, expected = samples[(case.kind, "main")]
    root = workdir / src.name
    if root.exists() or root.is_symlink():
        shutil.rmtree(root) if root.is_dir() else root.unlink()
    if src.is_dir():
        shutil.copytree(src, root)
    else:
        shutil.copyfile(src, root)
    partners = {v: samples[(case.kind, v)][0] for v in ("twin", "other") if (case.kind, v) in samples}
    mutate(case, root, partners)
    _clear_caches()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else (
        root.stat().st_size if root.is_file() else 0)
    old = signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.start()
    hwm_ok = _reset_hwm()
    base = _hwm_kib()
    signal.alarm(CASE_TIMEOUT)
    try:
        got = read_everything(case.kind, root)
        outcome = _compare(got, expected)
    except Hang as exc:
        outcome = Outcome("failure", f"hang: {exc}")
    except WrongPixels as exc:
        outcome = Outcome("failure", f"wrong pixels: {exc}")
    except OMEArrowError as exc:
        text = str(exc)
        if str(root) in text or root.name in text:
            outcome = Outcome("error", f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")
        else:
            outcome = Outcome("failure", f"{type(exc).__name__} does not name the file: {text[:300]}")
    except BaseException as exc:  # noqa: BLE001 (a foreign exception is exactly what we look for)
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = Outcome("failure", f"foreign {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = (_hwm_kib() - base) * 1024 if hwm_ok else 0
    bound = MEMORY_BOUND + 4 * size
    if peak > bound or rss > bound:
        outcome = Outcome("failure", f"memory: traced peak {peak >> 20} MiB, resident +{rss >> 20} MiB, "
                                     f"bound {bound >> 20} MiB ({outcome.status}: {outcome.detail})")
    _clear_caches()
    if cli:
        old = signal.signal(signal.SIGALRM, _alarm)
        try:
            problem = run_cli(root, workdir, outcome.status)
        finally:
            signal.signal(signal.SIGALRM, old)
        if problem is not None:
            outcome = Outcome("failure", f"cli {problem}" + (f" (read: {outcome.detail})" if outcome.detail else ""))
    return outcome


def run_cli(root: Path, workdir: Path, read_status: str) -> str | None:
    """``ome-arrow-core info`` and ``convert`` on a mutant (in-process); a failure detail, or None.

    Each must exit 0, or exit 1 printing exactly one line on stderr that starts with
    ``error:`` and is no traceback; after a read error they must not exit 0 with nothing said.
    """
    import contextlib
    import io

    from ome_arrow_core.cli import main

    out = workdir / "converted.ome.parquet"
    for argv in (["info", str(root)], ["convert", str(root), "-o", str(out), "-q"]):
        err, std = io.StringIO(), io.StringIO()
        signal.alarm(CASE_TIMEOUT)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
                code = main(argv)
        except Hang:
            return f"{argv[0]}: hang"
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            return f"{argv[0]}: raised {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.alarm(0)
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            _clear_caches()
        lines = err.getvalue().splitlines()
        if code == 0 and not lines:
            continue
        if code != 1 or len(lines) != 1 or not lines[0].startswith("error: ") or "Traceback" in err.getvalue():
            return f"{argv[0]}: exit {code}, stderr {err.getvalue()[:300]!r}"
    return None


def _compare(got: list[np.ndarray], expected: list[np.ndarray]) -> Outcome:
    want = expected if len(got) == len(expected) else None
    if want is None and len(got) == len(expected) + 1:  # single files: the dataset view and the direct read
        want = [*expected, expected[0]]
    if want is None:
        return Outcome("failure", f"wrong pixels: {len(got)} images read, the file holds {len(expected)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or g.dtype != w.dtype or not np.array_equal(g, w):
            return Outcome("failure", f"wrong pixels: image {i} read as {g.shape} {g.dtype}, "
                                      f"stored {w.shape} {w.dtype}" + ("" if g.shape != w.shape else " (values differ)"))
    return Outcome("pixels")


def _clear_caches() -> None:
    try:
        from ome_arrow_core import dataset_reader

        with dataset_reader._cache_lock:
            dataset_reader._cache.clear()
    except (ImportError, AttributeError):
        pass


def build_samples(where: Path) -> dict[tuple[str, str], tuple[Path, list[np.ndarray]]]:
    """Every kind's sample (and twin and other for datasets) under ``where``."""
    out = {}
    for kind in KINDS:
        for variant in ("main", "twin", "other"):
            d = where / variant
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"{kind}{SUFFIX[kind]}"
            out[(kind, variant)] = (path, build(kind, path, variant))
        members = KINDS[kind]
        root = out[(kind, "main")][0]
        if members != ("",):
            have = tuple(sorted(p.name for p in root.iterdir()))
            assert have == tuple(sorted(members)), f"{kind} has members {have}, the harness expects {members}"
    return out


def summarize(results: Iterator[tuple[Case, Outcome]] | list[tuple[Case, Outcome]]) -> str:
    """A table: per mutation class, how many cases gave the pixels, our error, a failure."""
    counts: dict[str, Counter[str]] = {}
    for case, outcome in results:
        counts.setdefault(case.cls, Counter())[outcome.status] += 1
        counts.setdefault("all", Counter())[outcome.status] += 1
    lines = [f"{'class':<12} {'cases':>6} {'pixels':>7} {'error':>7} {'failure':>8}"]
    for cls in [*sorted(c for c in counts if c != "all"), "all"]:
        c = counts[cls]
        lines.append(f"{cls:<12} {sum(c.values()):>6} {c['pixels']:>7} {c['error']:>7} {c['failure']:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile
    import time
    import warnings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None, help="scale random variants to about this many cases")
    parser.add_argument("--kind", default=None, help="only this storage kind")
    parser.add_argument("--cls", default=None, help="only this mutation class")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    args = parser.parse_args(argv)
    warnings.simplefilter("error")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        samples = build_samples(Path(tmp) / "samples")
        work = Path(tmp) / "work"
        work.mkdir()
        results = []
        for case in cases(args.cases):
            if (args.kind and case.kind != args.kind) or (args.cls and case.cls != args.cls):
                continue
            outcome = run_case(case, work, samples)
            results.append((case, outcome))
            if args.verbose and outcome.status == "failure":
                print(f"FAIL {case.id}: {outcome.detail}")
    print(summarize(results))
    print(f"{len(results)} cases in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
